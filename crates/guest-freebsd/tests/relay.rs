//! vmlane-relay (`init/relay.h`, over `init/channel.h`) runs in FreeBSD images, which CI cannot
//! boot. So its code is built for the host with the host's system calls
//! (`tests/relay_harness.c`), its channel is a file, and what it writes there is read back with
//! `vmlane_proto::Decoder`, as the host reads COM2. Where the host talks back, the channel is a
//! socket (`vmlane-test-stdin`) and the frames are `vmlane_proto::encode`'s.

mod support;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::decode;
use vmlane_proto::{
    encode, Decoder, GuestMessage, HostMessage, Input, RunRequest, ShareMount, WindowSize,
};
use vmlane_spec::GuestStatus;

/// `RELAY_SENT`, `RELAY_FAILED_SENT` and `RELAY_NOT_SENT` in `init/relay.h`.
const SENT: i32 = 0;
const FAILED_SENT: i32 = 1;
const NOT_SENT: i32 = 2;

fn harness() -> Option<&'static Path> {
    static HARNESS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    support::built(
        HARNESS.get_or_init(|| support::compile("relay_harness.c", "vmlane-relay-harness")),
    )
}

/// A run of the relay: how it exited, what it said, and what it sent.
struct Relayed {
    code: Option<i32>,
    stderr: String,
    messages: Vec<GuestMessage>,
}

impl Relayed {
    fn joined(&self, stderr: bool) -> Vec<u8> {
        let mut joined = Vec::new();
        for message in &self.messages {
            match (message, stderr) {
                (GuestMessage::Stdout(data), false) | (GuestMessage::Stderr(data), true) => {
                    joined.extend_from_slice(data)
                }
                _ => {}
            }
        }
        joined
    }

    fn last(&self) -> Option<&GuestMessage> {
        self.messages.last()
    }
}

/// The relay run as `vmlane-relay CHANNEL -- COMMAND...` in `dir`, its channel a fresh file.
fn relay_in(
    harness: &Path,
    dir: &Path,
    command: &[&str],
    adjust: impl Fn(&mut Command),
) -> Relayed {
    let channel = dir.join("channel");
    std::fs::write(&channel, b"").unwrap();
    let mut run = Command::new(harness);
    run.arg(&channel).arg("--").args(command).current_dir(dir);
    adjust(&mut run);
    let output = run.output().expect("run the relay");
    finished(output, &std::fs::read(&channel).unwrap())
}

fn finished(output: Output, channel: &[u8]) -> Relayed {
    Relayed {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        messages: decode(channel),
    }
}

fn relay(harness: &Path, command: &[&str]) -> Relayed {
    let dir = tempfile::tempdir().unwrap();
    relay_in(harness, dir.path(), command, |_| {})
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn stdout_stderr_and_the_exit_status_arrive_as_frames() {
    let Some(harness) = harness() else { return };
    let ran = relay(
        harness,
        &[
            "sh",
            "-c",
            "printf 'out 1\\n'; printf 'err 1' >&2; printf 'out 2'; exit 5",
        ],
    );
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert_eq!(ran.stderr, "");
    assert_eq!(ran.messages[0], GuestMessage::Ready, "Ready comes first");
    assert_eq!(ran.joined(false), b"out 1\nout 2");
    assert_eq!(ran.joined(true), b"err 1");
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(5)))
    );
}

#[test]
fn every_byte_arrives_in_order_in_frames_of_at_most_a_chunk() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 167 + i / 256) as u8).collect();
    std::fs::write(dir.path().join("data"), &data).unwrap();
    let ran = relay_in(
        harness,
        dir.path(),
        &["sh", "-c", "cat data; cat data >&2"],
        |_| {},
    );
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert!(ran.joined(false) == data, "stdout changed");
    assert!(ran.joined(true) == data, "stderr changed");
    for message in &ran.messages {
        if let GuestMessage::Stdout(d) | GuestMessage::Stderr(d) = message {
            assert!(!d.is_empty() && d.len() <= 4096, "{}", d.len());
        }
    }
}

#[test]
fn not_found_not_executable_and_signals_are_told_apart() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, "not a program").unwrap();
    let data = data.to_str().unwrap();
    let cases: [(&[&str], GuestStatus); 8] = [
        (&["true"], GuestStatus::Exited(0)),
        (&["vmlane-no-such-command"], GuestStatus::NotFound),
        (&["/nonexistent/vmlane"], GuestStatus::NotFound),
        (&[data], GuestStatus::NotExecutable),
        // As the hook runs commands: through env(1), which says so with 127 and 126.
        (
            &["env", "--", "vmlane-no-such-command"],
            GuestStatus::NotFound,
        ),
        (&["env", "--", data], GuestStatus::NotExecutable),
        (&["sh", "-c", "kill -TERM $$"], GuestStatus::Signaled(15)),
        (&["sh", "-c", "exit 255"], GuestStatus::Exited(255)),
    ];
    for (command, status) in cases {
        let ran = relay(harness, command);
        assert_eq!(ran.code, Some(SENT), "{command:?}: {}", ran.stderr);
        assert_eq!(ran.last(), Some(&GuestMessage::Exit(status)), "{command:?}");
    }
}

#[test]
fn the_command_is_found_in_path_and_runs_here_with_the_relays_environment() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    // A match that cannot run is passed over for one that can, as execvp(3) does.
    std::fs::write(first.join("vmlane-hello"), "not executable").unwrap();
    executable(
        &second.join("vmlane-hello"),
        "#!/bin/sh\nprintf '%s|%s|%s\\n' \"$PWD\" \"$VMLANE_X\" \"$1\"\n",
    );
    let path = format!("{}:{}:/usr/bin:/bin", first.display(), second.display());
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let ran = relay_in(harness, &work, &["vmlane-hello", "a b"], |c| {
        c.env("PATH", &path).env("VMLANE_X", "x y");
    });
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    let expected = format!("{}|x y|a b\n", work.display());
    assert_eq!(String::from_utf8_lossy(&ran.joined(false)), expected);

    let only_first = format!("{}:/nonexistent", first.display());
    let ran = relay_in(harness, &work, &["vmlane-hello"], |c| {
        c.env("PATH", &only_first);
    });
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::NotExecutable)),
        "found but not executable"
    );
}

#[test]
fn a_command_that_leaves_a_child_holding_its_output_still_ends_the_run() {
    let Some(harness) = harness() else { return };
    let started = Instant::now();
    let ran = relay(harness, &["sh", "-c", "sleep 5 & echo started"]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ran.joined(false), b"started\n");
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(0)))
    );
}

#[test]
fn bad_arguments_are_refused_with_the_usage_and_nothing_is_sent() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let channel = dir.path().join("channel");
    std::fs::write(&channel, b"").unwrap();
    let channel = channel.to_str().unwrap();
    let refused: [&[&str]; 7] = [
        &[],
        &[""],
        &["-v"],
        &[channel, "--"],
        &[channel, "true"],
        &[channel, "-x", "true"],
        &["-v", "--", "true"],
    ];
    for args in refused {
        let output = Command::new(harness).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(NOT_SENT), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "vmlane-relay: read the arguments: usage: vmlane-relay DEVICE [-- COMMAND \
             [ARGUMENT ...]]\n",
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(channel).unwrap(), b"");
}

#[test]
fn a_failure_before_the_channel_is_open_is_said_on_stderr_alone() {
    let Some(harness) = harness() else { return };
    let output = Command::new(harness)
        .args(["/nonexistent/cuau1", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(NOT_SENT));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "vmlane-relay: open the channel /nonexistent/cuau1: errno 2 (ENOENT)\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let ran = relay_in(harness, dir.path(), &["true"], |c| {
        c.env("VMLANE_TEST_NOT_A_TTY", "1");
    });
    assert_eq!(ran.code, Some(NOT_SENT));
    assert_eq!(
        ran.stderr,
        "vmlane-relay: read the channel's terminal settings: errno 25 (ENOTTY)\n"
    );
    assert!(ran.messages.is_empty());
}

#[test]
fn a_channel_that_cannot_be_written_is_said_on_stderr() {
    let Some(harness) = harness() else { return };
    if !Path::new("/dev/full").exists() {
        return;
    }
    let output = Command::new(harness)
        .args(["/dev/full", "--", "echo", "lost"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(NOT_SENT));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "vmlane-relay: write to the channel: errno 28 (ENOSPC)\n"
    );
}

#[test]
fn a_failure_once_the_channel_is_open_is_a_failed_frame() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let channel = dir.path().join("channel");
    std::fs::write(&channel, b"").unwrap();
    // Room for the channel (descriptor 3) and no more: the stdout pipe cannot be made.
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 4 && exec \"$0\" \"$1\" -- true")
        .arg(harness)
        .arg(&channel)
        .output()
        .unwrap();
    let ran = finished(output, &std::fs::read(&channel).unwrap());
    assert_eq!(ran.code, Some(FAILED_SENT), "{}", ran.stderr);
    assert_eq!(
        ran.messages,
        [
            GuestMessage::Ready,
            GuestMessage::Failed {
                step: "create the stdout pipe".into(),
                message: "errno 24 (EMFILE)".into(),
            }
        ]
    );
    assert_eq!(
        ran.stderr,
        "vmlane-relay: create the stdout pipe: errno 24 (EMFILE)\n"
    );
}

/// The relay talking to a test over a socket, as it talks to the host over COM2.
struct Talk {
    child: Child,
    to_send: Sender<Vec<u8>>,
    received: Receiver<GuestMessage>,
    messages: Vec<GuestMessage>,
}

impl Talk {
    /// Starts `vmlane-relay vmlane-test-stdin ARGS...` in `dir` with this environment alone.
    fn start(harness: &Path, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Talk {
        let (socket, theirs) = UnixStream::pair().expect("a socket pair");
        let child = Command::new(harness)
            .arg("vmlane-test-stdin")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the relay");
        let mut reader = socket.try_clone().expect("clone the socket");
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            let mut decoder = Decoder::new();
            let mut buf = [0; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                decoder.push(&buf[..n]);
                while let Some(message) = decoder.next_message::<GuestMessage>().unwrap() {
                    if sender.send(message).is_err() {
                        return;
                    }
                }
            }
            assert_eq!(decoder.pending(), 0, "a partial frame at the end");
        });
        // Written from a thread, in order: the relay may be writing back as much as it is given.
        let mut writer = socket;
        let (to_send, to_write) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for bytes in to_write {
                // The relay may have ended, refusing an earlier frame.
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        Talk {
            child,
            to_send,
            received,
            messages: Vec::new(),
        }
    }

    fn send(&mut self, message: &HostMessage) {
        self.send_bytes(&encode(message));
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.to_send
            .send(bytes.to_vec())
            .expect("the writer thread");
    }

    /// Waits until the messages so far satisfy `done`.
    fn until(&mut self, what: &str, done: impl Fn(&[GuestMessage]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&self.messages) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.received.recv_timeout(left) {
                Ok(message) => self.messages.push(message),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} in 20 s: {:?}", self.messages)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the relay ended without {what}: {:?}", self.messages)
                }
            }
        }
    }

    /// Waits for stdout (terminal output is all stdout) to hold `text`.
    fn until_output(&mut self, text: &str) {
        self.until(text, |messages| {
            String::from_utf8_lossy(&joined(messages, false)).contains(text)
        });
    }

    /// Every message until the relay closes the channel, and how it exited.
    fn finish(mut self) -> Relayed {
        while let Ok(message) = self.received.recv_timeout(Duration::from_secs(20)) {
            self.messages.push(message);
        }
        let output = self.child.wait_with_output().expect("the relay's end");
        Relayed {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            messages: self.messages,
        }
    }
}

fn joined(messages: &[GuestMessage], stderr: bool) -> Vec<u8> {
    Relayed {
        code: None,
        stderr: String::new(),
        messages: messages.to_vec(),
    }
    .joined(stderr)
}

fn request(argv: &[&str], env: &[&str], cwd: &Path, input: Input) -> HostMessage {
    HostMessage::Run(RunRequest {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: env.iter().map(|e| e.as_bytes().to_vec()).collect(),
        cwd: cwd.as_os_str().as_encoded_bytes().to_vec(),
        share: None,
        rwdirs: vec![],
        input,
    })
}

const PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

#[test]
fn the_new_form_sends_ready_then_runs_the_hosts_request_after_prepare() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (clock, random) = (dir.path().join("clock"), dir.path().join("random"));
    std::fs::write(&random, b"").unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let env = [
        ("VMLANE_TEST_CLOCK", clock.to_str().unwrap()),
        ("VMLANE_TEST_RANDOM", random.to_str().unwrap()),
    ];
    let mut talk = Talk::start(harness, &[], dir.path(), &env);
    talk.until("Ready", |m| !m.is_empty());
    assert_eq!(talk.messages, [GuestMessage::Ready]);
    let entropy: Vec<u8> = (0..64).map(|i| i * 3).collect();
    talk.send(&HostMessage::Prepare {
        wall_clock_ns: 1_764_927_000_123_456_789,
        entropy: entropy.clone(),
    });
    talk.send(&request(
        &[
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$PWD\" \"$VMLANE_X\" \"$VMLANE_TEST_CLOCK\"; \
             printf e >&2; exit 4",
        ],
        &[PATH, "VMLANE_X=x y"],
        &work,
        Input::Null,
    ));
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert_eq!(ran.stderr, "");
    assert_eq!(ran.messages[0], GuestMessage::Ready);
    let expected = format!("{}|x y|", work.display());
    assert_eq!(String::from_utf8_lossy(&ran.joined(false)), expected);
    assert_eq!(ran.joined(true), b"e");
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(4)))
    );
    assert_eq!(
        std::fs::read_to_string(&clock).unwrap(),
        "1764927000 123456789"
    );
    // Written 64 times over, enough for Fortuna's first pool to reseed from.
    assert_eq!(std::fs::read(&random).unwrap(), entropy.repeat(64));
}

#[test]
fn prepare_failures_only_warn_and_a_run_without_prepare_is_fine() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&HostMessage::Prepare {
        wall_clock_ns: 5,
        entropy: vec![1],
    });
    talk.send(&request(&["true"], &[PATH], Path::new(""), Input::Null));
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT));
    assert_eq!(
        ran.stderr,
        "vmlane-relay: warning: set the clock: errno 1 (EPERM)\n\
         vmlane-relay: warning: open the random device: errno 2 (ENOENT)\n"
    );
    assert_eq!(
        ran.messages,
        [
            GuestMessage::Ready,
            GuestMessage::Exit(GuestStatus::Exited(0))
        ]
    );

    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(&["pwd"], &[PATH], Path::new(""), Input::Null));
    let ran = talk.finish();
    assert_eq!(ran.stderr, "");
    let here = format!("{}\n", dir.path().canonicalize().unwrap().display());
    assert_eq!(String::from_utf8_lossy(&ran.joined(false)), here);
}

#[test]
fn pipe_input_reaches_the_command_and_stdin_closed_ends_it() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(&["cat"], &[PATH], dir.path(), Input::Pipe));
    talk.send(&HostMessage::Stdin(b"hello ".to_vec()));
    talk.until_output("hello ");
    // Far more than a pipe holds, while cat's output comes back: no side may block the other.
    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 167 + i / 256) as u8).collect();
    let mut frames = Vec::new();
    for piece in data.chunks(300_000) {
        frames.extend(encode(&HostMessage::Stdin(piece.to_vec())));
    }
    frames.extend(encode(&HostMessage::Stdin(Vec::new())));
    frames.extend(encode(&HostMessage::StdinClosed));
    // Ignored once the input is closed.
    frames.extend(encode(&HostMessage::Stdin(b"late".to_vec())));
    talk.send_bytes(&frames);
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert!(
        ran.joined(false) == [&b"hello "[..], &data].concat(),
        "stdin changed"
    );
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(0)))
    );
}

#[test]
fn a_command_that_stops_reading_its_pipe_does_not_stop_the_relay() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(
        &["sh", "-c", "exec 0<&-; echo closed; sleep 1; echo done"],
        &[PATH],
        dir.path(),
        Input::Pipe,
    ));
    talk.until_output("closed");
    talk.send(&HostMessage::Stdin(vec![b'x'; 200_000]));
    talk.send(&HostMessage::StdinClosed);
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert_eq!(ran.joined(false), b"closed\ndone\n");
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(0)))
    );
}

#[test]
fn null_input_is_dev_null_and_drops_stdin_frames() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(
        &["sh", "-c", "cat; echo \"end $?\""],
        &[PATH],
        dir.path(),
        Input::Null,
    ));
    talk.send(&HostMessage::Stdin(b"dropped".to_vec()));
    talk.send(&HostMessage::WindowSize(WindowSize { rows: 1, cols: 2 }));
    talk.send(&HostMessage::StdinClosed);
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert_eq!(ran.joined(false), b"end 0\n");
}

#[test]
fn an_empty_argv_runs_the_login_shell() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let shell = dir.path().join("myshell");
    std::os::unix::fs::symlink("/bin/sh", &shell).unwrap();
    let home = format!("HOME={}", dir.path().display());
    let shell_var = format!("SHELL={}", shell.display());
    let missing = format!("SHELL={}", dir.path().join("no-such-shell").display());
    for (env, name) in [
        (vec![PATH, home.as_str(), shell_var.as_str()], "-myshell"),
        (vec![PATH, home.as_str()], "-sh"),
        // The host's shell, which the guest lacks.
        (vec![PATH, home.as_str(), missing.as_str()], "-sh"),
    ] {
        let mut talk = Talk::start(harness, &[], dir.path(), &[]);
        talk.send(&request(&[], &env, dir.path(), Input::Pipe));
        talk.send(&HostMessage::Stdin(b"echo \"zero=$0\"; exit 3\n".to_vec()));
        talk.send(&HostMessage::StdinClosed);
        let ran = talk.finish();
        assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
        let out = String::from_utf8_lossy(&ran.joined(false)).into_owned();
        assert!(out.contains(&format!("zero={name}\n")), "{out:?}");
        assert_eq!(
            ran.last(),
            Some(&GuestMessage::Exit(GuestStatus::Exited(3)))
        );
    }
}

/// Whether this host can stand in for FreeBSD's pseudo-terminals.
fn has_ptys() -> bool {
    let ok = Path::new("/dev/ptmx").exists() && Path::new("/dev/pts").is_dir();
    if !ok {
        println!("skipped: no /dev/ptmx and /dev/pts on this host");
    }
    ok
}

#[test]
fn a_terminal_carries_input_output_and_its_size() {
    let Some(harness) = harness() else { return };
    if !has_ptys() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty; stty size; echo err >&2; \
                  read line; echo \"got $line\"; \
                  trap 'stty size; exit 7' WINCH; echo waiting; \
                  while :; do sleep 0.05; done";
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(
        &["sh", "-c", script],
        &[PATH, "TERM=dumb"],
        dir.path(),
        Input::Terminal(WindowSize { rows: 24, cols: 80 }),
    ));
    talk.until_output("24 80");
    talk.send(&HostMessage::Stdin(b"hi there\r".to_vec()));
    talk.until_output("waiting");
    talk.send(&HostMessage::WindowSize(WindowSize {
        rows: 40,
        cols: 100,
    }));
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    let out = String::from_utf8_lossy(&ran.joined(false)).into_owned();
    // The terminal's line discipline: echo, CR to NL on input, NL to CR NL on output.
    for expected in [
        "tty\r\n",
        "24 80\r\n",
        "err\r\n",
        "hi there\r\n",
        "got hi there\r\n",
        "40 100\r\n",
    ] {
        assert!(out.contains(expected), "{expected:?} in {out:?}");
    }
    assert!(ran.joined(true).is_empty(), "stderr is the terminal too");
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(7)))
    );
}

#[test]
fn stdin_closed_hangs_up_a_terminal() {
    let Some(harness) = harness() else { return };
    if !has_ptys() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(
        &["sh", "-c", "echo started; exec cat"],
        &[PATH],
        dir.path(),
        Input::Terminal(WindowSize::default()),
    ));
    talk.until_output("started");
    talk.send(&HostMessage::StdinClosed);
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    // The controlling process gets SIGHUP.
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Signaled(1)))
    );
}

#[test]
fn hostile_or_unexpected_frames_are_a_failed_frame_and_the_end() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut nul_run = request(&["true"], &[PATH], dir.path(), Input::Null);
    if let HostMessage::Run(run) = &mut nul_run {
        run.argv[0] = b"tr\0ue".to_vec();
    }
    let mut too_large = vec![2];
    too_large.extend_from_slice(&(vmlane_proto::MAX_FRAME as u32 + 1).to_le_bytes());
    let cases: [(Vec<u8>, &str); 5] = [
        (vec![99, 0, 0, 0, 0], "an unknown frame kind"),
        (too_large, "a frame over 1 MiB"),
        (encode(&nul_run), "a NUL inside a string"),
        (
            encode(&HostMessage::Stdin(b"x".to_vec())),
            "input before the Run request",
        ),
        (
            vec![3, 1, 0, 0, 0, 0],
            "a payload that ends early or runs over",
        ),
    ];
    for (bytes, why) in cases {
        let mut talk = Talk::start(harness, &[], dir.path(), &[]);
        talk.send_bytes(&bytes);
        let ran = talk.finish();
        let step = format!("read the host's request ({why})");
        assert_eq!(ran.code, Some(FAILED_SENT), "{why}: {}", ran.stderr);
        assert_eq!(
            ran.messages,
            [
                GuestMessage::Ready,
                GuestMessage::Failed {
                    step: step.clone(),
                    message: "errno 22 (EINVAL)".into(),
                }
            ]
        );
        assert_eq!(
            ran.stderr,
            format!("vmlane-relay: {step}: errno 22 (EINVAL)\n")
        );
    }
    // Mid-run too: the run ends with the Failed frame, whatever the command was doing.
    let mut talk = Talk::start(harness, &[], dir.path(), &[]);
    talk.send(&request(&["cat"], &[PATH], dir.path(), Input::Pipe));
    talk.send(&HostMessage::Stdin(b"one\n".to_vec()));
    talk.until_output("one");
    talk.send_bytes(&[0, 0, 0, 0, 0]);
    let ran = talk.finish();
    assert_eq!(ran.code, Some(FAILED_SENT), "{}", ran.stderr);
    assert!(matches!(ran.last(), Some(GuestMessage::Failed { step, .. })
        if step == "read the host's request (an unknown frame kind)"));
}

#[test]
fn a_channel_that_ends_before_the_run_request_is_a_failed_frame() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let channel = dir.path().join("channel");
    std::fs::write(&channel, b"").unwrap();
    let output = Command::new(harness).arg(&channel).output().unwrap();
    let ran = finished(output, &std::fs::read(&channel).unwrap());
    assert_eq!(ran.code, Some(FAILED_SENT), "{}", ran.stderr);
    assert_eq!(
        ran.messages,
        [
            GuestMessage::Ready,
            GuestMessage::Failed {
                step: "read the host's request (the channel ended)".into(),
                message: "errno 5 (EIO)".into(),
            }
        ]
    );
}

#[test]
fn the_old_form_runs_at_once_with_no_input_and_ignores_the_hosts_run() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let env = [
        (PATH.split_once('=').unwrap()),
        ("VMLANE_TEST_CLOCK", clock.to_str().unwrap()),
    ];
    let mut talk = Talk::start(
        harness,
        &[
            "--",
            "sh",
            "-c",
            "echo started; sleep 0.5; cat; echo \"end $?\"",
        ],
        dir.path(),
        &env,
    );
    talk.until_output("started");
    talk.send(&HostMessage::Prepare {
        wall_clock_ns: 2_000_000_001,
        entropy: vec![],
    });
    talk.send(&request(&["false"], &[PATH], dir.path(), Input::Pipe));
    talk.send(&HostMessage::Stdin(b"dropped".to_vec()));
    talk.send(&HostMessage::StdinClosed);
    let ran = talk.finish();
    assert_eq!(ran.code, Some(SENT), "{}", ran.stderr);
    assert_eq!(ran.messages[0], GuestMessage::Ready);
    assert_eq!(ran.joined(false), b"started\nend 0\n");
    assert_eq!(std::fs::read_to_string(&clock).unwrap(), "2 1");
    assert_eq!(
        ran.last(),
        Some(&GuestMessage::Exit(GuestStatus::Exited(0)))
    );
}

/// A request that runs `sh -c 'echo ran'` with `share` as its host share.
fn request_sharing(share: Option<ShareMount>, cwd: &Path) -> HostMessage {
    let HostMessage::Run(mut run) = request(&["sh", "-c", "echo ran"], &[PATH], cwd, Input::Null)
    else {
        unreachable!()
    };
    run.share = share;
    HostMessage::Run(run)
}

#[test]
fn the_hosts_share_is_mounted_read_only_on_host_before_the_command_runs() {
    let Some(harness) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mounts = dir.path().join("mounts");
    let env = [("VMLANE_TEST_MOUNTS", mounts.to_str().unwrap())];
    let p9fs = ShareMount {
        fstype: "p9fs".into(),
        tag: "vmlane-root".into(),
        options: String::new(),
    };
    let mut talk = Talk::start(harness, &[], dir.path(), &env);
    talk.send(&request_sharing(Some(p9fs.clone()), dir.path()));
    let ran = talk.finish();
    assert_eq!(ran.joined(false), b"ran\n", "{}", ran.stderr);
    assert_eq!(
        std::fs::read_to_string(&mounts).unwrap(),
        "p9fs vmlane-root /host ro\n"
    );
    // No share, no mount.
    std::fs::remove_file(&mounts).unwrap();
    let mut talk = Talk::start(harness, &[], dir.path(), &env);
    talk.send(&request_sharing(None, dir.path()));
    assert_eq!(talk.finish().joined(false), b"ran\n");
    assert!(!mounts.exists());
    // A share kind FreeBSD has no client for, or a mount the kernel refuses, is a failed step.
    for (share, env, step, errno) in [
        (
            ShareMount {
                fstype: "virtiofs".into(),
                ..p9fs.clone()
            },
            &env[..],
            "mount the host share (not p9fs)",
            "(EOPNOTSUPP)",
        ),
        (
            p9fs.clone(),
            &[][..],
            "mount the host share",
            "errno 1 (EPERM)",
        ),
    ] {
        let mut talk = Talk::start(harness, &[], dir.path(), env);
        talk.send(&request_sharing(Some(share), dir.path()));
        let ran = talk.finish();
        assert_eq!(ran.code, Some(FAILED_SENT), "{}", ran.stderr);
        assert!(
            matches!(ran.last(), Some(GuestMessage::Failed { step: s, message })
                if s == step && message.ends_with(errno)),
            "{:?}",
            ran.last()
        );
    }
}
