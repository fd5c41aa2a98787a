//! An apt of vmlane's own, one per suite and architecture, whose lists live in vmlane's cache:
//! the host's apt sources and dpkg architectures are never touched, and no root is needed.

use super::package::Wanted;
use super::FetchError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's packages and their security fixes come from.
const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY: &str = "http://deb.debian.org/debian-security";

/// The apt of one suite and architecture.
pub struct OwnApt {
    dir: PathBuf,
    arch: &'static str,
}

impl OwnApt {
    /// Its directory in the cache, with the sources for `wanted`.
    pub fn new(cache: &Path, wanted: &Wanted) -> Result<OwnApt, FetchError> {
        let arch = wanted.arch.debian();
        let dir = cache.join(format!("apt-{}-{arch}", wanted.suite));
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(FetchError::io(format!(
                "create {}",
                dir.join(sub).display()
            )))?;
        }
        std::fs::write(dir.join("sources.list"), wanted.sources(MIRROR, SECURITY))
            .map_err(FetchError::io("write the apt sources"))?;
        Ok(OwnApt { dir, arch })
    }

    /// The options that make apt read and write only this directory, for one architecture.
    pub fn options(&self) -> Vec<OsString> {
        let dir_option = |name: &str, sub: &str| {
            let mut option = OsString::from(format!("{name}="));
            option.push(self.dir.join(sub));
            option
        };
        let settings = [
            dir_option("Dir::Etc::SourceList", "sources.list"),
            dir_option("Dir::State::Lists", "lists"),
            dir_option("Dir::Cache", "cache"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            "Dir::State::status=/dev/null".into(),
            format!("APT::Architecture={}", self.arch).into(),
            format!("APT::Architectures::={}", self.arch).into(),
            // apt drops to the _apt user to download when run as root; that user cannot
            // write into the caller's cache.
            "APT::Sandbox::User=root".into(),
        ];
        settings
            .into_iter()
            .flat_map(|setting| [OsString::from("-o"), setting])
            .collect()
    }

    /// `apt-cache depends PACKAGE`'s output, empty before the first update.
    pub fn depends(&self, package: &str) -> Result<String, FetchError> {
        let output = self.run("apt-cache", &["depends", package], None)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Downloads the package lists. A list that fails (a mirror mid-sync) is no error when
    /// the others name a kernel, so apt's complaint is returned for the caller to judge.
    pub fn update(&self) -> Result<Option<String>, FetchError> {
        let output = self.run("apt-get", &["update", "-qq"], None)?;
        Ok((!output.status.success()).then(|| stderr_of(&output)))
    }

    /// Downloads `package`'s .deb into `into`.
    pub fn download(&self, package: &str, into: &Path) -> Result<(), FetchError> {
        let output = self.run("apt-get", &["download", "-qq", package], Some(into))?;
        if output.status.success() {
            return Ok(());
        }
        Err(FetchError::Step {
            step: format!("apt-get download {package}"),
            said: stderr_of(&output),
        })
    }

    fn run(&self, program: &str, args: &[&str], cwd: Option<&Path>) -> Result<Output, FetchError> {
        let mut command = Command::new(program);
        command.args(self.options()).args(args);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command.output().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => FetchError::NoApt {
                program: program.to_string(),
            },
            _ => FetchError::Io {
                action: format!("run {program}"),
                source,
            },
        })
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmlane_spec::Arch;

    #[test]
    fn apt_reads_and_writes_only_its_own_directory_for_one_architecture() {
        let cache = tempfile::tempdir().unwrap();
        let wanted = Wanted {
            arch: Arch::Riscv64,
            suite: "trixie".into(),
            flavour: None,
        };
        let apt = OwnApt::new(cache.path(), &wanted).unwrap();
        let dir = cache.path().join("apt-trixie-riscv64");
        assert!(std::fs::read_to_string(dir.join("sources.list"))
            .unwrap()
            .starts_with("deb [arch=riscv64] http://deb.debian.org/debian trixie main\n"));
        assert!(dir.join("lists/partial").is_dir());
        let options: Vec<String> = apt
            .options()
            .iter()
            .map(|o| o.to_string_lossy().into_owned())
            .collect();
        assert!(options.chunks(2).all(|pair| pair[0] == "-o"), "{options:?}");
        let settings: Vec<&str> = options
            .iter()
            .skip(1)
            .step_by(2)
            .map(String::as_str)
            .collect();
        for expected in [
            format!("Dir::Etc::SourceList={}/sources.list", dir.display()),
            format!("Dir::State::Lists={}/lists", dir.display()),
            "Dir::State::status=/dev/null".to_string(),
            "APT::Architecture=riscv64".to_string(),
            "APT::Architectures::=riscv64".to_string(),
        ] {
            assert!(
                settings.contains(&expected.as_str()),
                "{expected} in {settings:?}"
            );
        }
    }
}
