//! The VM lifecycle against fake bhyveload, bhyve and bhyvectl scripts.
//!
//! The three fakes are written once per test process and never changed, so no test can exec a
//! file another thread is still writing (ETXTBSY). Each test's behaviour lives in its own
//! fixture directory: the fakes find it from their arguments, log their argv to `calls.log`
//! there and source `bhyveload.sh` / `bhyve.sh` from it.

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Pid;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use vmlane_backend::{Backend, BackendError, Disk, GuestOs, Machine, RunningVm};
use vmlane_bhyve::{BhyveBackend, Programs};

const LOADER_OK: &str = "printf 'Consoles: userboot\\n'\nprintf 'Loading kernel...\\n'\nexit 0\n";
const BHYVE_OK: &str = "echo 'Copyright (c) 1992-2025 The FreeBSD Project.'\n\
    echo 'vmlane: done'\nexit 1\n";

/// The fakes, shared by every test.
fn fakes() -> &'static Programs {
    static FAKES: OnceLock<(tempfile::TempDir, Programs)> = OnceLock::new();
    let (_, programs) = FAKES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let names = dir.path().join("names");
        fs::create_dir(&names).unwrap();
        let names = names.display();
        let write = |name: &str, body: String| {
            let path = dir.path().join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        // bhyveload: the fixture is two levels above the -h boot directory; the VM name (last
        // argument) is recorded so bhyve and bhyvectl can find the fixture too.
        let bhyveload = write(
            "bhyveload",
            format!(
                "prev=; boot=; for a; do [ \"$prev\" = -h ] && boot=$a; prev=$a; name=$a; done\n\
                 fix=$(dirname \"$(dirname \"$boot\")\")\n\
                 echo \"$fix\" > \"{names}/$name\"\n\
                 echo \"bhyveload $*\" >> \"$fix/calls.log\"\n\
                 . \"$fix/bhyveload.sh\"\n"
            ),
        );
        let bhyve = write(
            "bhyve",
            format!(
                "for a; do name=$a; done\n\
                 fix=$(cat \"{names}/$name\")\n\
                 echo \"bhyve $*\" >> \"$fix/calls.log\"\n\
                 echo $$ > \"$fix/bhyve.pid\"\n\
                 for a; do case $a in *,virtio-blk,*) echo guest-write >> \"${{a#*virtio-blk,}}\";; esac; done\n\
                 . \"$fix/bhyve.sh\"\n"
            ),
        );
        let bhyvectl = write(
            "bhyvectl",
            format!(
                "name=${{2#--vm=}}\n\
                 fix=$(cat \"{names}/$name\")\n\
                 echo \"bhyvectl $*\" >> \"$fix/calls.log\"\n"
            ),
        );
        (
            dir,
            Programs {
                bhyve,
                bhyveload,
                bhyvectl,
            },
        )
    });
    programs
}

/// One test's host root, run directory, machine and console listener.
struct Fixture {
    dir: tempfile::TempDir,
    machine: Machine,
    listener: UnixListener,
    backend: BhyveBackend,
}

fn fixture(bhyveload: &str, bhyve: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("bhyveload.sh"), bhyveload).unwrap();
    fs::write(d.join("bhyve.sh"), bhyve).unwrap();
    fs::write(d.join("calls.log"), "").unwrap();
    for (file, text) in [
        ("root/boot/lua/loader.lua", "-- loader"),
        ("root/boot/defaults/loader.conf", "kernel=\"kernel\"\n"),
        ("root/boot/device.hints", "hint.uart.0.flags=\"0x10\"\n"),
        ("root/boot/userboot.so", ""),
        ("root/boot/kernel/vmm.ko", ""),
    ] {
        fs::create_dir_all(d.join(file).parent().unwrap()).unwrap();
        fs::write(d.join(file), text).unwrap();
    }
    fs::write(d.join("kernel"), b"\x7fELF fake kernel").unwrap();
    fs::write(d.join("root.img"), b"original image").unwrap();
    let run_dir = d.join("run");
    fs::create_dir(&run_dir).unwrap();
    let machine = Machine {
        os: GuestOs::FreeBsd,
        kernel: d.join("kernel"),
        initrd: None,
        cmdline: "vfs.root.mountfrom=ufs:/dev/vtbd0 init_path=/vmlane/init -v".into(),
        cpus: 2,
        memory_mib: 256,
        console_socket: run_dir.join("console.sock"),
        port_socket: None,
        share: None,
        rwdirs: Vec::new(),
        disks: vec![Disk::throwaway(d.join("root.img"))],
        run_dir,
        restore_from: None,
        control_socket: None,
        guest_ram: None,
    };
    let listener = UnixListener::bind(&machine.console_socket).unwrap();
    let mut backend = BhyveBackend::with_programs(fakes().clone());
    backend.host_root = d.join("root");
    backend.stop_grace = Duration::from_millis(200);
    Fixture {
        dir,
        machine,
        listener,
        backend,
    }
}

impl Fixture {
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn calls_of(&self, program: &str) -> Vec<String> {
        let prefix = format!("{program} ");
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with(&prefix))
            .collect()
    }

    fn destroys(&self) -> usize {
        self.calls_of("bhyvectl")
            .iter()
            .filter(|c| c.starts_with("bhyvectl --destroy --vm=vmlane-"))
            .count()
    }

    fn bhyve_pid(&self) -> i32 {
        let path = self.dir.path().join("bhyve.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "bhyve never started");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The session's end of the console connection the backend made.
    fn console(&self) -> UnixStream {
        let (stream, _) = self.listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        stream
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 only checks that the process exists.
    let pid = Pid::from_raw(pid).expect("a process id");
    rustix::process::test_kill_process(pid).is_ok()
}

fn read_all(console: &mut UnixStream, text: &mut Vec<u8>) {
    let mut buf = [0u8; 65536];
    loop {
        match console.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// What the session does: read the console until the exit fd says the VM is gone, then ask
/// what happened and take what is left on the console.
fn run_like_the_session(vm: &mut dyn RunningVm, console: &mut UnixStream) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "the VM never exited");
        // SAFETY: the descriptor belongs to `vm`, which is borrowed until this poll is done.
        let exit_fd = unsafe { BorrowedFd::borrow_raw(vm.exit_fd()) };
        let mut fds = [
            PollFd::new(&*console, PollFlags::IN),
            PollFd::from_borrowed_fd(exit_fd, PollFlags::IN),
        ];
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        let (console_ready, exited) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if console_ready {
            read_all(console, &mut text);
        }
        if exited {
            let said = vm
                .try_wait()
                .unwrap()
                .expect("exit fd readable but no exit");
            read_all(console, &mut text);
            return (String::from_utf8_lossy(&text).into_owned(), said);
        }
    }
}

#[test]
fn a_run_streams_loader_and_guest_console_and_destroys_the_vm_once() {
    let fx = fixture(LOADER_OK, BHYVE_OK);
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let mut console = fx.console();
    let (text, said) = run_like_the_session(vm.as_mut(), &mut console);
    assert_eq!(
        text,
        "Consoles: userboot\nLoading kernel...\n\
         Copyright (c) 1992-2025 The FreeBSD Project.\nvmlane: done\n"
    );
    assert_eq!(said, "", "a power-off is the guest's own ending");
    assert_eq!(fx.destroys(), 1);
    vm.kill();
    assert_eq!(vm.try_wait().unwrap(), Some(String::new()));
    drop(vm);
    assert_eq!(
        fx.destroys(),
        1,
        "kill and drop after the exit destroy nothing more"
    );
}

#[test]
fn the_programs_get_the_machines_settings() {
    let fx = fixture(LOADER_OK, BHYVE_OK);
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let mut console = fx.console();
    run_like_the_session(vm.as_mut(), &mut console);
    let run = fx.machine.run_dir.display().to_string();
    let load = &fx.calls_of("bhyveload")[0];
    let name = load.rsplit(' ').next().unwrap().to_string();
    assert!(name.starts_with(&format!("vmlane-{}-", std::process::id())));
    assert_eq!(
        *load,
        format!(
            "bhyveload -c stdio -m 256M -h {run}/bhyve-boot -e autoboot_delay=0 \
             -e beastie_disable=YES -e vfs.root.mountfrom=ufs:/dev/vtbd0 \
             -e init_path=/vmlane/init -e boot_verbose=YES {name}"
        )
    );
    assert_eq!(
        fx.calls_of("bhyve"),
        [format!(
            "bhyve -c 2 -m 256M -H -A -P -u -s 0,hostbridge -s 1,virtio-blk,{run}/disk0.img \
             -s 31,lpc -l com1,stdio {name}"
        )]
    );
    assert_eq!(
        fx.calls_of("bhyvectl"),
        [format!("bhyvectl --destroy --vm={name}")]
    );
    let boot = fx.machine.run_dir.join("bhyve-boot/boot");
    assert_eq!(
        fs::read(boot.join("kernel/kernel")).unwrap(),
        b"\x7fELF fake kernel"
    );
    assert!(boot.join("lua/loader.lua").is_file());
}

#[test]
fn the_guest_writes_to_a_copy_never_to_the_image() {
    let fx = fixture(LOADER_OK, BHYVE_OK);
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let mut console = fx.console();
    run_like_the_session(vm.as_mut(), &mut console);
    assert_eq!(
        fs::read(&fx.machine.disks[0].path).unwrap(),
        b"original image"
    );
    assert_eq!(
        fs::read_to_string(fx.machine.run_dir.join("disk0.img")).unwrap(),
        "original imageguest-write\n"
    );
}

#[test]
fn kill_asks_with_sigterm_first() {
    // bhyve turns SIGTERM into an ACPI power-off; this guest obeys and says so. (Its shell's
    // report of the killed `sleep` is not bhyve's, so stderr is silenced.)
    let fx = fixture(
        LOADER_OK,
        "exec 2>/dev/null\ntrap 'echo powering off; exit 1' TERM\necho up\nwhile :; do sleep 0.05; done\n",
    );
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let mut console = fx.console();
    let pid = fx.bhyve_pid();
    vm.kill();
    assert!(!alive(pid));
    assert_eq!(vm.try_wait().unwrap(), Some(String::new()));
    assert_eq!(fx.destroys(), 1);
    let mut text = String::new();
    console.set_nonblocking(false).unwrap();
    console.read_to_string(&mut text).unwrap();
    assert_eq!(
        text,
        "Consoles: userboot\nLoading kernel...\nup\npowering off\n"
    );
    drop(vm);
    assert_eq!(fx.destroys(), 1);
}

#[test]
fn kill_ends_a_bhyve_that_ignores_sigterm() {
    let fx = fixture(
        LOADER_OK,
        "trap '' TERM\necho up\nwhile :; do sleep 0.05; done\n",
    );
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let _console = fx.console();
    let pid = fx.bhyve_pid();
    let started = Instant::now();
    vm.kill();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!alive(pid));
    let said = vm.try_wait().unwrap().unwrap();
    assert!(said.contains("killed by signal 9"), "{said}");
    assert_eq!(fx.destroys(), 1);
}

#[test]
fn dropping_the_vm_ends_bhyve_and_destroys_it() {
    let fx = fixture(LOADER_OK, "echo up\nwhile :; do sleep 0.05; done\n");
    let vm = fx.backend.start(&fx.machine).unwrap();
    let pid = fx.bhyve_pid();
    assert!(alive(pid));
    assert_eq!(fx.destroys(), 0);
    drop(vm);
    assert!(!alive(pid));
    assert_eq!(fx.destroys(), 1);
}

#[test]
fn a_failing_bhyveload_is_a_helper_error_and_starts_no_bhyve() {
    let fx = fixture(
        "echo 'vm_create: Operation not permitted' >&2\nexit 1\n",
        BHYVE_OK,
    );
    match fx.backend.start(&fx.machine) {
        Err(BackendError::Helper { program, message }) => {
            assert_eq!(program, "bhyveload");
            assert!(
                message.contains("vm_create: Operation not permitted"),
                "{message}"
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("started"),
    }
    assert!(fx.calls_of("bhyve").is_empty());
    assert_eq!(fx.destroys(), 1, "bhyveload may have created the VM");
}

#[test]
fn a_loader_stuck_at_its_prompt_is_given_up() {
    let mut fx = fixture(
        "echo \"can't load 'kernel'\"\necho 'OK '\nexec sleep 30\n",
        BHYVE_OK,
    );
    fx.backend.load_timeout = Duration::from_millis(500);
    let started = Instant::now();
    match fx.backend.start(&fx.machine) {
        Err(BackendError::Helper { message, .. }) => {
            assert!(message.contains("can't load 'kernel'"), "{message}");
            assert!(
                message.contains("did not load the kernel within 0.5 s"),
                "{message}"
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("started"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(fx.calls_of("bhyve").is_empty());
    assert_eq!(fx.destroys(), 1);
}

#[test]
fn bhyves_own_errors_come_with_what_the_status_means() {
    let fx = fixture(
        LOADER_OK,
        "echo 'bhyve: Could not open backing file: No such file' >&2\nexit 4\n",
    );
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let mut console = fx.console();
    let (_, said) = run_like_the_session(vm.as_mut(), &mut console);
    assert_eq!(
        said,
        "bhyve: Could not open backing file: No such file\nbhyve exited due to an error (status 4)"
    );
    assert_eq!(fx.destroys(), 1);
}

#[test]
fn the_exit_is_reported_only_after_the_whole_console_arrived() {
    // Far more than any pipe or socket buffer, written just before bhyve exits.
    let fx = fixture(
        LOADER_OK,
        "i=0\nwhile [ $i -lt 4000 ]; do echo \"line $i of a long panic message......\"; \
         i=$((i+1)); done\necho 'panic: the last line'\nexit 0\n",
    );
    let mut vm = fx.backend.start(&fx.machine).unwrap();
    let mut console = fx.console();
    let (text, said) = run_like_the_session(vm.as_mut(), &mut console);
    assert_eq!(said, "");
    assert!(text.ends_with("line 3999 of a long panic message......\npanic: the last line\n"));
    assert_eq!(text.lines().count(), 2 + 4000 + 1);
}

#[test]
fn machines_bhyve_cannot_boot_are_refused_before_anything_runs() {
    let fx = fixture(LOADER_OK, BHYVE_OK);
    let mut linux = fx.machine.clone();
    linux.os = GuestOs::Linux;
    let mut with_port = fx.machine.clone();
    with_port.port_socket = Some(fx.machine.run_dir.join("port.sock"));
    for machine in [linux, with_port] {
        match fx.backend.start(&machine) {
            Err(BackendError::Io { source, .. }) => {
                assert_eq!(source.kind(), ErrorKind::Unsupported)
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("started"),
        }
    }
    assert!(fx.calls().is_empty());
}

#[test]
fn detect_finds_the_programs_on_path_and_checks_the_host() {
    let fx = fixture(LOADER_OK, BHYVE_OK);
    let fake_bin = fakes().bhyve.parent().unwrap();
    let path = std::env::join_paths([Path::new("/nonexistent"), fake_bin]).unwrap();
    let root = fx.dir.path().join("root");
    let backend = BhyveBackend::detect_in(Some(&path), &root).unwrap();
    assert_eq!(backend.programs, *fakes());
    assert_eq!(backend.host_root, root);
    assert_eq!(backend.name(), "bhyve");

    fs::remove_file(root.join("boot/kernel/vmm.ko")).unwrap();
    match BhyveBackend::detect_in(Some(&path), &root) {
        Err(BackendError::MissingProgram { program, hint }) => {
            assert_eq!(program, "vmm.ko");
            assert!(hint.contains("kldload vmm"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    let empty = PathBuf::from("/nonexistent");
    match BhyveBackend::detect_in(Some(empty.as_os_str()), &root) {
        Err(BackendError::MissingProgram { program, .. }) => assert_eq!(program, "bhyve"),
        other => panic!("{other:?}"),
    }
}
