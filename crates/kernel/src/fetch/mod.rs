//! `vmlane kernel fetch`: Debian's packaged kernel of an architecture, with its modules and
//! config, unpacked into the cache under its release, as `vmlane run -k RELEASE` finds it.

mod apt;
mod package;
mod unpack;

pub use package::Wanted;

use crate::cache::{self, kernels_dir};
use crate::image::identify;
use apt::OwnApt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A kernel in the cache that came from Debian.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its cache name: the release, which `-k` takes.
    pub name: String,
    /// Its directory in the cache.
    pub dir: PathBuf,
    /// The package it came from.
    pub package: String,
    /// Whether it was already there.
    pub cached: bool,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// An architecture Debian builds no kernel for.
    #[error("{0}")]
    NotPackaged(String),
    /// No apt on this host.
    #[error("`vmlane kernel fetch` downloads Debian's packages with apt, and {program} is not on PATH: on a host without apt, build a kernel with `vmlane kernel build --debian` or pass one with -k")]
    NoApt {
        /// The program missing.
        program: String,
    },
    /// The metapackage names no kernel package.
    #[error("{suite}'s {metapackage} names no kernel package for {arch}{}", .why.as_ref().map(|w| format!("; apt-get update said:\n{w}")).unwrap_or_default())]
    Unresolved {
        /// The metapackage looked up.
        metapackage: String,
        /// The Debian release.
        suite: String,
        /// Debian's architecture.
        arch: &'static str,
        /// What the failed update said.
        why: Option<String>,
    },
    /// A download or unpack step failed.
    #[error("{step} failed: {said}")]
    Step {
        /// The command.
        step: String,
        /// What it printed.
        said: String,
    },
    /// The package's image is not a kernel of the architecture asked for.
    #[error("{package}'s image is not a {arch} kernel vmlane boots: {why}")]
    WrongImage {
        /// The package.
        package: String,
        /// Debian's architecture.
        arch: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// I/O around the fetch.
    #[error("failed to {action}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> FetchError {
        let action = action.into();
        move |source| FetchError::Io { action, source }
    }
}

/// Fetches (or finds in the cache) the newest kernel `wanted` names; `say` hears each step.
pub fn fetch_debian(
    wanted: &Wanted,
    cache: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Fetched, FetchError> {
    let metapackage = wanted.metapackage().map_err(FetchError::NotPackaged)?;
    let apt = OwnApt::new(cache, wanted)?;
    let package = resolve(&apt, wanted, &metapackage, say)?;
    let release = package::release_of(&package)
        .ok_or_else(|| FetchError::Unresolved {
            metapackage: metapackage.clone(),
            suite: wanted.suite.clone(),
            arch: wanted.arch.debian(),
            why: None,
        })?
        .to_string();
    let dir = kernels_dir(cache).join(&release);
    if dir
        .join("boot")
        .join(format!("vmlinuz-{release}"))
        .is_file()
    {
        return Ok(Fetched {
            name: release,
            dir,
            package,
            cached: true,
        });
    }
    say(&format!("downloading {package} ({})", wanted.suite));
    let scratch = cache.join(format!(".fetch-{release}.partial"));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = download_and_store(&apt, wanted, &package, &release, cache, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result.map(|dir| Fetched {
        name: release,
        dir,
        package,
        cached: false,
    })
}

/// The kernel package the metapackage depends on, updating the lists when they do not say.
fn resolve(
    apt: &OwnApt,
    wanted: &Wanted,
    metapackage: &str,
    say: &mut dyn FnMut(&str),
) -> Result<String, FetchError> {
    if let Some(found) = package::kernel_package(&apt.depends(metapackage)?) {
        return Ok(found.to_string());
    }
    say(&format!(
        "reading Debian {}'s {} package lists",
        wanted.suite,
        wanted.arch.debian()
    ));
    let failed_update = apt.update()?;
    if let Some(found) = package::kernel_package(&apt.depends(metapackage)?) {
        if failed_update.is_some() {
            say("some package lists did not download (a mirror mid-sync?); the others name the kernel");
        }
        return Ok(found.to_string());
    }
    Err(FetchError::Unresolved {
        metapackage: metapackage.to_string(),
        suite: wanted.suite.clone(),
        arch: wanted.arch.debian(),
        why: failed_update,
    })
}

fn download_and_store(
    apt: &OwnApt,
    wanted: &Wanted,
    package: &str,
    release: &str,
    cache: &Path,
    scratch: &Path,
) -> Result<PathBuf, FetchError> {
    std::fs::create_dir_all(scratch).map_err(FetchError::io("create a download directory"))?;
    apt.download(package, scratch)?;
    let deb = std::fs::read_dir(scratch)
        .map_err(FetchError::io("read the download directory"))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| FetchError::Step {
            step: format!("apt-get download {package}"),
            said: "no .deb was written".into(),
        })?;
    let unpacked = scratch.join("root");
    let output = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .output()
        .map_err(FetchError::io("run dpkg-deb"))?;
    if !output.status.success() {
        return Err(FetchError::Step {
            step: format!("dpkg-deb -x {}", deb.display()),
            said: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let kind = wanted.image_kind();
    let mut checked = Ok(());
    let dir = cache::store(cache, release, None, |stage| {
        unpack::stage(&unpacked, kind, release, stage)?;
        checked = check_image(
            &stage.join(format!("boot/vmlinuz-{release}")),
            wanted,
            package,
        );
        match &checked {
            Ok(()) => Ok(()),
            Err(_) => Err(io::Error::other("not a kernel of the architecture")),
        }
    });
    checked?;
    dir.map_err(FetchError::io(format!("store {release} in the cache")))
}

/// The staged image must be what vmlane boots for the architecture, before it is stored.
fn check_image(image: &Path, wanted: &Wanted, package: &str) -> Result<(), FetchError> {
    let wrong = |why: String| FetchError::WrongImage {
        package: package.to_string(),
        arch: wanted.arch.debian(),
        why,
    };
    let (format, _) = identify(image).map_err(|e| wrong(e.to_string()))?;
    if format.arch() != wanted.arch {
        return Err(wrong(format!(
            "it is a kernel for {}",
            format.arch().debian()
        )));
    }
    Ok(())
}
