//! Saved guests on QEMU: started with `-incoming` from a file, controlled over QMP, and known
//! by everything on the command line that shapes the guest.

use crate::qmp::{shell_quote, Qmp};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use vmlane_backend::Machine;

/// `-qmp` when the session may save the VM, `-incoming` when it restores one.
pub fn control_args(machine: &Machine) -> Vec<OsString> {
    let mut args = Vec::new();
    if let Some(socket) = &machine.control_socket {
        let mut value = OsString::from("unix:");
        value.push(socket);
        value.push(",server=on,wait=off");
        args.extend([OsString::from("-qmp"), value]);
    }
    if machine.restore_from.is_some() {
        // The state is loaded over QMP ([`restore`]), where its capabilities are set first.
        args.extend(["-incoming".into(), "defer".into()]);
    }
    args
}

/// Saves the VM to `state`. A VM whose RAM vmlane holds is stopped while its device state is
/// written and its RAM copied to `ram` (a sparse copy, written in tens of ms); any other is
/// live-migrated, RAM and all. Either way it runs on afterwards.
pub fn save(qmp: &mut Qmp, state: &Path, held: Option<&File>, ram: &Path) -> io::Result<()> {
    let Some(held) = held else {
        return crate::qmp::save(qmp, state);
    };
    crate::qmp::ignore_shared_memory(qmp)?;
    qmp.execute("stop", None)?;
    let saved = crate::qmp::migrate(qmp, state).and_then(|()| {
        let target = File::create(ram)?;
        copy_sparse(held, &target)?;
        start_writeback(&target);
        Ok(())
    });
    qmp.execute("cont", None)?;
    saved
}

/// Loads a VM started with `-incoming defer` from `state` (its RAM mapped from the memory
/// file, when it has one) and runs it.
pub fn restore(qmp: &mut Qmp, state: &Path, ram_in_file: bool) -> io::Result<()> {
    if ram_in_file {
        crate::qmp::ignore_shared_memory(qmp)?;
    }
    let uri = format!("exec:cat {}", shell_quote(state));
    qmp.execute("migrate-incoming", Some(serde_json::json!({ "uri": uri })))?;
    let status = crate::qmp::wait_until_loaded(qmp)?;
    // A guest stopped while it was saved stays paused until told to run.
    if status != "running" {
        qmp.execute("cont", None)?;
    }
    Ok(())
}

/// Copies the data of a sparse file into `target`, holes left as holes.
pub(crate) fn copy_sparse(source: &File, target: &File) -> io::Result<()> {
    use rustix::fs::{seek, SeekFrom};
    let len = source.metadata()?.len();
    target.set_len(len)?;
    let mut at = 0u64;
    while at < len {
        let data = match seek(source, SeekFrom::Data(at)) {
            Ok(offset) => offset,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(source, SeekFrom::Hole(data))?;
        copy_range(source, target, data, hole)?;
        at = hole;
    }
    Ok(())
}

/// Starts writing `file` to disk without waiting: the guest runs on meanwhile, and the fsync
/// before the saved guest is moved into place has less left to wait for.
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor `file` owns; failure only loses the head start.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Copies bytes `start..end` in the kernel, or through a buffer where the two files are on
/// different filesystems (guest RAM held in memory, the cache on disk).
fn copy_range(source: &File, target: &File, start: u64, end: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut from_at = start;
    let mut to_at = start;
    while from_at < end {
        let left = (end - from_at) as usize;
        match rustix::fs::copy_file_range(
            source,
            Some(&mut from_at),
            target,
            Some(&mut to_at),
            left,
        ) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => {
                let mut buf = vec![0u8; 1 << 20];
                while from_at < end {
                    let want = buf.len().min((end - from_at) as usize);
                    let n = source.read_at(&mut buf[..want], from_at)?;
                    if n == 0 {
                        break;
                    }
                    target.write_all_at(&buf[..n], to_at)?;
                    from_at += n as u64;
                    to_at += n as u64;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `machine` as its saved guest knows it: a writable directory's device is in the saved guest
/// but unmounted (9p) or not yet plugged in (virtio-fs), so which host directory it serves
/// is the run's own, like its run directory; how many there are, and their tags, stay.
pub fn without_rwdir_paths(machine: &Machine) -> Machine {
    let mut keyed = machine.clone();
    for (n, share) in keyed.rwdirs.iter_mut().enumerate() {
        share.host_dir = format!("RWDIR{n}").into();
    }
    keyed
}

/// The parts a saved guest depends on, by name: the QEMU binary, the kernel and initramfs
/// files, each disk's size, and the command line (the run directory's own path left out, as
/// each run has its own), split so a difference can be named.
pub fn key(qemu: &Path, machine: &Machine, args: &[OsString]) -> Vec<(String, String)> {
    let mut parts = vec![("QEMU".to_string(), identity(qemu))];
    let run_dir = machine.run_dir.to_string_lossy().into_owned();
    let mut devices = Vec::new();
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        let arg = arg.replace(&run_dir, "RUN");
        let name = match arg.as_str() {
            "-machine" => "machine",
            "-cpu" => "CPU model",
            "-smp" => "CPUs",
            "-m" => "memory",
            "-append" => "kernel command line",
            "-kernel" => "kernel",
            "-initrd" => "initramfs",
            _ => {
                devices.push(arg);
                continue;
            }
        };
        let raw = args.next().unwrap_or_default();
        let value = match name {
            "kernel" | "initramfs" => format!("{raw} {}", identity(Path::new(&*raw))),
            _ => raw.replace(&run_dir, "RUN"),
        };
        parts.push((name.to_string(), value));
    }
    parts.push(("devices".into(), devices.join(" ")));
    let sizes: Vec<String> = machine
        .disks
        .iter()
        .map(|disk| disk.path.metadata().map_or(0, |m| m.len()).to_string())
        .collect();
    parts.push(("disk sizes".into(), sizes.join(" ")));
    parts
}

/// A file as it is now: a rebuilt kernel is a new file, without reading all of it.
fn identity(path: &Path) -> String {
    match path.metadata() {
        Ok(meta) => format!(
            "inode {} size {} modified {}.{:09}",
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ),
        Err(_) => "missing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use vmlane_backend::{Disk, GuestOs};

    /// A machine whose run directory is `dir`, booting `dir/../vmlinux`.
    fn machine(dir: &Path) -> Machine {
        let kernel = dir.with_extension("vmlinux");
        std::fs::write(&kernel, "kernel").unwrap();
        std::fs::write(dir.join("scratch0.img"), vec![0; 4096]).unwrap();
        Machine {
            os: GuestOs::Linux,
            kernel,
            initrd: None,
            cmdline: "console=ttyS0".into(),
            cpus: 1,
            memory_mib: 512,
            console_socket: dir.join("console.sock"),
            port_socket: Some(dir.join("port.sock")),
            share: None,
            rwdirs: Vec::new(),
            disks: vec![Disk::throwaway(dir.join("scratch0.img"))],
            run_dir: dir.to_path_buf(),
            restore_from: None,
            control_socket: None,
            guest_ram: None,
        }
    }

    fn key_of(machine: &Machine) -> Vec<(String, String)> {
        let args = crate::qemu_args(
            machine,
            crate::MachineKind::Microvm,
            crate::AccelChoice::Tcg,
        );
        key(Path::new("/usr/bin/qemu-system-x86_64"), machine, &args)
    }

    fn part<'a>(key: &'a [(String, String)], name: &str) -> &'a str {
        &key.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn runs_in_other_run_directories_share_a_key_and_other_machines_do_not() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (first, mut second) = (machine(a.path()), machine(b.path()));
        second.kernel = first.kernel.clone();
        assert_eq!(key_of(&first), key_of(&second));
        assert!(part(&key_of(&first), "devices").contains("RUN/console.sock"));

        second.memory_mib = 1024;
        second.cmdline.push_str(" loglevel=7");
        let (one, other) = (key_of(&first), key_of(&second));
        let differ: Vec<&str> = one
            .iter()
            .zip(&other)
            .filter(|(x, y)| x != y)
            .map(|(x, _)| x.0.as_str())
            .collect();
        assert_eq!(differ, ["memory", "kernel command line"]);
    }

    fn rwdir(dir: &str) -> vmlane_backend::Share {
        vmlane_backend::Share {
            host_dir: dir.into(),
            tag: "vmlane-rw0".into(),
            transport: vmlane_backend::ShareTransport::NineP,
            writable: true,
            plugged_later: false,
        }
    }

    #[test]
    fn writable_directories_count_in_the_key_but_not_which_host_directories_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let plain = machine(dir.path());
        let keyed = |machine: &Machine| key_of(&without_rwdir_paths(machine));
        let (mut one, mut other) = (plain.clone(), plain.clone());
        one.rwdirs = vec![rwdir("/home/u/out")];
        other.rwdirs = vec![rwdir("/tmp/elsewhere")];
        assert_eq!(keyed(&one), keyed(&other));
        assert_ne!(keyed(&one), keyed(&plain));
        assert!(part(&keyed(&one), "devices").contains("path=RWDIR0"));
        // The run's own machine keeps its paths.
        assert_eq!(without_rwdir_paths(&plain).rwdirs.len(), 0);
        assert_eq!(one.rwdirs[0].host_dir, Path::new("/home/u/out"));
        other.rwdirs.push(rwdir("/b"));
        assert_ne!(keyed(&one), keyed(&other));
    }

    #[test]
    fn a_rewritten_kernel_or_a_larger_disk_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let machine = machine(dir.path());
        let before = key_of(&machine);
        std::fs::write(dir.path().join("scratch0.img"), vec![0; 8192]).unwrap();
        assert_ne!(
            part(&before, "disk sizes"),
            part(&key_of(&machine), "disk sizes")
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&machine.kernel, "kernel, rebuilt").unwrap();
        assert_ne!(part(&before, "kernel"), part(&key_of(&machine), "kernel"));
    }

    #[test]
    fn control_arguments_name_the_qmp_socket_and_the_saved_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = machine(dir.path());
        assert!(control_args(&machine).is_empty());
        machine.control_socket = Some(PathBuf::from("/run/x/qmp.sock"));
        machine.restore_from = Some(PathBuf::from("/cache/snapshots/abc/state"));
        let args: Vec<String> = control_args(&machine)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-qmp",
                "unix:/run/x/qmp.sock,server=on,wait=off",
                "-incoming",
                "defer"
            ]
        );
    }

    fn copy(from: &Path, to: &Path) {
        let target = File::create(to).unwrap();
        copy_sparse(&File::open(from).unwrap(), &target).unwrap();
    }

    #[test]
    fn a_sparse_copy_keeps_the_data_and_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("ram"), dir.path().join("copy"));
        let file = std::fs::File::create(&from).unwrap();
        file.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(b"start", 0).unwrap();
        file.write_all_at(&[7u8; 8192], 32 << 20).unwrap();
        file.write_all_at(b"end", (64 << 20) - 3).unwrap();
        copy(&from, &to);
        assert_eq!(std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
        let blocks = std::os::unix::fs::MetadataExt::blocks(&to.metadata().unwrap());
        assert!(blocks < 1024, "{blocks} blocks: the holes were written");
    }

    #[test]
    fn a_sparse_copy_crosses_filesystems() {
        use std::os::unix::fs::MetadataExt;
        let disk = tempfile::tempdir().unwrap();
        let Ok(memory) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm to copy to");
            return;
        };
        if disk.path().metadata().unwrap().dev() == memory.path().metadata().unwrap().dev() {
            eprintln!("skipped: the temporary directory is on /dev/shm's filesystem");
            return;
        }
        let (from, to) = (disk.path().join("ram"), memory.path().join("copy"));
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&from, &data).unwrap();
        copy(&from, &to);
        assert!(std::fs::read(&to).unwrap() == data);
    }
}
