//! Saved guests on QEMU: started with `-incoming` from a file, controlled over QMP, and known
//! by everything on the command line that shapes the guest.

use crate::qmp::shell_quote;
use std::ffi::OsString;
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
    if let Some(state) = &machine.restore_from {
        args.push("-incoming".into());
        args.push(format!("exec:cat {}", shell_quote(state)).into());
    }
    args
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
            disks: vec![Disk::throwaway(dir.join("scratch0.img"))],
            run_dir: dir.to_path_buf(),
            restore_from: None,
            control_socket: None,
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
                "exec:cat '/cache/snapshots/abc/state'"
            ]
        );
    }
}
