//! A FreeBSD guest's disks and boot files: the minimal guest's root (vmlane's init, the probe,
//! the run file) or the user's image with a run disk for its rc.d hook, and vmlane's boot
//! stub when the kernel is entered the way FreeBSD's loader enters it.

use super::error::StageError;
use super::probe::read_probe;
use super::staged::GuestFiles;
use crate::host::Host;
use crate::plan::{BootRoute, FreeBsdGuest, FreeBsdRoot};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use vmlane_backend::{Disk, RunDir};
use vmlane_guest_freebsd::RunFile;
use vmlane_kernel::Kernel;

/// Minimal images kept in the cache; the oldest go first.
const KEPT_MINIMAL_IMAGES: usize = 32;
/// Changes whenever what goes into a minimal image changes in a way its inputs do not show.
const MINIMAL_IMAGE_FORMAT: &str = "minimal-1";

pub(super) fn stage(
    guest: &FreeBsdGuest,
    kernel: &Kernel,
    host: &Host,
    run_dir: &RunDir,
    notes: &mut Vec<String>,
) -> Result<GuestFiles, StageError> {
    let disks = match &guest.root {
        FreeBsdRoot::Minimal {
            program,
            guest_path,
            run,
        } => {
            let image = minimal_image(program, guest_path, run, &host.cache_dir)?;
            notes.push(format!("minimal FreeBSD guest {}", image.display()));
            vec![Disk::throwaway(image)]
        }
        FreeBsdRoot::Image {
            image,
            keep_writes,
            run,
        } => {
            std::fs::File::open(image).map_err(|source| StageError::Disk {
                path: image.clone(),
                source,
            })?;
            notes.push(format!("FreeBSD image {}", image.display()));
            let mut disks = vec![Disk {
                keep_writes: *keep_writes,
                ..Disk::throwaway(image)
            }];
            if let Some(run) = run {
                let run_disk = run_dir.join("run.disk");
                write_run_disk(run, &run_disk)?;
                disks.push(Disk::throwaway(run_disk));
            }
            disks
        }
    };
    let (kernel_file, initrd) = match guest.route {
        Some((BootRoute::Native, _)) => (boot_stub(&host.cache_dir)?, Some(kernel.image.clone())),
        _ => (kernel.image.clone(), None),
    };
    Ok(GuestFiles {
        kernel: kernel_file,
        initrd,
        disks,
    })
}

/// The minimal guest's root: vmlane's init, the probe, and what to run. Written once per
/// content into the cache (the edit-boot loop changes the kernel, not the probe); runs attach
/// it behind a snapshot, so it never changes.
fn minimal_image(
    program: &Path,
    guest_program: &str,
    run: &RunFile,
    cache: &Path,
) -> Result<PathBuf, StageError> {
    let init = vmlane_guest_freebsd::init_binary().map_err(|why| StageError::NotBuilt {
        part: "vmlane's FreeBSD init",
        why,
    })?;
    let probe = read_probe(program)?;
    let encoded = run.encode().map_err(StageError::RunFile)?;
    let mut key = Sha256::new();
    for part in [
        MINIMAL_IMAGE_FORMAT.as_bytes(),
        init,
        &encoded,
        guest_program.as_bytes(),
        &probe,
    ] {
        key.update((part.len() as u64).to_le_bytes());
        key.update(part);
    }
    let hex: String = key.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = vmlane_image::images_dir(cache);
    let image = dir.join(format!("minimal-{hex}.img"));
    // A hit is marked as used, so pruning (oldest first) keeps the images in use.
    let touched = std::fs::File::options()
        .append(true)
        .open(&image)
        .and_then(|file| file.set_modified(std::time::SystemTime::now()));
    if touched.is_ok() {
        return Ok(image);
    }
    std::fs::create_dir_all(&dir).map_err(|source| StageError::Write {
        path: dir.clone(),
        source,
    })?;
    prune(&dir, KEPT_MINIMAL_IMAGES);
    let files = [vmlane_image::ExtraFile {
        path: guest_program,
        content: vmlane_image::Content::Bytes(&probe),
        mode: 0o555,
    }];
    // minimal_image writes its output whole or not at all, so a concurrent run never sees
    // half an image.
    vmlane_image::minimal_image(init, &encoded, &files, &image)?;
    Ok(image)
}

/// Keeps the newest `keep` minimal images.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("minimal-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if images.len() < keep {
        return;
    }
    images.sort();
    for (_, old) in &images[..images.len() + 1 - keep] {
        let _ = std::fs::remove_file(old);
    }
}

/// The run disk of a full image: the script its rc.d hook runs, vmlane-relay when the run has
/// a channel (the relay takes the command from the host there), else the command itself.
fn write_run_disk(run: &RunFile, path: &Path) -> Result<(), StageError> {
    let script = match run.channel.as_deref() {
        Some(channel) => vmlane_image::relay_script(&run.token, channel)?,
        None => vmlane_image::run_script(&run.token, &run.cwd, &run.argv, &run.env)?,
    };
    std::fs::write(path, vmlane_image::run_disk(&script)).map_err(|source| StageError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// vmlane's boot stub, written once per content into the cache.
fn boot_stub(cache: &Path) -> Result<PathBuf, StageError> {
    let stub = vmlane_freebsd_boot::stub_binary().map_err(|why| StageError::NotBuilt {
        part: "vmlane's FreeBSD boot stub",
        why,
    })?;
    let dir = cache.join("boot");
    cached_file(&dir, "vmlane-freebsd-boot", stub)
        .map_err(|source| StageError::Write { path: dir, source })
}

/// `bytes` as a file named by their hash under `dir`, written (atomically) only once.
fn cached_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let hash = Sha256::digest(bytes);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{name}-{hex}"));
    if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_files_are_written_once_and_named_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = cached_file(dir.path(), "stub", b"one").unwrap();
        let again = cached_file(dir.path(), "stub", b"one").unwrap();
        let b = cached_file(dir.path(), "stub", b"two").unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn pruning_keeps_the_newest_minimal_images() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5u64 {
            let path = dir.path().join(format!("minimal-{i}.img"));
            std::fs::write(&path, "x").unwrap();
            let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        std::fs::write(dir.path().join("full-a.img"), "kept").unwrap();
        prune(dir.path(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["full-a.img", "minimal-3.img", "minimal-4.img"]);
    }
}
