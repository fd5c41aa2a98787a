//! vmlane-relay (`init/relay.h`, over `init/channel.h`) runs in FreeBSD images, which CI cannot
//! boot. So its code is built for the host with the host's system calls
//! (`tests/relay_harness.c`), its channel is a file, and what it writes there is read back with
//! `vmlane_proto::Decoder`, as the host reads COM2.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::decode;
use vmlane_proto::GuestMessage;
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
    let refused: [&[&str]; 6] = [
        &[],
        &[channel],
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
            "vmlane-relay: read the arguments: usage: vmlane-relay DEVICE -- COMMAND \
             [ARGUMENT ...]\n",
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
        [GuestMessage::Failed {
            step: "create the stdout pipe".into(),
            message: "errno 24 (EMFILE)".into(),
        }]
    );
    assert_eq!(
        ran.stderr,
        "vmlane-relay: create the stdout pipe: errno 24 (EMFILE)\n"
    );
}
