//! The frames the init sends on its channel (`init/frame.h`) must be what vmlane's host decodes,
//! and its raw mode (`init/rawtty.h`) must match FreeBSD's termios. No FreeBSD kernel runs in
//! CI, so the headers are compiled for the host and what they write is read back with
//! `vmlane_proto::Decoder`, through writers that take a few bytes at a time.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::decode;
use vmlane_proto::GuestMessage;
use vmlane_spec::GuestStatus;

/// `FRAME_CHUNK` and `FRAME_TEXT_MAX` in `init/frame.h`.
const CHUNK: usize = 4096;
const TEXT_MAX: usize = 512;

fn harness() -> Option<&'static Path> {
    static HARNESS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    support::built(
        HARNESS.get_or_init(|| support::compile("channel_harness.c", "vmlane-channel-harness")),
    )
}

/// Runs the harness on `input` with writes of at most `max_write` bytes.
fn run(harness: &Path, input: &[u8], max_write: usize) -> Output {
    let mut child = Command::new(harness)
        .arg(max_write.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the harness");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("harness output");
    writer
        .join()
        .expect("writer thread")
        .expect("feed the harness");
    assert!(
        output.status.success(),
        "harness failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Bytes of every value, in an order that is not a pattern.
fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 167 + i / 256) as u8).collect()
}

/// The output frames of one kind, each checked to be at most one chunk, joined.
fn output(messages: &[GuestMessage], stderr: bool) -> Vec<u8> {
    let mut joined = Vec::new();
    for message in messages {
        let data = match (message, stderr) {
            (GuestMessage::Stdout(data), false) | (GuestMessage::Stderr(data), true) => data,
            _ => continue,
        };
        assert!(!data.is_empty() && data.len() <= CHUNK, "{}", data.len());
        joined.extend_from_slice(data);
    }
    joined
}

#[test]
fn frames_decode_as_the_host_reads_them_whatever_the_writes_take() {
    let Some(harness) = harness() else { return };
    for (len, max_write) in [
        (0, 1),
        (1, 1),
        (10_000, 1),
        (10_000, 3),
        (CHUNK, 4101),
        (50_000, 1 << 20),
    ] {
        let input = sample(len);
        let out = run(harness, &input, max_write);
        let messages = decode(&out.stdout);
        assert_eq!(
            output(&messages, false),
            input,
            "stdout, {len} bytes by {max_write}"
        );
        assert_eq!(output(&messages, true), &input[..len / 2], "stderr");
        let outputs = messages
            .iter()
            .filter(|m| matches!(m, GuestMessage::Stdout(_) | GuestMessage::Stderr(_)))
            .count();
        assert_eq!(outputs, len.div_ceil(CHUNK) + (len / 2).div_ceil(CHUNK));
        let rest: Vec<&GuestMessage> = messages[outputs..].iter().collect();
        let long_step = "x".repeat(TEXT_MAX);
        assert_eq!(
            rest,
            [
                &GuestMessage::Exit(GuestStatus::Exited(7)),
                &GuestMessage::Exit(GuestStatus::Exited(255)),
                &GuestMessage::Exit(GuestStatus::Signaled(12)),
                &GuestMessage::Exit(GuestStatus::NotFound),
                &GuestMessage::Exit(GuestStatus::NotExecutable),
                &GuestMessage::Failed {
                    step: "make the channel raw".into(),
                    message: "errno 25 (ENOTTY)".into(),
                },
                &GuestMessage::Failed {
                    step: long_step,
                    message: String::new(),
                },
                &GuestMessage::Ready,
            ]
        );
    }
}

/// The harness's stderr line that starts with `tag`, split into its words.
fn line(out: &Output, tag: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(tag).and_then(|l| l.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {tag} line: {text}"));
    line.split(' ').map(String::from).collect()
}

#[test]
fn a_failing_or_stuck_writer_is_an_error_not_a_loop() {
    let Some(harness) = harness() else { return };
    let out = run(harness, b"", 1);
    // EIO, whether the device said so or took nothing.
    assert_eq!(line(&out, "W"), ["-5"]);
    assert_eq!(line(&out, "Z"), ["-5"]);
}

#[test]
fn the_termios_layout_and_raw_mode_are_freebsds() {
    let Some(harness) = harness() else { return };
    let out = run(harness, b"", 1);
    // struct termios: four flag words, NCCS = 20 control characters, two speeds; TIOCGETA and
    // TIOCSETA carry its 44 bytes in their size bits (sys/sys/ttycom.h).
    assert_eq!(
        line(&out, "T"),
        ["44", "16", "36", "40", "0x402c7413", "0x802c7414"]
    );
    // From FreeBSD's defaults: only IGNBRK in; no output processing; CS8, CREAD and CLOCAL
    // (HUPCL, which no one hangs up, stays); no echo, canonical mode or signals, ECHOKE and
    // ECHOCTL left as they do nothing without ECHO; one byte at a time; 115200 baud.
    let raw = line(&out, "R");
    let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let (iflag, oflag, cflag, lflag) = (hex(&raw[0]), hex(&raw[1]), hex(&raw[2]), hex(&raw[3]));
    assert_eq!(iflag, 0x1, "IGNBRK alone");
    assert_eq!(oflag & 0x1, 0, "OPOST off");
    assert_eq!(
        cflag,
        0x300 | 0x800 | 0x4000 | 0x8000,
        "CS8 CREAD HUPCL CLOCAL"
    );
    for (bit, name) in [
        (0x8, "ECHO"),
        (0x100, "ICANON"),
        (0x80, "ISIG"),
        (0x400, "IEXTEN"),
    ] {
        assert_eq!(lflag & bit, 0, "{name} off");
    }
    assert_eq!(&raw[4..], ["1", "0", "115200"]);
}

#[test]
fn the_pseudo_terminal_layouts_and_ioctls_are_freebsds() {
    let Some(harness) = harness() else { return };
    let out = run(harness, b"", 1);
    // struct winsize: four u16 (sys/sys/_winsize.h); TIOCSWINSZ is _IOW('t', 103, struct
    // winsize) (sys/sys/ttycom.h). struct fiodgname_arg: an int, then a pointer; FIODGNAME is
    // _IOW('f', 120, struct fiodgname_arg) (sys/sys/filio.h).
    assert_eq!(
        line(&out, "P"),
        ["8", "2", "6", "0x80087467", "16", "8", "0x80106678"]
    );
}
