//! The guest's filesystems: the host root read-only under a tmpfs overlay, so the command sees
//! the host's files and programs while nothing it writes reaches the host, except in the
//! writable host directories mounted over it (`--rwdir`).

use crate::console::{Failure, StepContext};
use crate::sys::{self, mount};
use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};
use vmlane_proto::{DirMount, RunRequest};

const LOWER: &str = "/vmlane/lower";
const SCRATCH: &str = "/vmlane/rw";
const ROOT: &str = "/vmlane/root";

/// proc, sysfs and devtmpfs, needed to load modules and find the host port.
pub fn mount_early_filesystems() -> Result<(), Failure> {
    for (fstype, target) in [("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")] {
        fs::create_dir_all(target).step(|| format!("create {target}"))?;
        mount(fstype, target, Some(fstype), libc::MS_NOSUID, None)
            .step(|| format!("mount {fstype} on {target}"))?;
    }
    Ok(())
}

/// Builds the overlay root, moves the early mounts into it, mounts the writable directories
/// over it, and enters it at the request's cwd.
pub fn enter_root(request: &RunRequest) -> Result<(), Failure> {
    let cwd = String::from_utf8_lossy(&request.cwd).into_owned();
    if let Some(share) = &request.share {
        mount_overlay_root(&share.fstype, &share.tag, &share.options)?;
        for dir in ["/dev", "/proc", "/sys"] {
            let target = format!("{ROOT}{dir}");
            mount(dir, &target, None, libc::MS_MOVE, None)
                .step(|| format!("move {dir} into the new root"))?;
        }
        mount_scratch_dirs(&cwd)?;
        std::env::set_current_dir(ROOT).step(|| format!("enter {ROOT}"))?;
        let dot = sys::cstring(".").expect("no NUL");
        // SAFETY: `dot` is a valid C string; chroot only reads it.
        sys::check(unsafe { libc::chroot(dot.as_ptr()) })
            .step(|| "chroot into the overlay root".into())?;
    }
    // Inside the new root, so a guest path through one of the host's symbolic links resolves
    // as the command will see it.
    mount_rwdirs(&request.rwdirs)?;
    let mut pts = fs::create_dir_all("/dev/pts").step(|| "create /dev/pts".into());
    if pts.is_ok() {
        pts = mount(
            "devpts",
            "/dev/pts",
            Some("devpts"),
            libc::MS_NOSUID,
            Some("ptmxmode=0666"),
        )
        .step(|| "mount /dev/pts".into());
    }
    pts?;
    std::env::set_current_dir(std::ffi::OsStr::from_bytes(&request.cwd))
        .step(|| format!("enter the working directory {cwd}"))
}

/// How long a virtio-fs device may take to appear and register its tag: a guest restored
/// from a saved one gets its device plugged in after the restore.
const SHARE_DEVICE_TIMEOUT: Duration = Duration::from_secs(10);
/// Where a virtio-fs device shows once its driver has it.
const VIRTIOFS_DEVICES: &str = "/sys/bus/virtio/drivers/virtiofs";
/// Writing 1 here makes the kernel look for new PCI devices now.
const PCI_RESCAN: &str = "/sys/bus/pci/rescan";
/// How often the buses are rescanned while a plugged-in device is awaited.
const PCI_RESCAN_EVERY: Duration = Duration::from_millis(10);

fn mount_overlay_root(fstype: &str, tag: &str, options: &str) -> Result<(), Failure> {
    for dir in [LOWER, SCRATCH, ROOT] {
        fs::create_dir_all(dir).step(|| format!("create {dir}"))?;
    }
    mount_share(fstype, tag, options, LOWER, libc::MS_RDONLY)
        .step(|| format!("mount the host root ({fstype} tag {tag})"))?;
    mount("tmpfs", SCRATCH, Some("tmpfs"), 0, Some("mode=0755"))
        .step(|| "mount the tmpfs for the overlay".into())?;
    for dir in ["upper", "work"] {
        fs::create_dir(format!("{SCRATCH}/{dir}")).step(|| format!("create {SCRATCH}/{dir}"))?;
    }
    let data = format!("lowerdir={LOWER},upperdir={SCRATCH}/upper,workdir={SCRATCH}/work");
    mount("overlay", ROOT, Some("overlay"), 0, Some(&data)).step(|| "mount the overlay root".into())
}

/// Mounts a share on `target`. A virtio-fs device plugged in after a restore may still be
/// probing: until it has registered its tag, the mount fails with EINVAL, and is tried again
/// for a while.
fn mount_share(
    fstype: &str,
    tag: &str,
    options: &str,
    target: impl AsRef<OsStr>,
    flags: libc::c_ulong,
) -> std::io::Result<()> {
    let target = target.as_ref();
    let started = Instant::now();
    loop {
        let mounted = mount(tag, target, Some(fstype), flags, Some(options));
        match mounted {
            Err(e)
                if fstype == "virtiofs"
                    && e.raw_os_error() == Some(libc::EINVAL)
                    && started.elapsed() < SHARE_DEVICE_TIMEOUT =>
            {
                wait_for_virtiofs_device();
                std::thread::sleep(Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// Waits, up to [`SHARE_DEVICE_TIMEOUT`], until a virtio-fs device is bound to its driver,
/// rescanning the PCI buses meanwhile: the kernel's own hotplug handler waits 100 ms after the
/// slot's link comes up before it looks (the PCIe spec's delay for real hardware), while a
/// rescan finds QEMU's device as soon as it is plugged in. The handler then finds the device
/// there and leaves it be.
fn wait_for_virtiofs_device() {
    let started = Instant::now();
    let mut rescanned: Option<Instant> = None;
    while started.elapsed() < SHARE_DEVICE_TIMEOUT {
        let bound = fs::read_dir(VIRTIOFS_DEVICES).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("virtio"))
        });
        if bound {
            return;
        }
        if rescanned.is_none_or(|at| at.elapsed() >= PCI_RESCAN_EVERY) {
            let _ = fs::write(PCI_RESCAN, "1");
            rescanned = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Mounts each writable host directory on its guest path (made in the overlay if need be),
/// in order, so a later one may sit inside an earlier one.
fn mount_rwdirs(dirs: &[DirMount]) -> Result<(), Failure> {
    for dir in dirs {
        let target = OsStr::from_bytes(&dir.target);
        let shown = target.to_string_lossy();
        let (fstype, tag) = (&dir.share.fstype, &dir.share.tag);
        fs::create_dir_all(target)
            .step(|| format!("create {shown} to mount a writable host directory on"))?;
        mount_share(fstype, tag, &dir.share.options, target, libc::MS_NOSUID).step(|| {
            format!("mount the writable host directory ({fstype} tag {tag}) on {shown}")
        })?;
    }
    Ok(())
}

/// Writes what the guest still caches of the writable directories (pages written through a
/// mapping) to the host before the host is told the command ended and ends the VM.
pub fn sync_rwdirs(request: &RunRequest) -> Result<(), Failure> {
    for dir in &request.rwdirs {
        let target = OsStr::from_bytes(&dir.target);
        // The command may have unmounted it, or gone elsewhere: then nothing is cached here.
        let Ok(opened) = fs::File::open(target) else {
            continue;
        };
        // SAFETY: syncfs takes a descriptor `opened` owns.
        sys::check(unsafe { libc::syncfs(opened.as_raw_fd()) }).step(|| {
            format!(
                "write the writable directory {} to the host",
                target.to_string_lossy()
            )
        })?;
    }
    Ok(())
}

/// Fresh tmpfs on /tmp and /run, except where the command's own directory lives, which must
/// stay visible.
fn mount_scratch_dirs(cwd: &str) -> Result<(), Failure> {
    for (dir, mode) in [
        ("/tmp", "mode=1777"),
        ("/run", "mode=0755"),
        ("/dev/shm", "mode=1777"),
    ] {
        if cwd == dir || cwd.starts_with(&format!("{dir}/")) {
            continue;
        }
        let target = format!("{ROOT}{dir}");
        fs::create_dir_all(&target).step(|| format!("create {dir}"))?;
        mount(
            "tmpfs",
            &target,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(mode),
        )
        .step(|| format!("mount tmpfs on {dir}"))?;
    }
    Ok(())
}
