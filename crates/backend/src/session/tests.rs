//! The session against a scripted guest: no hypervisor, real sockets.

use super::*;
use crate::machine::{GuestOs, Machine};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vmlane_proto::{encode, GuestMessage, HostMessage};
use vmlane_spec::GuestStatus;

/// What the fake guest does once connected.
#[derive(Clone, Default)]
struct Script {
    console: Vec<u8>,
    port: Vec<u8>,
    /// After writing, the "VM" exits (as after a panic or a reboot).
    exit_after: bool,
}

struct FakeBackend {
    script: Script,
    request: Arc<Mutex<Vec<u8>>>,
}

struct FakeVm {
    exit_read: OwnedFd,
    exited: Arc<Mutex<bool>>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded; the descriptors are ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Backend for FakeBackend {
    fn name(&self) -> &str {
        "fake"
    }

    fn start(&self, machine: &Machine) -> Result<Box<dyn RunningVm>, BackendError> {
        let (exit_read, exit_write) = pipe();
        let exited = Arc::new(Mutex::new(false));
        let (script, request, machine) =
            (self.script.clone(), self.request.clone(), machine.clone());
        std::thread::spawn(move || {
            let mut console = UnixStream::connect(&machine.console_socket).unwrap();
            console.write_all(&script.console).unwrap();
            let Some(port_socket) = &machine.port_socket else {
                // A guest reporting on its console: nothing more to say.
                if script.exit_after {
                    drop(console);
                    std::fs::File::from(exit_write).write_all(b"x").unwrap();
                } else {
                    std::thread::sleep(Duration::from_secs(30));
                }
                return;
            };
            let mut port = UnixStream::connect(port_socket).unwrap();
            let mut decoder = Decoder::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = port.read(&mut buf).unwrap();
                request.lock().unwrap().extend_from_slice(&buf[..n]);
                decoder.push(&buf[..n]);
                if decoder.next_message::<HostMessage>().unwrap().is_some() {
                    break;
                }
            }
            let _ = port.write_all(&script.port);
            if script.exit_after {
                drop((console, port));
                let mut exit = std::fs::File::from(exit_write);
                exit.write_all(b"x").unwrap();
            } else {
                // Stay up until the session ends the run.
                std::thread::sleep(Duration::from_secs(30));
            }
        });
        Ok(Box::new(FakeVm { exit_read, exited }))
    }
}

impl RunningVm for FakeVm {
    fn exit_fd(&self) -> RawFd {
        self.exit_read.as_raw_fd()
    }

    fn try_wait(&mut self) -> io::Result<Option<String>> {
        *self.exited.lock().unwrap() = true;
        Ok(Some(String::new()))
    }

    fn kill(&mut self) {
        *self.exited.lock().unwrap() = true;
    }
}

struct Ran {
    result: Result<(Outcome, Timings), SessionError>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    request: Vec<u8>,
}

fn run(script: Script, timeout: Option<Duration>) -> Ran {
    let request = RunRequest {
        argv: vec![b"true".to_vec()],
        env: vec![],
        cwd: b"/".to_vec(),
        share: None,
    };
    run_with(script, timeout, GuestChannel::Port(request))
}

/// A run of a guest that reports with console markers carrying [`TOKEN`].
fn run_console(console: &str, exit_after: bool, timeout: Option<Duration>) -> Ran {
    let script = Script {
        console: console.as_bytes().to_vec(),
        exit_after,
        ..Script::default()
    };
    let channel = GuestChannel::Console {
        token: TOKEN.into(),
        debugger: false,
    };
    run_with(script, timeout, channel)
}

const TOKEN: &str = "1234567890abcdef";

fn run_with(script: Script, timeout: Option<Duration>, channel: GuestChannel) -> Ran {
    let console_channel = matches!(channel, GuestChannel::Console { .. });
    let dir = tempfile::tempdir().unwrap();
    let machine = Machine {
        os: GuestOs::Linux,
        kernel: PathBuf::from("/k"),
        initrd: Some(PathBuf::from("/i")),
        cmdline: String::new(),
        cpus: 1,
        memory_mib: 128,
        console_socket: dir.path().join("console.sock"),
        port_socket: (!console_channel).then(|| dir.path().join("port.sock")),
        share: None,
        disks: Vec::new(),
        run_dir: dir.path().to_path_buf(),
    };
    let backend = FakeBackend {
        script,
        request: Arc::default(),
    };
    let mut console = ConsoleLog::create(&dir.path().join("console.log")).unwrap();
    let signals = StopSignals::register().unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = run_session(
        &backend,
        Session {
            machine,
            channel,
            timeout,
            stdout: &mut stdout,
            stderr: &mut stderr,
            console: &mut console,
            signals: &signals,
        },
    );
    let request = backend.request.lock().unwrap().clone();
    Ran {
        result,
        stdout,
        stderr,
        request,
    }
}

fn frames(messages: &[GuestMessage]) -> Vec<u8> {
    messages.iter().flat_map(encode).collect()
}

#[test]
fn output_goes_to_its_own_stream_and_the_exit_frame_ends_the_run() {
    let ran = run(
        Script {
            port: frames(&[
                GuestMessage::Mark {
                    name: "init started".into(),
                    boot_ns: 5,
                },
                GuestMessage::Stdout(b"out\n".to_vec()),
                GuestMessage::Stderr(b"err\n".to_vec()),
                GuestMessage::Exit(GuestStatus::Exited(7)),
                GuestMessage::Stdout(b"after the end".to_vec()),
            ]),
            ..Script::default()
        },
        None,
    );
    let (outcome, timings) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(7)));
    assert_eq!(ran.stdout, b"out\n");
    assert_eq!(ran.stderr, b"err\n");
    assert_eq!(
        timings.guest,
        [("init started".to_string(), Duration::from_nanos(5))]
    );
    let mut decoder = Decoder::new();
    decoder.push(&ran.request);
    let HostMessage::Run(sent) = decoder.next_message::<HostMessage>().unwrap().unwrap();
    assert_eq!(sent.argv, [b"true".to_vec()]);
}

#[test]
fn init_failure_is_reported_with_its_step() {
    let ran = run(
        Script {
            port: frames(&[GuestMessage::Failed {
                step: "mount /proc".into(),
                message: "EPERM".into(),
            }]),
            ..Script::default()
        },
        None,
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::InitFailed {
            step: "mount /proc".into(),
            message: "EPERM".into()
        }
    );
}

#[test]
fn a_vm_that_exits_after_a_panic_is_a_kernel_panic() {
    let ran = run(
        Script {
            console:
                b"[ 1.0] booting\n[ 2.0] Kernel panic - not syncing: VFS: Unable to mount root\n"
                    .to_vec(),
            exit_after: true,
            ..Script::default()
        },
        None,
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::KernelPanic("Kernel panic - not syncing: VFS: Unable to mount root".into())
    );
}

#[test]
fn a_vm_that_exits_silently_quotes_its_last_console_line() {
    let ran = run(
        Script {
            console: b"last words\n".to_vec(),
            exit_after: true,
            ..Script::default()
        },
        None,
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::VmDied(Some("last words".into()))
    );
}

#[test]
fn output_sent_just_before_the_vm_exits_still_counts() {
    let ran = run(
        Script {
            port: frames(&[
                GuestMessage::Stdout(b"x".to_vec()),
                GuestMessage::Exit(GuestStatus::Signaled(9)),
            ]),
            exit_after: true,
            ..Script::default()
        },
        None,
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Completed(GuestStatus::Signaled(9))
    );
    assert_eq!(ran.stdout, b"x");
}

#[test]
fn a_hung_guest_times_out() {
    let started = std::time::Instant::now();
    let ran = run(Script::default(), Some(Duration::from_millis(300)));
    assert_eq!(ran.result.unwrap().0, Outcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn garbage_from_the_guest_is_a_protocol_error_not_a_panic() {
    let ran = run(
        Script {
            port: vec![0xee, 1, 0, 0, 0, 0],
            ..Script::default()
        },
        None,
    );
    assert!(matches!(ran.result, Err(SessionError::Protocol(_))));
    let ran = run(
        Script {
            port: vec![17, 0xff, 0xff, 0xff, 0x7f],
            ..Script::default()
        },
        None,
    );
    assert!(matches!(ran.result, Err(SessionError::Protocol(_))));
}

#[test]
fn console_markers_give_output_and_exit_status() {
    let ran = run_console(
        "Booting\r\n\r\nvmlane:1234567890abcdef:start\r\nprobe says hi\r\n\r\nvmlane:1234567890abcdef:exit 7\r\n",
        false,
        Some(Duration::from_secs(10)),
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(7)));
    assert_eq!(ran.stdout, b"probe says hi\n");
    assert!(ran.request.is_empty());
}

#[test]
fn a_console_result_printed_just_before_the_vm_exits_still_counts() {
    let ran = run_console(
        "vmlane:1234567890abcdef:start\nlast words\nvmlane:1234567890abcdef:signal 12\n",
        true,
        Some(Duration::from_secs(10)),
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Signaled(12)));
    assert_eq!(ran.stdout, b"last words\n");
}

#[test]
fn a_console_failure_marker_is_an_init_failure() {
    let ran = run_console(
        "vmlane:?:failed mount devfs on /dev: errno 19 (ENODEV)\n",
        false,
        Some(Duration::from_secs(10)),
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(
        outcome,
        Outcome::InitFailed {
            step: "mount devfs on /dev".into(),
            message: "errno 19 (ENODEV)".into()
        }
    );
}

#[test]
fn a_debugger_prompt_ends_the_run_at_once_as_a_panic() {
    let ran = run_console(
        "panic: vm_fault: fault on nofault entry\ncpuid = 0\nKDB: stack backtrace:\n#0 0xffffffff80b8f1ad at kdb_backtrace+0x5d\nKDB: enter: panic\ndb> ",
        false,
        Some(Duration::from_secs(20)),
    );
    let (outcome, timings) = ran.result.unwrap();
    assert_eq!(
        outcome,
        Outcome::KernelPanic("panic: vm_fault: fault on nofault entry".into())
    );
    // Ended by the prompt, well before the grace for a panic to reset runs out.
    let gone = timings.host.iter().find(|(n, _)| n == "vm gone").unwrap().1;
    assert!(gone < PANIC_GRACE, "{gone:?}");
}

#[test]
fn a_panic_that_neither_resets_nor_prompts_ends_after_the_grace() {
    let ran = run_console("panic: page fault\n", false, Some(Duration::from_secs(20)));
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::KernelPanic("panic: page fault".into()));
}

#[test]
fn a_mountroot_prompt_fails_the_run_with_the_mount_error() {
    let ran = run_console(
        "Mounting from ufs:/dev/vtbd0 failed with error 19.\n\nmountroot> ",
        false,
        Some(Duration::from_secs(20)),
    );
    let (outcome, _) = ran.result.unwrap();
    let Outcome::InitFailed { step, message } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(step, "mount the root filesystem");
    assert!(message.contains("failed with error 19"), "{message}");
    assert!(message.contains("mountroot>"), "{message}");
}
