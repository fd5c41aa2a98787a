//! What a FreeBSD guest's disks hold for one run: the minimal guest's root (vmlane's init,
//! the probe, the run file) or, for a full image, the run disk its rc.d hook reads.

use super::probe::check_probe;
use crate::launch::{Launch, LaunchError};
use sha2::{Digest, Sha256};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use vmlane_guest_freebsd::{RunFile, SHARE_MOUNT_POINT};

/// The tag the host root is shared under, and mounted by.
pub(super) const SHARE_TAG: &str = "vmlane-root";
/// Where the probe goes in the minimal guest.
const PROBE_DIR: &str = "/vmlane/bin";
const DEFAULT_PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";

/// The token in a minimal image's run file: the init takes the run's own from the kernel
/// environment, so one image serves every run of the same probe and arguments.
const IMAGE_TOKEN: &str = "from-kenv";
/// Minimal images kept in the cache; the oldest go first.
const KEPT_MINIMAL_IMAGES: usize = 32;

/// The minimal guest's root: vmlane's init, the probe, and what to run. Written once per
/// content into the cache (the edit-boot loop changes the kernel, not the probe); runs attach
/// it behind a snapshot, so it never changes.
pub(super) fn stage_minimal(launch: &Launch, shared: bool) -> Result<PathBuf, LaunchError> {
    let spec = &launch.spec;
    let init = vmlane_guest_freebsd::init_binary().map_err(|why| {
        LaunchError::FreeBsdGuest(format!("vmlane's FreeBSD init is not built: {why}"))
    })?;
    let program = spec.cwd.join(&spec.argv[0]);
    check_probe(&program)?;
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "probe".into());
    let guest_program = format!("{PROBE_DIR}/{name}");
    let mut argv = vec![guest_program.as_bytes().to_vec()];
    argv.extend(spec.argv[1..].iter().map(|a| a.as_bytes().to_vec()));
    let run_file = RunFile {
        token: IMAGE_TOKEN.to_string(),
        cwd: guest_cwd(&spec.cwd, shared),
        share_tag: shared.then(|| SHARE_TAG.to_string()),
        argv,
        env: guest_env(launch),
    };
    let encoded = run_file
        .encode()
        .map_err(|e| LaunchError::FreeBsdGuest(format!("cannot pass the command: {e}")))?;
    let probe = std::fs::read(&program).map_err(|e| {
        LaunchError::FreeBsdGuest(format!("cannot read {}: {e}", program.display()))
    })?;
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
    let dir = vmlane_image::images_dir(&vmlane_kernel::cache_dir());
    let image = dir.join(format!("minimal-{hex}.img"));
    // A hit is marked as used, so pruning (oldest first) keeps the images in use.
    let touched = std::fs::File::options()
        .append(true)
        .open(&image)
        .and_then(|file| file.set_modified(std::time::SystemTime::now()));
    if touched.is_ok() {
        return Ok(image);
    }
    std::fs::create_dir_all(&dir).map_err(LaunchError::RunDir)?;
    prune(&dir, KEPT_MINIMAL_IMAGES);
    let files = [vmlane_image::ExtraFile {
        path: &guest_program,
        content: vmlane_image::Content::Bytes(&probe),
        mode: 0o555,
    }];
    // minimal_image writes its output whole or not at all, so a concurrent run never sees
    // half an image.
    vmlane_image::minimal_image(init, &encoded, &files, &image)
        .map_err(|e| LaunchError::FreeBsdGuest(e.to_string()))?;
    Ok(image)
}

/// Changes whenever what goes into a minimal image changes in a way its inputs do not show.
const MINIMAL_IMAGE_FORMAT: &str = "minimal-1";

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

/// The run disk of a full image: the command as a script its rc.d hook runs.
pub(super) fn stage_run_disk(launch: &Launch, token: &str, path: &Path) -> Result<(), LaunchError> {
    let spec = &launch.spec;
    let argv: Vec<Vec<u8>> = spec.argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let cwd = guest_cwd(&spec.cwd, false);
    let script = vmlane_image::run_script(token, &cwd, &argv, &guest_env(launch))
        .map_err(|e| LaunchError::FreeBsdGuest(e.to_string()))?;
    std::fs::write(path, vmlane_image::run_disk(&script)).map_err(LaunchError::RunDir)
}

/// The working directory in the guest: the user's, under the share, when the host's files
/// are there; the root otherwise.
fn guest_cwd(cwd: &Path, shared: bool) -> Vec<u8> {
    if !shared {
        return b"/".to_vec();
    }
    let mut path = SHARE_MOUNT_POINT.as_bytes().to_vec();
    path.extend_from_slice(cwd.as_os_str().as_bytes());
    path
}

fn guest_env(launch: &Launch) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = vec![
        format!("PATH={DEFAULT_PATH}").into_bytes(),
        b"HOME=/".to_vec(),
        b"TERM=vt100".to_vec(),
    ];
    for (key, value) in &launch.spec.env {
        let prefix = [key.as_bytes(), b"="].concat();
        env.retain(|e| !e.starts_with(&prefix));
        env.push([prefix.as_slice(), value.as_bytes()].concat());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_works_in_the_users_directory_only_when_it_is_shared() {
        assert_eq!(
            guest_cwd(Path::new("/home/u/src"), true),
            b"/host/home/u/src"
        );
        assert_eq!(guest_cwd(Path::new("/home/u/src"), false), b"/");
    }
}
