//! The init's run-file parser (`init/runfile.h`) is C that reads untrusted bytes, and no FreeBSD
//! kernel runs in CI. So the parser is compiled for the host with AddressSanitizer and checked
//! against `RunFile::encode`, against a reference decoder written from the format, and on
//! truncated and randomly mutated input.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use vmlane_guest_freebsd::{
    RunFile, CHANNEL_DEVICE, RUN_FILE_MAGIC, RUN_FILE_MAX_STRINGS, TOKEN_MAX_BYTES,
};

/// `enum run_error` in `init/runfile.h`.
const OK: i32 = 0;
const TRUNCATED: i32 = 1;
const BAD_MAGIC: i32 = 2;
const BAD_TOKEN: i32 = 3;
const BAD_COUNT: i32 = 4;
const EMPTY_ARGV: i32 = 5;
const TRAILING: i32 = 6;

/// What the C parser made of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    error: i32,
    token: Option<Vec<u8>>,
    cwd: Vec<u8>,
    share: Option<Vec<u8>>,
    channel: Option<Vec<u8>>,
    argv: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
}

impl Parsed {
    fn error(error: i32, token: Option<&[u8]>) -> Self {
        Parsed {
            error,
            token: token.map(<[u8]>::to_vec),
            cwd: vec![],
            share: None,
            channel: None,
            argv: vec![],
            env: vec![],
        }
    }
}

/// The compiled harness, or `None` (skip) when there is no clang.
fn harness() -> Option<&'static Path> {
    static HARNESS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    support::built(
        HARNESS.get_or_init(|| support::compile("runfile_harness.c", "vmlane-runfile-harness")),
    )
}

/// Runs the C parser over every input.
fn parse_all(harness: &Path, inputs: &[Vec<u8>]) -> Vec<Parsed> {
    let mut child = Command::new(harness)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the harness");
    let mut stdin = child.stdin.take().expect("piped");
    let framed: Vec<u8> = inputs
        .iter()
        .flat_map(|input| {
            let len = u32::try_from(input.len())
                .expect("small input")
                .to_le_bytes();
            len.into_iter().chain(input.iter().copied())
        })
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(&framed));
    let output = child.wait_with_output().expect("harness output");
    writer
        .join()
        .expect("writer thread")
        .expect("feed the harness");
    assert!(output.status.success(), "harness failed: {}", output.status);
    let parsed = decode_output(&output.stdout);
    assert_eq!(parsed.len(), inputs.len(), "one result per input");
    parsed
}

fn decode_output(mut out: &[u8]) -> Vec<Parsed> {
    let mut results: Vec<Parsed> = vec![];
    while !out.is_empty() {
        let tag = out[0];
        assert_eq!(out[1], b' ');
        let eol = out.iter().position(|&b| b == b'\n').expect("header line");
        let value = std::str::from_utf8(&out[2..eol]).expect("ASCII header");
        out = &out[eol + 1..];
        if tag == b'R' {
            results.push(Parsed::error(value.parse().expect("error code"), None));
            continue;
        }
        let bytes = if value == "-" {
            None
        } else {
            let len: usize = value.parse().expect("length");
            let bytes = out[..len].to_vec();
            assert_eq!(out[len], b'\n');
            out = &out[len + 1..];
            Some(bytes)
        };
        let last = results.last_mut().expect("a result first");
        match tag {
            b'T' => last.token = bytes,
            b'C' => last.cwd = bytes.expect("cwd"),
            b'S' => last.share = bytes,
            b'H' => last.channel = bytes,
            b'A' => last.argv.push(bytes.expect("argv")),
            b'E' => last.env.push(bytes.expect("env")),
            other => panic!("unknown tag {other}"),
        }
    }
    results
}

/// The format, decoded independently of the C code.
fn reference(input: &[u8]) -> Parsed {
    let mut rest = input;
    let mut next = || -> Option<&[u8]> {
        let nul = rest.iter().position(|&b| b == 0)?;
        let s = &rest[..nul];
        rest = &rest[nul + 1..];
        Some(s)
    };
    let count = |s: &[u8]| -> Option<usize> {
        let plain = !s.is_empty()
            && s.len() <= 6
            && s.iter().all(u8::is_ascii_digit)
            && (s.len() == 1 || s[0] != b'0');
        let n: usize = std::str::from_utf8(s).ok()?.parse().ok()?;
        (plain && n <= RUN_FILE_MAX_STRINGS).then_some(n)
    };

    let Some(magic) = next() else {
        return Parsed::error(TRUNCATED, None);
    };
    if magic != RUN_FILE_MAGIC.as_bytes() {
        return Parsed::error(BAD_MAGIC, None);
    }
    let Some(token) = next() else {
        return Parsed::error(TRUNCATED, None);
    };
    let token_ok = (1..=TOKEN_MAX_BYTES).contains(&token.len())
        && token.iter().all(|&b| b.is_ascii_graphic() && b != b':');
    if !token_ok {
        return Parsed::error(BAD_TOKEN, None);
    }
    let t = Some(token);
    let Some(cwd) = next() else {
        return Parsed::error(TRUNCATED, t);
    };
    let Some(share) = next() else {
        return Parsed::error(TRUNCATED, t);
    };
    let Some(channel) = next() else {
        return Parsed::error(TRUNCATED, t);
    };
    let Some(argc) = next() else {
        return Parsed::error(TRUNCATED, t);
    };
    let Some(argc) = count(argc) else {
        return Parsed::error(BAD_COUNT, t);
    };
    if argc == 0 && channel.is_empty() {
        return Parsed::error(EMPTY_ARGV, t);
    }
    let mut argv = vec![];
    for _ in 0..argc {
        let Some(arg) = next() else {
            return Parsed::error(TRUNCATED, t);
        };
        argv.push(arg.to_vec());
    }
    let Some(envc) = next() else {
        return Parsed::error(TRUNCATED, t);
    };
    let Some(envc) = count(envc) else {
        return Parsed::error(BAD_COUNT, t);
    };
    let mut env = vec![];
    for _ in 0..envc {
        let Some(var) = next() else {
            return Parsed::error(TRUNCATED, t);
        };
        env.push(var.to_vec());
    }
    if !rest.is_empty() {
        return Parsed::error(TRAILING, t);
    }
    Parsed {
        error: OK,
        token: t.map(<[u8]>::to_vec),
        cwd: cwd.to_vec(),
        share: (!share.is_empty()).then(|| share.to_vec()),
        channel: (!channel.is_empty()).then(|| channel.to_vec()),
        argv,
        env,
    }
}

fn samples() -> Vec<RunFile> {
    vec![
        RunFile {
            token: "5f0c2a".into(),
            cwd: b"/host/project".to_vec(),
            share_tag: Some("vmlane0".into()),
            channel: Some(CHANNEL_DEVICE.into()),
            argv: vec![
                b"/bin/sh".to_vec(),
                b"-c".to_vec(),
                b"echo 'hi'; exit 3".to_vec(),
            ],
            env: vec![b"PATH=/sbin:/bin:/usr/bin".to_vec(), b"TERM=dumb".to_vec()],
        },
        RunFile {
            token: "x".repeat(TOKEN_MAX_BYTES),
            cwd: b"/".to_vec(),
            share_tag: None,
            channel: None,
            argv: vec![b"/usr/bin/true".to_vec()],
            env: vec![],
        },
        RunFile {
            token: "t".into(),
            cwd: b"/tmp/\xff\xfe".to_vec(),
            share_tag: Some("tag with spaces".into()),
            channel: Some("/dev/cuau1 \u{e9}".into()),
            argv: vec![b"/bin/echo".to_vec(), b"".to_vec(), b"\n\x01\x7f".to_vec()],
            env: vec![b"".to_vec(), b"A=".to_vec()],
        },
        // The host sends the command over the channel.
        RunFile {
            token: "c".into(),
            cwd: b"/".to_vec(),
            share_tag: Some("vmlane".into()),
            channel: Some(CHANNEL_DEVICE.into()),
            argv: vec![],
            env: vec![],
        },
    ]
}

fn expected(run: &RunFile) -> Parsed {
    Parsed {
        error: OK,
        token: Some(run.token.as_bytes().to_vec()),
        cwd: run.cwd.clone(),
        share: run.share_tag.as_ref().map(|s| s.as_bytes().to_vec()),
        channel: run.channel.as_ref().map(|s| s.as_bytes().to_vec()),
        argv: run.argv.clone(),
        env: run.env.clone(),
    }
}

#[test]
fn parses_what_encode_writes() {
    let Some(harness) = harness() else { return };
    let runs = samples();
    let inputs: Vec<Vec<u8>> = runs.iter().map(|r| r.encode().unwrap()).collect();
    for (run, parsed) in runs.iter().zip(parse_all(harness, &inputs)) {
        assert_eq!(parsed, expected(run));
    }
}

#[test]
fn rejects_every_truncation_and_extension() {
    let Some(harness) = harness() else { return };
    let mut inputs = vec![];
    for run in samples() {
        let full = run.encode().unwrap();
        inputs.extend((0..full.len()).map(|n| full[..n].to_vec()));
        inputs.push([&full[..], b"x"].concat());
        inputs.push([&full[..], b"\0"].concat());
    }
    for (input, parsed) in inputs.iter().zip(parse_all(harness, &inputs)) {
        assert_ne!(parsed.error, OK, "accepted {input:?}");
        assert_eq!(parsed, reference(input), "input {input:?}");
    }
}

#[test]
fn rejects_malformed_headers_and_counts() {
    let Some(harness) = harness() else { return };
    let with = |head: &str, argc: &str, envc: &str| -> Vec<u8> {
        format!("{head}\0tok\0/\0\0\0{argc}\0/bin/true\0{envc}\0").into_bytes()
    };
    let cases: Vec<(Vec<u8>, i32)> = vec![
        (with("vmlane-run 1", "1", "0"), BAD_MAGIC),
        (with("vmlane-run 2 ", "1", "0"), BAD_MAGIC),
        (with(RUN_FILE_MAGIC, "01", "0"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "+1", "0"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "-1", "0"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, " 1", "0"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "", "0"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "1", "65537"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "1", "18446744073709551617"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "1", "00"), BAD_COUNT),
        (with(RUN_FILE_MAGIC, "2", "0"), TRUNCATED),
        (with(RUN_FILE_MAGIC, "1", "1"), TRUNCATED),
        (with(RUN_FILE_MAGIC, "1", "65536"), TRUNCATED),
        (with(RUN_FILE_MAGIC, "0", "0"), EMPTY_ARGV),
        (
            format!("{RUN_FILE_MAGIC}\0tok\0/\0\0/dev/cuau1\x000\x000\0").into_bytes(),
            OK,
        ),
        (
            format!("{RUN_FILE_MAGIC}\0tok\0/\0\0\x000\x000\0").into_bytes(),
            EMPTY_ARGV,
        ),
        (
            b"vmlane-run 2\0a:b\0/\0\x001\0/x\x000\0".to_vec(),
            BAD_TOKEN,
        ),
        (b"vmlane-run 2\0\0/\0\x001\0/x\x000\0".to_vec(), BAD_TOKEN),
        (
            b"vmlane-run 2\0a b\0/\0\x001\0/x\x000\0".to_vec(),
            BAD_TOKEN,
        ),
        (
            b"vmlane-run 2\0a\nb\0/\0\x001\0/x\x000\0".to_vec(),
            BAD_TOKEN,
        ),
        (
            format!("{RUN_FILE_MAGIC}\0{}\0/\0\x001\0/x\x000\0", "x".repeat(129)).into_bytes(),
            BAD_TOKEN,
        ),
        (vec![], TRUNCATED),
        (b"vmlane-run 2".to_vec(), TRUNCATED),
    ];
    let inputs: Vec<Vec<u8>> = cases.iter().map(|(input, _)| input.clone()).collect();
    for ((input, error), parsed) in cases.iter().zip(parse_all(harness, &inputs)) {
        assert_eq!(parsed.error, *error, "input {input:?}");
        assert_eq!(parsed, reference(input), "input {input:?}");
    }
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
fn agrees_with_the_reference_on_mutated_input() {
    let Some(harness) = harness() else { return };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bases: Vec<Vec<u8>> = samples().iter().map(|r| r.encode().unwrap()).collect();
    // Bytes that matter to the parser, so mutations often stay near-valid.
    let interesting = [0u8, b'0', b'1', b'9', b':', b' ', b'\n', 0xff, b'x'];
    let mut inputs = vec![];
    for _ in 0..4000 {
        let mut input = bases[rng.below(bases.len())].clone();
        for _ in 0..=rng.below(4) {
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
    for _ in 0..500 {
        let len = rng.below(64);
        inputs.push((0..len).map(|_| rng.next() as u8).collect());
    }

    let mut accepted = 0;
    for (input, parsed) in inputs.iter().zip(parse_all(harness, &inputs)) {
        accepted += usize::from(parsed.error == OK);
        assert_eq!(parsed, reference(input), "input {input:?}");
    }
    // The mutations should exercise both outcomes.
    assert!(
        accepted > 0 && accepted < inputs.len(),
        "accepted {accepted}"
    );
}
