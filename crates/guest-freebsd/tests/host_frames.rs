//! The init and the relay decode what the host sends them (`init/hostframe.h`) from bytes they
//! must not trust. No FreeBSD kernel runs in CI, so the decoder is compiled for the host with
//! AddressSanitizer and fed what `vmlane_proto::encode` writes, in pieces of every size, then
//! hostile and randomly mutated frames, checked against `vmlane_proto`'s own decoder.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use vmlane_proto::{
    encode, DecodeError, DirMount, Frame, HostMessage, Input, RunRequest, ShareMount, WindowSize,
    MAX_FRAME,
};

/// `enum host_error` in `init/hostframe.h`.
const TOO_LARGE: i32 = 1;
const UNKNOWN_KIND: i32 = 2;
const MALFORMED: i32 = 3;
const TOO_MANY: i32 = 4;
const NUL: i32 = 5;
const BAD_TAG: i32 = 6;
const ENTROPY: i32 = 7;

/// `HOST_MAX_STRINGS`.
const MAX_STRINGS: usize = 65536;

fn harness() -> Option<&'static Path> {
    static HARNESS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    support::built(
        HARNESS.get_or_init(|| support::compile("hostframe_harness.c", "vmlane-hostframe-harness")),
    )
}

/// What the harness printed for each stream, fed in pieces of `chunk` bytes, line by line.
fn decode_all(harness: &Path, streams: &[Vec<u8>], chunk: usize) -> Vec<Vec<String>> {
    let mut child = Command::new(harness)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the harness");
    let mut stdin = child.stdin.take().expect("piped");
    let mut input = Vec::new();
    for stream in streams {
        let chunk = u32::try_from(chunk.min(stream.len().max(1))).expect("small chunk");
        input.extend_from_slice(&chunk.to_le_bytes());
        input.extend_from_slice(&u32::try_from(stream.len()).unwrap().to_le_bytes());
        input.extend_from_slice(stream);
    }
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("harness output");
    writer
        .join()
        .expect("writer thread")
        .expect("feed the harness");
    assert!(output.status.success(), "harness failed: {}", output.status);
    let text = String::from_utf8(output.stdout).expect("ASCII output");
    let mut results = vec![Vec::new()];
    for line in text.lines() {
        results.last_mut().unwrap().push(line.to_owned());
        if line.starts_with("end ") {
            results.push(Vec::new());
        }
    }
    results.pop();
    assert_eq!(results.len(), streams.len(), "one result per stream");
    results
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The harness's lines for a message it accepts.
fn describe(message: &HostMessage) -> Vec<String> {
    match message {
        HostMessage::Prepare {
            wall_clock_ns,
            entropy,
        } => vec![format!("prepare {wall_clock_ns} {}", hex(entropy))],
        HostMessage::Stdin(data) => vec![format!("stdin {}", hex(data))],
        HostMessage::StdinClosed => vec!["closed".into()],
        HostMessage::WindowSize(size) => vec![format!("winsize {} {}", size.rows, size.cols)],
        // Sent to Linux's init only: the FreeBSD guest refuses its kind, as `reference` expects.
        HostMessage::Start => unreachable!("Start is no frame the FreeBSD guest takes"),
        HostMessage::Run(run) => {
            let (input, size) = match run.input {
                Input::Null => (0, WindowSize::default()),
                Input::Pipe => (1, WindowSize::default()),
                Input::Terminal(size) => (2, size),
            };
            let mut lines = vec![format!(
                "run {} {} {input} {} {} {}",
                run.argv.len(),
                run.env.len(),
                size.rows,
                size.cols,
                run.rwdirs.len()
            )];
            lines.extend(run.argv.iter().map(|a| format!("a {}", hex(a))));
            lines.extend(run.env.iter().map(|e| format!("e {}", hex(e))));
            lines.push(format!("c {}", hex(&run.cwd)));
            lines.push(match &run.share {
                None => "s -".into(),
                Some(s) => format!(
                    "s {} {} {}",
                    hex(s.fstype.as_bytes()),
                    hex(s.tag.as_bytes()),
                    hex(s.options.as_bytes())
                ),
            });
            lines
        }
    }
}

fn share(fstype: &str, tag: &str, options: &str) -> ShareMount {
    ShareMount {
        fstype: fstype.into(),
        tag: tag.into(),
        options: options.into(),
    }
}

fn run_request() -> RunRequest {
    RunRequest {
        argv: vec![b"printf".to_vec(), b"a b '$x' \"q\"\n\xff".to_vec(), vec![]],
        env: vec![b"PATH=/bin:/usr/bin".to_vec(), b"HOME=/root".to_vec()],
        cwd: b"/host/home/dev/\xfe".to_vec(),
        share: Some(share("p9fs", "vmlane-root", "trans=virtio")),
        rwdirs: vec![DirMount {
            share: share("9p", "vmlane-rw0", "cache=mmap"),
            target: b"/home/dev/out".to_vec(),
        }],
        input: Input::Terminal(WindowSize {
            rows: 50,
            cols: 132,
        }),
    }
}

/// Every kind, with its edge cases: empty and largest payloads, every input kind.
fn messages() -> Vec<HostMessage> {
    vec![
        HostMessage::Prepare {
            wall_clock_ns: 1_764_927_000_123_456_789,
            entropy: (0..32).collect(),
        },
        HostMessage::Prepare {
            wall_clock_ns: u64::MAX,
            entropy: (0..512).map(|i| (i * 7) as u8).collect(),
        },
        HostMessage::Prepare {
            wall_clock_ns: 0,
            entropy: vec![],
        },
        HostMessage::Run(run_request()),
        HostMessage::Run(RunRequest {
            argv: vec![],
            env: vec![],
            cwd: vec![],
            share: None,
            rwdirs: vec![],
            input: Input::Null,
        }),
        HostMessage::Run(RunRequest {
            share: Some(share("", "", "")),
            input: Input::Pipe,
            ..run_request()
        }),
        HostMessage::Stdin(b"hello\n".to_vec()),
        HostMessage::Stdin(vec![]),
        HostMessage::Stdin((0..=255).collect()),
        HostMessage::WindowSize(WindowSize { rows: 0, cols: 0 }),
        HostMessage::WindowSize(WindowSize {
            rows: 65535,
            cols: 1,
        }),
        HostMessage::StdinClosed,
    ]
}

#[test]
fn every_message_decodes_in_pieces_of_every_size() {
    let Some(harness) = harness() else { return };
    let messages = messages();
    let stream: Vec<u8> = messages.iter().flat_map(encode).collect();
    let expected: Vec<String> = messages
        .iter()
        .flat_map(describe)
        .chain(["end 0".into()])
        .collect();
    for chunk in [1, 2, 3, 4, 5, 6, 7, 13, 64, 4096, usize::MAX] {
        let got = decode_all(harness, std::slice::from_ref(&stream), chunk);
        assert_eq!(got[0], expected, "pieces of {chunk}");
    }
}

#[test]
fn the_largest_frame_is_taken_and_a_larger_one_refused_at_its_header() {
    let Some(harness) = harness() else { return };
    let largest = HostMessage::Stdin((0..MAX_FRAME).map(|i| (i % 251) as u8).collect());
    let stream = [encode(&largest), encode(&HostMessage::StdinClosed)].concat();
    for chunk in [1, 4099, usize::MAX] {
        let got = decode_all(harness, std::slice::from_ref(&stream), chunk);
        let mut expected = describe(&largest);
        expected.extend(["closed".into(), "end 0".into()]);
        assert!(
            got[0] == expected,
            "the largest frame, in pieces of {chunk}"
        );
    }
    // Only the header of a frame one byte too large: refused before any payload comes.
    let mut too_large = vec![2];
    too_large.extend_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
    let mut huge = vec![1];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    let got = decode_all(harness, &[too_large, huge], 1);
    for result in got {
        assert_eq!(result, [format!("error {TOO_LARGE}"), "end 0".into()]);
    }
}

/// A frame of `kind` around `payload`.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of an encoded message, and its kind.
fn payload(message: &HostMessage) -> (u8, Vec<u8>) {
    let bytes = encode(message);
    (bytes[0], bytes[5..].to_vec())
}

fn u32le(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

#[test]
fn hostile_frames_are_refused_and_end_the_stream() {
    let Some(harness) = harness() else { return };
    let closed = encode(&HostMessage::StdinClosed);
    let (run_kind, run) = payload(&HostMessage::Run(RunRequest {
        input: Input::Null,
        share: None,
        rwdirs: vec![],
        ..run_request()
    }));
    let with_nul = |f: fn(&mut RunRequest)| {
        let mut request = run_request();
        f(&mut request);
        encode(&HostMessage::Run(request))
    };
    // A Run of no strings up to its share flag: argc, envc, cwd length.
    let head = [u32le(0), u32le(0), u32le(0)].concat();
    let cases: Vec<(Vec<u8>, i32)> = vec![
        (frame(0, b""), UNKNOWN_KIND),
        (frame(6, b""), UNKNOWN_KIND),
        (frame(16, b"x"), UNKNOWN_KIND),
        (frame(21, b""), UNKNOWN_KIND),
        (frame(255, b""), UNKNOWN_KIND),
        (frame(3, b"x"), MALFORMED),
        (frame(4, b"\x01\x00\x02"), MALFORMED),
        (frame(4, b"\x01\x00\x02\x00\x00"), MALFORMED),
        (frame(5, &[0; 11]), MALFORMED),
        (frame(5, &[&[0; 8][..], &u32le(1)].concat()), MALFORMED),
        (
            frame(5, &[&[0; 8][..], &u32le(0), b"x"].concat()),
            MALFORMED,
        ),
        (
            frame(5, &[&[0; 8][..], &u32le(u32::MAX)].concat()),
            MALFORMED,
        ),
        (
            encode(&HostMessage::Prepare {
                wall_clock_ns: 1,
                entropy: vec![9; 513],
            }),
            ENTROPY,
        ),
        (frame(run_kind, &run[..run.len() - 1]), MALFORMED),
        (frame(run_kind, &[&run[..], b"\0"].concat()), MALFORMED),
        (frame(run_kind, b""), MALFORMED),
        (frame(run_kind, &u32le(u32::MAX)), TOO_MANY),
        (frame(run_kind, &u32le(MAX_STRINGS as u32 + 1)), TOO_MANY),
        (frame(run_kind, &[u32le(3), u32le(0)].concat()), MALFORMED),
        (
            frame(run_kind, &[u32le(1), u32le(u32::MAX)].concat()),
            MALFORMED,
        ),
        (
            frame(run_kind, &[&head[..], &[2], &u32le(0), &[0]].concat()),
            BAD_TAG,
        ),
        (
            frame(run_kind, &[&head[..], &[0], &u32le(0), &[3]].concat()),
            BAD_TAG,
        ),
        (
            frame(run_kind, &[&head[..], &[0], &u32le(0), &[2, 0]].concat()),
            MALFORMED,
        ),
        (
            frame(run_kind, &[&head[..], &[0], &u32le(1), &[0]].concat()),
            MALFORMED,
        ),
        (
            frame(
                run_kind,
                &[&head[..], &[0], &u32le(u32::MAX), &[0]].concat(),
            ),
            MALFORMED,
        ),
        (
            frame(run_kind, &[&head[..], &[1], &u32le(0), &u32le(0)].concat()),
            MALFORMED,
        ),
        (with_nul(|r| r.argv[1] = b"a\0b".to_vec()), NUL),
        (with_nul(|r| r.argv[0] = b"\0".to_vec()), NUL),
        (with_nul(|r| r.env[0] = b"A=\0".to_vec()), NUL),
        (with_nul(|r| r.cwd = b"/\0/".to_vec()), NUL),
        (
            with_nul(|r| r.share.as_mut().unwrap().tag = "a\0".into()),
            NUL,
        ),
        (
            with_nul(|r| r.share.as_mut().unwrap().options = "\0".into()),
            NUL,
        ),
    ];
    // Each is followed by a valid frame, which must not be decoded once the stream failed.
    let streams: Vec<Vec<u8>> = cases
        .iter()
        .map(|(bad, _)| [&bad[..], &closed[..]].concat())
        .collect();
    for chunk in [1, 3, usize::MAX] {
        for ((bad, error), got) in cases.iter().zip(decode_all(harness, &streams, chunk)) {
            assert_eq!(
                got,
                [format!("error {error}"), "end 0".into()],
                "{bad:?} in pieces of {chunk}"
            );
        }
    }
    // A NUL in a writable directory is never made a C string, so it is no error.
    let mut request = run_request();
    request.rwdirs[0].target = b"/a\0b".to_vec();
    let accepted = HostMessage::Run(request);
    let got = decode_all(harness, &[encode(&accepted)], 1);
    assert_eq!(got[0], [describe(&accepted), vec!["end 0".into()]].concat());
}

#[test]
fn a_stream_cut_short_leaves_a_partial_frame_and_no_message() {
    let Some(harness) = harness() else { return };
    let whole = encode(&HostMessage::Run(run_request()));
    let streams: Vec<Vec<u8>> = (1..whole.len()).map(|n| whole[..n].to_vec()).collect();
    for got in decode_all(harness, &streams, 1) {
        assert_eq!(got, ["end 1"]);
    }
    assert_eq!(decode_all(harness, &[vec![]], 1)[0], ["end 0"]);
}

/// What the harness must print for `bytes`, from `vmlane_proto`'s decoder and the guest's
/// own rules; `None` for a line that may be any error (the two decoders' reasons differ).
/// `None` overall when only `vmlane_proto` refuses (share strings must be UTF-8 there).
fn reference(bytes: &[u8]) -> Option<Vec<Option<String>>> {
    let mut rest = bytes;
    let mut lines = Vec::new();
    loop {
        if rest.len() < 5 {
            lines.push(Some(format!("end {}", u8::from(!rest.is_empty()))));
            return Some(lines);
        }
        let kind = rest[0];
        let len = u32::from_le_bytes(rest[1..5].try_into().unwrap()) as usize;
        if len > MAX_FRAME {
            lines.push(Some(format!("error {TOO_LARGE}")));
            break;
        }
        if !(1..=5).contains(&kind) {
            lines.push(Some(format!("error {UNKNOWN_KIND}")));
            break;
        }
        if rest.len() < 5 + len {
            lines.push(Some("end 1".into()));
            return Some(lines);
        }
        match HostMessage::decode(kind, &rest[5..5 + len]) {
            Err(DecodeError::Malformed("string is not UTF-8")) => return None,
            Err(_) => {
                lines.push(None);
                break;
            }
            Ok(HostMessage::Run(run)) if has_nul(&run) => {
                lines.push(Some(format!("error {NUL}")));
                break;
            }
            Ok(message) => lines.extend(describe(&message).into_iter().map(Some)),
        }
        rest = &rest[5 + len..];
    }
    lines.push(Some("end 0".into()));
    Some(lines)
}

/// Strings the guest makes C strings, holding a NUL.
fn has_nul(run: &RunRequest) -> bool {
    let share = run
        .share
        .iter()
        .flat_map(|s| [&s.fstype, &s.tag, &s.options]);
    run.argv
        .iter()
        .chain(&run.env)
        .chain([&run.cwd])
        .any(|s| s.contains(&0))
        || share.into_iter().any(|s| s.as_bytes().contains(&0))
}

/// A fixed-seed xorshift generator: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn agrees_with_vmlane_proto_on_mutated_frames() {
    let Some(harness) = harness() else { return };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let bases: Vec<Vec<u8>> = messages().iter().take(11).map(encode).collect();
    let interesting = [0u8, 1, 2, 3, 4, 5, 0xff, 0x10, b'x'];
    let mut inputs = Vec::new();
    for _ in 0..3000 {
        let mut input = bases[rng.below(bases.len())].clone();
        if rng.below(4) == 0 {
            input.extend(&bases[rng.below(bases.len())]);
        }
        for _ in 0..=rng.below(3) {
            match rng.below(4) {
                0 if !input.is_empty() => {
                    let i = rng.below(input.len());
                    input[i] = interesting[rng.below(interesting.len())];
                }
                1 if !input.is_empty() => {
                    input.remove(rng.below(input.len()));
                }
                2 => {
                    let i = rng.below(input.len() + 1);
                    input.insert(i, interesting[rng.below(interesting.len())]);
                }
                _ => {
                    let n = rng.below(input.len() + 1);
                    input.truncate(n);
                }
            }
        }
        inputs.push(input);
    }
    let mut refused = 0;
    for chunk in [1, 5, usize::MAX] {
        for (input, got) in inputs.iter().zip(decode_all(harness, &inputs, chunk)) {
            let Some(expected) = reference(input) else {
                continue;
            };
            assert_eq!(got.len(), expected.len(), "{input:?}: {got:?}");
            for (line, want) in got.iter().zip(&expected) {
                match want {
                    Some(want) => assert_eq!(line, want, "{input:?}"),
                    None => assert!(line.starts_with("error "), "{input:?}: {got:?}"),
                }
            }
            refused += usize::from(got.iter().any(|l| l.starts_with("error")));
        }
    }
    assert!(
        refused > 0 && refused < 3 * inputs.len(),
        "refused {refused}"
    );
}
