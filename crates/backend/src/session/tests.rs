//! The session against a scripted guest: no hypervisor, real sockets.

use super::*;
use crate::machine::{GuestOs, Machine};
use rustix::termios::{LocalModes, Termios, Winsize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vmlane_proto::{encode, GuestMessage, HostMessage, Input, WindowSize};
use vmlane_spec::GuestStatus;

/// What the fake guest does once connected.
#[derive(Clone, Default)]
struct Script {
    console: Vec<u8>,
    port: Vec<u8>,
    /// After writing, the "VM" exits (as after a panic or a reboot).
    exit_after: bool,
    /// After the request, echo input as stdout, report sizes as `[ROWSxCOLS]`, and exit 3 at
    /// the end of input or a Ctrl-D.
    echo_input: bool,
    /// Port bytes sent before waiting for the request (a `Ready` frame).
    before_request: Vec<u8>,
    /// The "VM" exits at once without a word, as QEMU does when it cannot restore a guest.
    dies_at_start: bool,
    /// The VM's helper (a virtiofsd) exits once the guest has its request, and the guest
    /// then waits on it (or, with `exit_after`, the VM ends just after).
    helper_dies: bool,
    /// After the request, the guest waits for its start, as the init does.
    waits_for_start: bool,
}

struct FakeBackend {
    script: Script,
    request: Arc<Mutex<Vec<u8>>>,
}

struct FakeVm {
    exit_read: OwnedFd,
    /// Readable once the fake helper has exited.
    helper_read: OwnedFd,
    exited: Arc<Mutex<bool>>,
    /// What the guest had received from the host when it was saved.
    request: Arc<Mutex<Vec<u8>>>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

impl Backend for FakeBackend {
    fn name(&self) -> &str {
        "fake"
    }

    fn start(&self, machine: &Machine) -> Result<Box<dyn RunningVm>, BackendError> {
        let (exit_read, exit_write) = pipe();
        let (helper_read, helper_write) = pipe();
        let exited = Arc::new(Mutex::new(self.script.dies_at_start));
        let (script, request, machine) =
            (self.script.clone(), self.request.clone(), machine.clone());
        let vm_request = request.clone();
        if script.dies_at_start {
            std::fs::File::from(exit_write).write_all(b"x").unwrap();
            return Ok(Box::new(FakeVm {
                exit_read,
                helper_read,
                exited,
                request: vm_request,
            }));
        }
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
            // A FreeBSD guest's serial port keeps nothing sent before it is opened: the
            // request must wait for its Ready.
            if machine.os == GuestOs::FreeBsd {
                std::thread::sleep(Duration::from_millis(100));
                if readable(Some(&port)) {
                    request.lock().unwrap().extend_from_slice(EARLY);
                }
            }
            let _ = port.write_all(&script.before_request);
            // A FreeBSD guest that never says Ready has its whole run on its disk.
            if machine.os == GuestOs::Linux || !script.before_request.is_empty() {
                wait_for_request(&mut port, &mut decoder, &request);
            }
            if script.waits_for_start {
                wait_for_start(&mut port, &mut decoder, &request);
            }
            let _ = port.write_all(&script.port);
            let helper = Some(helper_write).filter(|_| !script.helper_dies);
            if script.helper_dies && script.exit_after {
                // The VM's end takes its helper first.
                std::thread::sleep(Duration::from_millis(100));
            }
            if script.echo_input {
                echo_input(&mut port, &mut decoder);
            }
            if script.exit_after {
                drop((console, port, helper));
                let mut exit = std::fs::File::from(exit_write);
                exit.write_all(b"x").unwrap();
            } else {
                // Stay up until the session ends the run.
                std::thread::sleep(Duration::from_secs(30));
            }
        });
        Ok(Box::new(FakeVm {
            exit_read,
            helper_read,
            exited,
            request: vm_request,
        }))
    }
}

/// What the fake guest records when the host wrote to its port before it was ready.
const EARLY: &[u8] = b"sent before Ready";

/// Reads what the host sends until its run request, keeping every byte in `received`.
fn wait_for_request(port: &mut UnixStream, decoder: &mut Decoder, received: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = port.read(&mut buf).unwrap();
        received.lock().unwrap().extend_from_slice(&buf[..n]);
        decoder.push(&buf[..n]);
        while let Some(message) = decoder.next_message::<HostMessage>().unwrap() {
            if matches!(message, HostMessage::Run(_)) {
                return;
            }
        }
    }
}

/// Reads what the host sends until the start of the command, keeping every byte.
fn wait_for_start(port: &mut UnixStream, decoder: &mut Decoder, received: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(message) = decoder.next_message::<HostMessage>().unwrap() {
            if matches!(message, HostMessage::Start) {
                return;
            }
        }
        let n = port.read(&mut buf).unwrap_or(0);
        if n == 0 {
            // The host ended the run first.
            return;
        }
        received.lock().unwrap().extend_from_slice(&buf[..n]);
        decoder.push(&buf[..n]);
    }
}

/// The guest half of [`Script::echo_input`].
fn echo_input(port: &mut UnixStream, decoder: &mut Decoder) {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(message) = decoder.next_message::<HostMessage>().unwrap() {
            let (reply, last) = match message {
                HostMessage::Stdin(data) => {
                    let last = data.contains(&0x04);
                    (GuestMessage::Stdout(data), last)
                }
                HostMessage::WindowSize(size) => (
                    GuestMessage::Stdout(format!("[{}x{}]", size.rows, size.cols).into_bytes()),
                    false,
                ),
                HostMessage::StdinClosed => (GuestMessage::Stdout(b"[closed]".to_vec()), true),
                HostMessage::Start => continue,
                HostMessage::Run(_) | HostMessage::Prepare { .. } => {
                    panic!("a second run request")
                }
            };
            port.write_all(&encode(&reply)).unwrap();
            if last {
                port.write_all(&encode(&GuestMessage::Exit(GuestStatus::Exited(3))))
                    .unwrap();
                return;
            }
        }
        match port.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

impl RunningVm for FakeVm {
    fn exit_fd(&self) -> RawFd {
        self.exit_read.as_raw_fd()
    }

    fn helper_fds(&self) -> Vec<RawFd> {
        vec![self.helper_read.as_raw_fd()]
    }

    fn helper_exited(&mut self) -> Option<String> {
        Some("the helper stopped".into())
    }

    fn try_wait(&mut self) -> io::Result<Option<String>> {
        *self.exited.lock().unwrap() = true;
        Ok(Some(String::new()))
    }

    fn kill(&mut self) {
        *self.exited.lock().unwrap() = true;
    }

    fn save(
        &mut self,
        state: &std::path::Path,
        _ram: &std::path::Path,
    ) -> Result<(), BackendError> {
        let received = self.request.lock().unwrap().len();
        std::fs::write(state, format!("state; {received} bytes received")).unwrap();
        Ok(())
    }

    fn resume(&mut self) -> Result<(), BackendError> {
        if *self.exited.lock().unwrap() {
            return Err(BackendError::Unsupported {
                backend: "fake",
                what: "resume a VM that is gone",
            });
        }
        Ok(())
    }
}

struct Ran {
    result: Result<(Outcome, Timings), SessionError>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    request: Vec<u8>,
    console_log: String,
}

/// The request of a run of `true`.
fn run_true() -> GuestChannel {
    GuestChannel::Port(RunRequest {
        argv: vec![b"true".to_vec()],
        env: vec![],
        cwd: b"/".to_vec(),
        share: None,
        rwdirs: vec![],
        input: Input::Null,
    })
}

fn run(script: Script, timeout: Option<Duration>) -> Ran {
    run_with(script, timeout, run_true())
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
        framed: false,
        request: None,
    };
    run_with(script, timeout, channel)
}

/// A run of a FreeBSD guest that reports in frames on its second serial port, its kernel
/// writing `console` meanwhile.
fn run_framed(console: &str, port: Vec<u8>, exit_after: bool) -> Ran {
    let script = Script {
        console: console.as_bytes().to_vec(),
        port,
        exit_after,
        ..Script::default()
    };
    let channel = GuestChannel::Console {
        token: TOKEN.into(),
        debugger: false,
        framed: true,
        request: None,
    };
    run_with(script, Some(Duration::from_secs(20)), channel)
}

const TOKEN: &str = "1234567890abcdef";

fn run_with(script: Script, timeout: Option<Duration>, channel: GuestChannel) -> Ran {
    run_reading(script, timeout, channel, io::stdin().as_fd())
}

/// A run of `true` that saves or restores a guest.
fn run_snapshot(script: Script, snapshot: Snapshotting) -> Ran {
    run_session_in(
        script,
        Some(Duration::from_secs(20)),
        run_true(),
        io::stdin().as_fd(),
        snapshot,
    )
}

/// A run whose command reads the host's input from `input_fd`.
fn run_reading(
    script: Script,
    timeout: Option<Duration>,
    channel: GuestChannel,
    input_fd: BorrowedFd<'_>,
) -> Ran {
    run_session_in(script, timeout, channel, input_fd, Snapshotting::Off)
}

fn run_session_in(
    script: Script,
    timeout: Option<Duration>,
    channel: GuestChannel,
    input_fd: BorrowedFd<'_>,
    snapshot: Snapshotting,
) -> Ran {
    run_session_turn(script, timeout, channel, input_fd, snapshot, None)
}

/// A run of `true` whose command starts when `turn` comes.
fn run_on_turn(script: Script, timeout: Option<Duration>, turn: &Turn) -> Ran {
    let script = Script {
        waits_for_start: true,
        ..script
    };
    let input = io::stdin();
    run_session_turn(
        script,
        timeout,
        run_true(),
        input.as_fd(),
        Snapshotting::Off,
        Some(turn),
    )
}

fn run_session_turn(
    script: Script,
    timeout: Option<Duration>,
    channel: GuestChannel,
    input_fd: BorrowedFd<'_>,
    snapshot: Snapshotting,
    turn: Option<&Turn>,
) -> Ran {
    let console_channel = matches!(channel, GuestChannel::Console { .. });
    let has_port = !matches!(channel, GuestChannel::Console { framed: false, .. });
    let dir = tempfile::tempdir().unwrap();
    let machine = Machine {
        os: if console_channel {
            GuestOs::FreeBsd
        } else {
            GuestOs::Linux
        },
        kernel: PathBuf::from("/k"),
        initrd: Some(PathBuf::from("/i")),
        cmdline: String::new(),
        cpus: 1,
        memory_mib: 128,
        console_socket: dir.path().join("console.sock"),
        port_socket: has_port.then(|| dir.path().join("port.sock")),
        share: None,
        rwdirs: Vec::new(),
        disks: Vec::new(),
        run_dir: dir.path().to_path_buf(),
        restore_from: None,
        control_socket: None,
        guest_ram: None,
    };
    let backend = FakeBackend {
        script,
        request: Arc::default(),
    };
    let mut console = ConsoleLog::create(&dir.path().join("console.log")).unwrap();
    let signals = StopSignals::register().unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = run_session_with_input(
        &backend,
        Session {
            machine,
            channel,
            timeout,
            turn,
            stdout: &mut stdout,
            stderr: &mut stderr,
            console: &mut console,
            signals: &signals,
            snapshot,
        },
        input_fd,
    );
    let request = backend.request.lock().unwrap().clone();
    drop(console);
    Ran {
        result,
        stdout,
        stderr,
        request,
        console_log: std::fs::read_to_string(dir.path().join("console.log")).unwrap(),
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
    let sent = run_request(&ran.request);
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
fn a_helper_gone_while_the_guest_waits_on_it_fails_the_run_instead_of_hanging() {
    let started = std::time::Instant::now();
    let ran = run(
        Script {
            helper_dies: true,
            ..Script::default()
        },
        Some(Duration::from_secs(20)),
    );
    assert!(
        matches!(&ran.result, Err(SessionError::HelperFailed(said)) if said == "the helper stopped"),
        "{:?}",
        ran.result.map(|r| r.0)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Also when its helper goes just before it, as virtiofsd does when QEMU ends: that is part of
/// the VM's end, not a failure of its own.
#[test]
fn a_vm_that_exits_silently_quotes_its_last_console_line() {
    for helper_dies in [false, true] {
        let ran = run(
            Script {
                console: b"last words\n".to_vec(),
                exit_after: true,
                helper_dies,
                ..Script::default()
            },
            None,
        );
        assert_eq!(
            ran.result.unwrap().0,
            Outcome::VmDied(Some("last words".into())),
            "helper gone first: {helper_dies}"
        );
    }
}

#[test]
fn an_init_that_never_reached_the_port_fails_the_run_with_the_step_it_named() {
    let ran = run(
        Script {
            console: b"vmlane-init: failed to find the host port: no virtio port named vmlane.0 appeared within 10s\nreboot: machine restart\n".to_vec(),
            exit_after: true,
            ..Script::default()
        },
        None,
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::InitFailed {
            step: "find the host port".into(),
            message: "no virtio port named vmlane.0 appeared within 10s".into()
        }
    );
}

#[test]
fn a_ready_guest_is_saved_before_it_gets_its_request_and_then_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let (state, console) = (dir.path().join("state"), dir.path().join("console"));
    let ran = run_snapshot(
        Script {
            console: b"booted\n".to_vec(),
            before_request: frames(&[GuestMessage::Ready]),
            port: frames(&[GuestMessage::Exit(GuestStatus::Exited(0))]),
            ..Script::default()
        },
        Snapshotting::Save {
            state: state.clone(),
            ram: dir.path().join("ram"),
            console: console.clone(),
        },
    );
    let (outcome, timings) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(0)));
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "state; 0 bytes received",
        "saved before the request was sent"
    );
    assert_eq!(std::fs::read_to_string(&console).unwrap(), "booted\n");
    assert!(timings.host.iter().any(|(n, _)| n == "guest saved"));
    assert_eq!(run_request(&ran.request).argv, [b"true".to_vec()]);
}

#[test]
fn a_restored_run_logs_the_saved_boot_then_its_own_console() {
    let ran = run_snapshot(
        Script {
            console: b"after\n".to_vec(),
            port: frames(&[GuestMessage::Exit(GuestStatus::Exited(4))]),
            ..Script::default()
        },
        Snapshotting::Restored {
            console: b"[    0.1] Linux version 6.1\n".to_vec(),
            answer_within: RESTORED_ANSWER_LIMIT,
        },
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Completed(GuestStatus::Exited(4))
    );
    assert_eq!(
        ran.console_log,
        format!("[    0.1] Linux version 6.1\n{RESTORE_LINE}\nafter\n")
    );
}

#[test]
fn a_guest_that_cannot_be_restored_is_an_error_of_its_own() {
    let ran = run_snapshot(
        Script {
            dies_at_start: true,
            ..Script::default()
        },
        Snapshotting::Restored {
            console: b"boot\n".to_vec(),
            answer_within: RESTORED_ANSWER_LIMIT,
        },
    );
    assert!(
        matches!(ran.result, Err(SessionError::RestoreFailed(_))),
        "{:?}",
        ran.result
    );
}

/// Restores a guest that acts as `script` says, with a short limit; its run must end as a
/// restore that failed, well before the run's own timeout.
fn assert_not_restored(script: Script) {
    let started = std::time::Instant::now();
    let ran = run_snapshot(
        script,
        Snapshotting::Restored {
            console: b"boot\n".to_vec(),
            answer_within: Duration::from_millis(300),
        },
    );
    match ran.result {
        Err(SessionError::RestoreFailed(said)) => {
            assert!(said.contains("did not start its command"), "{said}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_restored_guest_that_never_answers_was_not_restored() {
    // Up, printing, but silent on its port: as a guest whose timer interrupt never comes.
    assert_not_restored(Script {
        console: b"after\n".to_vec(),
        ..Script::default()
    });
}

fn mark(name: &str) -> GuestMessage {
    GuestMessage::Mark {
        name: name.into(),
        boot_ns: 1,
    }
}

#[test]
fn a_restored_guest_that_stalls_before_its_command_starts_was_not_restored() {
    // Its root ready, then silent: the run boots again, its command never having run.
    assert_not_restored(Script {
        port: frames(&[mark("root ready")]),
        ..Script::default()
    });
}

#[test]
fn a_restored_guest_waiting_for_its_turn_has_its_whole_limit_once_the_turn_comes() {
    let turn = Turn::new().unwrap();
    let input = io::stdin();
    let ran = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(600));
            turn.open();
        });
        run_session_turn(
            Script {
                before_request: frames(&[mark("root ready")]),
                waits_for_start: true,
                port: frames(&[
                    mark(vmlane_proto::COMMAND_STARTED),
                    GuestMessage::Exit(GuestStatus::Exited(0)),
                ]),
                ..Script::default()
            },
            Some(Duration::from_secs(20)),
            run_true(),
            input.as_fd(),
            Snapshotting::Restored {
                console: b"boot\n".to_vec(),
                answer_within: Duration::from_millis(300),
            },
            Some(&turn),
        )
    });
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Completed(GuestStatus::Exited(0))
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
fn a_fatal_trap_whose_report_never_ends_is_a_panic_after_the_grace() {
    // Seen with a stock kernel at its PVH entry under TCG: the report stops mid-way.
    let ran = run_console(
        "Fatal trap 12: page fault while in kernel mode\ncpuid = 0; apic id = 00\nfault virtual address\t= 0x0\n",
        false,
        Some(Duration::from_secs(20)),
    );
    let (outcome, timings) = ran.result.unwrap();
    assert_eq!(
        outcome,
        Outcome::KernelPanic("Fatal trap 12: page fault while in kernel mode".into())
    );
    let gone = timings.host.iter().find(|(n, _)| n == "vm gone").unwrap().1;
    assert!(gone < Duration::from_secs(10), "not the timeout: {gone:?}");
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

/// What a FreeBSD kernel prints on its console while vmlane's init runs a command that dies of
/// SIGUSR2, with the output that used to share the console.
const FREEBSD_CONSOLE: &str = "Booting...\r\nvmlane:1234567890abcdef:start\r\n\
    pid 14 (probe), jid 0, uid 0: exited on signal 12\r\n";

#[test]
fn a_framed_freebsd_run_keeps_stdout_stderr_and_the_kernels_console_apart() {
    let ran = run_framed(
        FREEBSD_CONSOLE,
        frames(&[
            GuestMessage::Stdout(b"out\r\n\0\xff".to_vec()),
            GuestMessage::Stderr(b"err without newline".to_vec()),
            GuestMessage::Stdout(b"{\"kind\":\"probe\"}\n".to_vec()),
            GuestMessage::Exit(GuestStatus::Signaled(12)),
        ]),
        false,
    );
    let (outcome, timings) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Signaled(12)));
    assert_eq!(ran.stdout, b"out\r\n\0\xff{\"kind\":\"probe\"}\n");
    assert_eq!(ran.stderr, b"err without newline");
    assert!(ran.request.is_empty(), "a FreeBSD guest is sent nothing");
    assert!(timings.host.iter().any(|(n, _)| n == "result received"));
    // The kernel's line is the console's alone, and the output is not there.
    assert!(ran.console_log.contains("exited on signal 12"));
    assert!(!ran.console_log.contains("probe\"}"));
}

#[test]
fn a_framed_result_sent_just_before_the_vm_exits_still_counts() {
    let ran = run_framed(
        "vmlane:1234567890abcdef:start\nkernel says\n",
        frames(&[
            GuestMessage::Stdout(b"last".to_vec()),
            GuestMessage::Exit(GuestStatus::Exited(4)),
        ]),
        true,
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(4)));
    assert_eq!(ran.stdout, b"last");
}

#[test]
fn a_failure_before_the_channel_opened_comes_from_the_console_and_after_from_a_frame() {
    let ran = run_framed(
        "vmlane:?:failed open the channel /dev/cuau1: errno 2 (ENOENT)\n",
        Vec::new(),
        false,
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::InitFailed {
            step: "open the channel /dev/cuau1".into(),
            message: "errno 2 (ENOENT)".into()
        }
    );
    let failed = GuestMessage::Failed {
        step: "fork".into(),
        message: "errno 35 (EAGAIN)".into(),
    };
    let ran = run_framed("vmlane:1234567890abcdef:start\n", frames(&[failed]), false);
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::InitFailed {
            step: "fork".into(),
            message: "errno 35 (EAGAIN)".into()
        }
    );
}

#[test]
fn a_panic_while_a_framed_command_runs_ends_the_run_as_a_panic() {
    let ran = run_framed(
        "vmlane:1234567890abcdef:start\npanic: vm_fault\ncpuid = 0\nKDB: stack backtrace:\n",
        frames(&[GuestMessage::Stdout(b"before the panic\n".to_vec())]),
        true,
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::KernelPanic("panic: vm_fault".into()));
    assert_eq!(ran.stdout, b"before the panic\n");
}

#[test]
fn hostile_frames_on_the_channel_are_a_protocol_error_not_a_panic() {
    // A frame that claims 4 GiB, then bytes that are not frames at all.
    let mut port = vec![17, 0xff, 0xff, 0xff, 0xff];
    port.extend_from_slice(&[0xaa; 64]);
    let ran = run_framed("vmlane:1234567890abcdef:start\n", port, false);
    assert!(matches!(ran.result, Err(SessionError::Protocol(_))));
    let ran = run_framed("", vec![99, 0, 0, 0, 0], false);
    assert!(matches!(ran.result, Err(SessionError::Protocol(_))));
}

/// Frames the guest got, in order, by kind.
fn kinds(sent: &[u8]) -> Vec<&'static str> {
    let mut decoder = Decoder::new();
    decoder.push(sent);
    std::iter::from_fn(|| decoder.next_message::<HostMessage>().unwrap())
        .map(|message| match message {
            HostMessage::Prepare { .. } => "prepare",
            HostMessage::Run(_) => "run",
            HostMessage::Start => "start",
            _ => "input",
        })
        .collect()
}

#[test]
fn a_run_without_a_turn_is_started_with_its_request() {
    let ran = run(
        Script {
            port: frames(&[GuestMessage::Exit(GuestStatus::Exited(0))]),
            waits_for_start: true,
            ..Script::default()
        },
        Some(Duration::from_secs(20)),
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Completed(GuestStatus::Exited(0))
    );
    assert_eq!(kinds(&ran.request), ["prepare", "run", "start"]);
}

/// A run whose command exits 0 once started, while another thread does `act` to its turn
/// after `delay`.
fn run_while_turn_is(delay: Duration, act: fn(&Turn), timeout: Duration) -> Ran {
    let turn = Turn::new().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(delay);
            act(&turn);
        });
        run_on_turn(
            Script {
                port: frames(&[GuestMessage::Exit(GuestStatus::Exited(0))]),
                ..Script::default()
            },
            Some(timeout),
            &turn,
        )
    })
}

#[test]
fn a_run_given_a_turn_starts_its_command_only_when_the_turn_comes() {
    let given = std::time::Instant::now();
    let ran = run_while_turn_is(
        Duration::from_millis(300),
        Turn::open,
        Duration::from_secs(20),
    );
    let (outcome, timings) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(0)));
    assert_eq!(kinds(&ran.request), ["prepare", "run", "start"]);
    let came = timings.host.iter().find(|(name, _)| name == "turn came");
    assert!(
        came.is_some_and(|(_, at)| *at >= Duration::from_millis(250)),
        "{timings:?}"
    );
    assert!(given.elapsed() >= Duration::from_millis(300));
}

#[test]
fn the_timeout_of_a_run_waiting_for_its_turn_counts_from_the_turn() {
    let ran = run_while_turn_is(
        Duration::from_millis(600),
        Turn::open,
        Duration::from_millis(300),
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Completed(GuestStatus::Exited(0))
    );
    // And once started, the command has no more than its timeout.
    let turn = Turn::new().unwrap();
    turn.open();
    let ran = run_on_turn(Script::default(), Some(Duration::from_millis(300)), &turn);
    assert_eq!(ran.result.unwrap().0, Outcome::TimedOut);
}

#[test]
fn a_run_whose_turn_is_cancelled_ends_without_starting_its_command() {
    let ran = run_while_turn_is(
        Duration::from_millis(200),
        Turn::cancel,
        Duration::from_secs(20),
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Interrupted(signal_hook::consts::SIGTERM)
    );
}

/// The request the guest got, after the clock and entropy that come first.
fn run_request(sent: &[u8]) -> RunRequest {
    let mut decoder = Decoder::new();
    decoder.push(sent);
    let Some(HostMessage::Prepare { entropy, .. }) = decoder.next_message().unwrap() else {
        panic!("no Prepare first")
    };
    assert_eq!(entropy.len(), 64);
    match decoder.next_message::<HostMessage>().unwrap().unwrap() {
        HostMessage::Run(request) => request,
        other => panic!("{other:?}"),
    }
}

fn reading(input: Input) -> GuestChannel {
    GuestChannel::Port(shell_request(input))
}

/// A request for the login shell, reading `input`.
fn shell_request(input: Input) -> RunRequest {
    RunRequest {
        argv: vec![],
        env: vec![],
        cwd: b"/".to_vec(),
        share: None,
        rwdirs: vec![],
        input,
    }
}

/// A FreeBSD guest with a channel that asks for its request.
fn freebsd_reading(input: Input) -> GuestChannel {
    GuestChannel::Console {
        token: TOKEN.into(),
        debugger: false,
        framed: true,
        request: Some(shell_request(input)),
    }
}

#[test]
fn a_framed_freebsd_guest_gets_its_request_once_it_says_it_is_ready() {
    let script = Script {
        before_request: frames(&[GuestMessage::Ready]),
        port: frames(&[
            GuestMessage::Stdout(b"ran\n".to_vec()),
            GuestMessage::Exit(GuestStatus::Exited(0)),
        ]),
        ..Script::default()
    };
    let ran = run_with(
        script,
        Some(Duration::from_secs(20)),
        freebsd_reading(Input::Null),
    );
    assert_eq!(
        ran.result.unwrap().0,
        Outcome::Completed(GuestStatus::Exited(0))
    );
    assert!(
        !ran.request.starts_with(EARLY),
        "sent before the guest was ready"
    );
    assert_eq!(run_request(&ran.request).input, Input::Null);
    assert_eq!(ran.stdout, b"ran\n");
}

#[test]
fn piped_input_reaches_a_framed_freebsd_guest_after_its_request() {
    let (read, write) = pipe();
    // Written at once: it must still wait for the guest's Ready and its request.
    std::fs::File::from(write)
        .write_all(b"typed early")
        .unwrap();
    let script = Script {
        before_request: frames(&[GuestMessage::Ready]),
        ..ECHO
    };
    let ran = run_reading(
        script,
        Some(Duration::from_secs(20)),
        freebsd_reading(Input::Pipe),
        read.as_fd(),
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(3)));
    assert!(
        !ran.request.starts_with(EARLY),
        "sent before the guest was ready"
    );
    assert_eq!(ran.stdout, b"typed early[closed]");
    assert_eq!(run_request(&ran.request).input, Input::Pipe);
}

const ECHO: Script = Script {
    console: Vec::new(),
    port: Vec::new(),
    exit_after: false,
    echo_input: true,
    before_request: Vec::new(),
    dies_at_start: false,
    helper_dies: false,
    waits_for_start: false,
};

#[test]
fn piped_input_reaches_the_guest_and_its_end_is_sent() {
    let (read, write) = pipe();
    let writer = std::thread::spawn(move || {
        let mut write = std::fs::File::from(write);
        write.write_all(b"echo hi; exit 3\n\x01x").unwrap();
    });
    let ran = run_reading(
        ECHO,
        Some(Duration::from_secs(20)),
        reading(Input::Pipe),
        read.as_fd(),
    );
    writer.join().unwrap();
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(3)));
    // A pipe is passed on byte for byte: no escape, no window size.
    assert_eq!(ran.stdout, b"echo hi; exit 3\n\x01x[closed]");
    assert_eq!(run_request(&ran.request).input, Input::Pipe);
}

/// A pseudo-terminal of the given size: (master, slave).
fn pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-pointers and a valid winsize; no name buffer or termios is asked for.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(ret, 0, "{}", io::Error::last_os_error());
    // SAFETY: openpty succeeded; both descriptors are ours.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn termios(fd: &OwnedFd) -> Termios {
    rustix::termios::tcgetattr(fd).unwrap()
}

fn same_termios(a: &Termios, b: &Termios) -> bool {
    // `SpecialCodes` has no `PartialEq`; its `Debug` lists every code, one to one.
    let codes = |t: &Termios| format!("{:?}", t.special_codes);
    (
        a.input_modes,
        a.output_modes,
        a.control_modes,
        a.local_modes,
        codes(a),
    ) == (
        b.input_modes,
        b.output_modes,
        b.control_modes,
        b.local_modes,
        codes(b),
    )
}

#[test]
fn a_terminal_is_raw_while_relayed_sized_and_restored_afterwards() {
    let (master, slave) = pty(33, 101);
    let before = termios(&slave);
    let watched = slave.try_clone().unwrap();
    let typist = std::thread::spawn(move || {
        let mut keys = std::fs::File::from(master);
        // Wait for raw mode: in cooked mode the terminal would hold these keys as a line.
        let started = std::time::Instant::now();
        while rustix::termios::tcgetattr(&watched)
            .is_ok_and(|now| now.local_modes.contains(LocalModes::ICANON))
        {
            assert!(started.elapsed() < Duration::from_secs(10), "never raw");
            std::thread::sleep(Duration::from_millis(10));
        }
        let size = Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&keys, size).unwrap();
        // This terminal is nobody's controlling terminal, so the signal is sent by hand.
        // SAFETY: raise has no pointer arguments.
        unsafe { libc::raise(libc::SIGWINCH) };
        std::thread::sleep(Duration::from_millis(200));
        // Ctrl-C is a key like any other, and Ctrl-A Ctrl-A is one Ctrl-A.
        keys.write_all(b"a\x03\x01\x01b\x04").unwrap();
        keys
    });
    let ran = run_reading(
        ECHO,
        Some(Duration::from_secs(20)),
        reading(Input::Terminal(WindowSize::default())),
        slave.as_fd(),
    );
    let _master = typist.join().unwrap();
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Completed(GuestStatus::Exited(3)));
    assert_eq!(
        run_request(&ran.request).input,
        Input::Terminal(WindowSize {
            rows: 33,
            cols: 101
        })
    );
    assert_eq!(ran.stdout, b"[40x120]a\x03\x01b\x04");
    assert!(
        same_termios(&before, &termios(&slave)),
        "termios not restored"
    );
}

#[test]
fn ctrl_a_x_ends_the_run_and_restores_the_terminal() {
    let (master, slave) = pty(24, 80);
    let before = termios(&slave);
    let mut keys = std::fs::File::from(master);
    // Typed ahead: the terminal queues it until vmlane reads.
    keys.write_all(b"\x01").unwrap();
    keys.write_all(b"x").unwrap();
    let started = std::time::Instant::now();
    let ran = run_reading(
        ECHO,
        Some(Duration::from_secs(20)),
        reading(Input::Terminal(WindowSize::default())),
        slave.as_fd(),
    );
    let (outcome, _) = ran.result.unwrap();
    assert_eq!(outcome, Outcome::Interrupted(libc::SIGINT));
    assert_eq!(outcome.exit_code(), 130);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&ran.stderr).contains("Ctrl-A X"));
    assert!(
        same_termios(&before, &termios(&slave)),
        "termios not restored"
    );
}

#[test]
fn the_escape_is_found_across_reads_and_only_it_is_kept_from_the_guest() {
    let mut scanner = input::EscapeScanner::default();
    assert_eq!(
        scanner.scan(b"ls\x01"),
        input::Received::Data(b"ls".to_vec())
    );
    assert_eq!(
        scanner.scan(b"\x01a\x01b\x01"),
        input::Received::Data(b"\x01a\x01b".to_vec())
    );
    assert_eq!(scanner.scan(b"X rest"), input::Received::Escape(Vec::new()));
    let mut scanner = input::EscapeScanner::default();
    assert_eq!(
        scanner.scan(b"q\x01x"),
        input::Received::Escape(b"q".to_vec())
    );
}
