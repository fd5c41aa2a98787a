//! vmlane's minimal FreeBSD guest: a small init (PID 1) that runs one command and reports how it
//! ended, plus the run file through which the host sets it up; and the relay through which a full
//! FreeBSD image's rc.d hook runs a command and reports the same way.
//!
//! Both are freestanding C built by `build.rs` with the host's clang, so no FreeBSD sysroot is
//! needed. With a channel (the second serial port) both speak vmlane's frames both ways: they
//! send Ready, take the host's Prepare (clock, entropy) and Run (command, environment,
//! directory, share, input kind: null, pipe or pseudo-terminal), feed the command's stdin from
//! Stdin, StdinClosed and WindowSize frames, and send its output as Stdout and Stderr frames,
//! then its Exit frame. See `init/init.c` for what the init does at boot and the console lines
//! it prints, `init/channel.h` for the channel, `init/hostframe.h` and `init/frame.h` for the
//! frames each way, and `init/relay.h` for the relay's arguments and exit statuses.
#![deny(missing_docs)]

/// Where the host writes the [`RunFile`] in the guest image.
pub const RUN_FILE_PATH: &str = "/vmlane/run";
/// Where the host puts [`init_binary`] in the guest image; boot with `init_path=` set to it.
pub const INIT_PATH: &str = "/vmlane/init";
/// Where the init mounts the host share (p9fs) when the run file names one.
pub const SHARE_MOUNT_POINT: &str = "/host";

/// The guest's second serial port (COM2, `uart1`): the channel a run's output and status
/// travel on when the VM has that port. See [`RunFile::channel`].
pub const CHANNEL_DEVICE: &str = "/dev/cuau1";

/// First string of every run file, so the init rejects anything else.
pub const RUN_FILE_MAGIC: &str = "vmlane-run 2";
/// Largest run file the init reads (`RUN_MAX_BYTES` in `init/runfile.h`).
pub const RUN_FILE_MAX_BYTES: usize = 1 << 20;
/// Most argv strings, and most env strings, the init accepts (`RUN_MAX_STRINGS`).
pub const RUN_FILE_MAX_STRINGS: usize = 65536;
/// Longest token the init accepts (`RUN_MAX_TOKEN`); it is echoed in every marker line.
pub const TOKEN_MAX_BYTES: usize = 128;

/// Aligns the embedded init so ELF readers can parse its headers in place.
#[repr(C, align(8))]
struct Aligned<Bytes: ?Sized>(Bytes);

/// The built init, or an empty placeholder when `build.rs` could not build it.
static INIT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/vmlane-freebsd-init"
)));

/// The built relay, or an empty placeholder when `build.rs` could not build it.
static RELAY: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/vmlane-freebsd-relay"
)));

/// vmlane's FreeBSD init, or why it could not be built on this machine.
///
/// The bytes are 8-byte aligned, so ELF headers can be read from them in place.
pub fn init_binary() -> Result<&'static [u8], &'static str> {
    built(&INIT.0)
}

/// vmlane-relay, a static FreeBSD executable: `vmlane-relay DEVICE` sends Ready on DEVICE and
/// runs the command of the host's Run frame, its input fed from the host's frames, with its
/// stdout, stderr and exit status sent as frames on DEVICE, as the init sends them;
/// `vmlane-relay DEVICE -- COMMAND [ARGUMENT...]` runs COMMAND at once instead, with no input.
/// `vmlane image build` installs it in full images for their rc.d hook.
/// Or why it could not be built on this machine.
pub fn relay_binary() -> Result<&'static [u8], &'static str> {
    built(&RELAY.0)
}

fn built(program: &'static [u8]) -> Result<&'static [u8], &'static str> {
    match option_env!("VMLANE_FREEBSD_INIT_MISSING") {
        Some(why) => Err(why),
        None => Ok(program),
    }
}

/// What the FreeBSD init runs; written to `/vmlane/run` in the guest image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFile {
    /// Per-run nonce echoed in every console marker line, so stray output cannot fake a result.
    pub token: String,
    /// Working directory of the command.
    pub cwd: Vec<u8>,
    /// 9p mount tag of the host share, mounted read-only on [`SHARE_MOUNT_POINT`].
    pub share_tag: Option<String>,
    /// The device vmlane frames travel on both ways ([`CHANNEL_DEVICE`]): the init sends Ready
    /// there and runs the command of the host's Run frame, whose output, input and exit status
    /// then travel there too; `None`: the command below writes to the console and its end is a
    /// marker line there, for VMs without the second serial port.
    pub channel: Option<String>,
    /// The command without a channel; `argv[0]` must be an absolute path (the init does no
    /// `PATH` search). May be empty with a channel, where the host's Run frame wins anyway.
    pub argv: Vec<Vec<u8>>,
    /// The command's whole environment, as `KEY=value` strings, without a channel.
    pub env: Vec<Vec<u8>>,
}

/// Why a [`RunFile`] cannot be encoded: the init would reject it or misread it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFileError {
    /// A string holds a NUL, the run file's separator.
    #[error("the {field} contains a NUL byte, which the run file uses as its separator")]
    Nul {
        /// Which string, e.g. `argv[1]`.
        field: String,
    },
    /// There is no program to run: argv is empty and there is no channel to send one on.
    #[error(
        "argv is empty and there is no channel: the FreeBSD init needs at least the program to \
         run"
    )]
    EmptyArgv,
    /// The token cannot be echoed safely in a marker line.
    #[error(
        "the token {0:?} must be 1 to {TOKEN_MAX_BYTES} printable ASCII characters without \
         spaces or ':'"
    )]
    BadToken(String),
    /// An empty tag would be read as "no share".
    #[error("the share tag is empty; use None for no share")]
    EmptyShareTag,
    /// An empty device would be read as "no channel".
    #[error("the channel device is empty; use None for no channel")]
    EmptyChannel,
    /// More strings than the init has room for.
    #[error("{what} has {count} strings; the FreeBSD init accepts at most {RUN_FILE_MAX_STRINGS}")]
    TooMany {
        /// `argv` or `env`.
        what: &'static str,
        /// How many strings were given.
        count: usize,
    },
    /// Bigger than the init reads.
    #[error(
        "the run file would be {0} bytes; the FreeBSD init reads at most {RUN_FILE_MAX_BYTES}"
    )]
    TooLarge(usize),
}

impl RunFile {
    /// The bytes of `/vmlane/run`: NUL-terminated strings `vmlane-run 2`, token, cwd, share tag
    /// (empty for none), channel device (empty for none), argc in decimal, the argv strings,
    /// envc in decimal, the env strings.
    pub fn encode(&self) -> Result<Vec<u8>, RunFileError> {
        let share = self.share_tag.as_deref().unwrap_or("");
        let channel = self.channel.as_deref().unwrap_or("");
        no_nul("token", self.token.as_bytes())?;
        no_nul("working directory", &self.cwd)?;
        no_nul("share tag", share.as_bytes())?;
        no_nul("channel device", channel.as_bytes())?;
        for (i, arg) in self.argv.iter().enumerate() {
            no_nul(&format!("argv[{i}]"), arg)?;
        }
        for (i, var) in self.env.iter().enumerate() {
            no_nul(&format!("env[{i}]"), var)?;
        }
        if self.argv.is_empty() && self.channel.is_none() {
            return Err(RunFileError::EmptyArgv);
        }
        if !token_ok(&self.token) {
            return Err(RunFileError::BadToken(self.token.clone()));
        }
        if self.share_tag.as_deref() == Some("") {
            return Err(RunFileError::EmptyShareTag);
        }
        if self.channel.as_deref() == Some("") {
            return Err(RunFileError::EmptyChannel);
        }
        for (what, list) in [("argv", &self.argv), ("env", &self.env)] {
            if list.len() > RUN_FILE_MAX_STRINGS {
                return Err(RunFileError::TooMany {
                    what,
                    count: list.len(),
                });
            }
        }

        let mut out = Vec::new();
        let mut push = |s: &[u8]| {
            out.extend_from_slice(s);
            out.push(0);
        };
        push(RUN_FILE_MAGIC.as_bytes());
        push(self.token.as_bytes());
        push(&self.cwd);
        push(share.as_bytes());
        push(channel.as_bytes());
        push(self.argv.len().to_string().as_bytes());
        self.argv.iter().for_each(|arg| push(arg));
        push(self.env.len().to_string().as_bytes());
        self.env.iter().for_each(|var| push(var));

        if out.len() > RUN_FILE_MAX_BYTES {
            return Err(RunFileError::TooLarge(out.len()));
        }
        Ok(out)
    }
}

fn no_nul(field: &str, s: &[u8]) -> Result<(), RunFileError> {
    if s.contains(&0) {
        return Err(RunFileError::Nul {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Same rule as `run_token_ok` in `init/runfile.h`.
fn token_ok(token: &str) -> bool {
    (1..=TOKEN_MAX_BYTES).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunFile {
        RunFile {
            token: "t0k3n".into(),
            cwd: b"/host/src".to_vec(),
            share_tag: Some("vmlane".into()),
            channel: Some(CHANNEL_DEVICE.into()),
            argv: vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()],
            env: vec![b"PATH=/bin:/usr/bin".to_vec(), b"HOME=/".to_vec()],
        }
    }

    #[test]
    fn encodes_byte_for_byte() {
        let expected: &[u8] = b"vmlane-run 2\0t0k3n\0/host/src\0vmlane\0/dev/cuau1\0\
            3\0/bin/sh\0-c\0echo hi\0\
            2\0PATH=/bin:/usr/bin\0HOME=/\0";
        assert_eq!(sample().encode().unwrap(), expected);
    }

    #[test]
    fn no_share_no_channel_and_no_env_encode_as_empty_strings_and_zero() {
        let run = RunFile {
            share_tag: None,
            channel: None,
            env: vec![],
            argv: vec![b"/bin/true".to_vec()],
            ..sample()
        };
        assert_eq!(
            run.encode().unwrap(),
            b"vmlane-run 2\0t0k3n\0/host/src\0\0\x001\0/bin/true\x000\0"
        );
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let run = RunFile {
            cwd: b"/tmp/\xff".to_vec(),
            argv: vec![b"/bin/echo".to_vec(), b"\xfe\n".to_vec()],
            ..sample()
        };
        let bytes = run.encode().unwrap();
        assert!(bytes.windows(3).any(|w| w == b"\xfe\n\0"));
        assert!(bytes.windows(7).any(|w| w == b"/tmp/\xff\0"));
    }

    #[test]
    fn rejects_nul_in_every_field() {
        let field = |run: RunFile| match run.encode() {
            Err(RunFileError::Nul { field }) => field,
            other => panic!("expected a NUL error, got {other:?}"),
        };
        assert_eq!(
            field(RunFile {
                token: "a\0b".into(),
                ..sample()
            }),
            "token"
        );
        assert_eq!(
            field(RunFile {
                cwd: b"/a\0".to_vec(),
                ..sample()
            }),
            "working directory"
        );
        assert_eq!(
            field(RunFile {
                share_tag: Some("\0".into()),
                ..sample()
            }),
            "share tag"
        );
        assert_eq!(
            field(RunFile {
                channel: Some("/dev/\0".into()),
                ..sample()
            }),
            "channel device"
        );
        let mut run = sample();
        run.argv[2] = b"echo\0hi".to_vec();
        assert_eq!(field(run), "argv[2]");
        let mut run = sample();
        run.env[1] = b"A=\0".to_vec();
        assert_eq!(field(run), "env[1]");
    }

    #[test]
    fn rejects_empty_argv_without_a_channel() {
        let run = RunFile {
            argv: vec![],
            channel: None,
            ..sample()
        };
        assert_eq!(run.encode(), Err(RunFileError::EmptyArgv));
    }

    #[test]
    fn empty_argv_and_env_encode_with_a_channel() {
        let run = RunFile {
            argv: vec![],
            env: vec![],
            share_tag: None,
            ..sample()
        };
        assert_eq!(
            run.encode().unwrap(),
            b"vmlane-run 2\0t0k3n\0/host/src\0\0/dev/cuau1\x000\x000\0"
        );
    }

    #[test]
    fn rejects_tokens_the_init_would_reject() {
        let max = "x".repeat(TOKEN_MAX_BYTES);
        let too_long = "x".repeat(TOKEN_MAX_BYTES + 1);
        for bad in [
            "",
            "a:b",
            "a b",
            "a\nb",
            "\u{e9}",
            "\x7f",
            too_long.as_str(),
        ] {
            let run = RunFile {
                token: bad.into(),
                ..sample()
            };
            assert_eq!(
                run.encode(),
                Err(RunFileError::BadToken(bad.into())),
                "{bad:?}"
            );
        }
        let run = RunFile {
            token: max,
            ..sample()
        };
        assert!(run.encode().is_ok());
    }

    #[test]
    fn rejects_empty_share_tag() {
        let run = RunFile {
            share_tag: Some(String::new()),
            ..sample()
        };
        assert_eq!(run.encode(), Err(RunFileError::EmptyShareTag));
        let run = RunFile {
            channel: Some(String::new()),
            ..sample()
        };
        assert_eq!(run.encode(), Err(RunFileError::EmptyChannel));
    }

    #[test]
    fn rejects_what_the_init_cannot_hold() {
        let run = RunFile {
            env: vec![b"A=".to_vec(); RUN_FILE_MAX_STRINGS + 1],
            ..sample()
        };
        assert_eq!(
            run.encode(),
            Err(RunFileError::TooMany {
                what: "env",
                count: RUN_FILE_MAX_STRINGS + 1
            })
        );
        let run = RunFile {
            argv: vec![b"/bin/echo".to_vec(), vec![b'x'; RUN_FILE_MAX_BYTES]],
            ..sample()
        };
        assert!(matches!(run.encode(), Err(RunFileError::TooLarge(_))));
    }
}
