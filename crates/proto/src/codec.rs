use crate::message::{
    DirMount, GuestMessage, HostMessage, Input, RunRequest, ShareMount, WindowSize, MAX_ENTROPY,
};
use vmlane_spec::GuestStatus;

/// The largest frame payload either side accepts. Output is sent in chunks well below it.
pub const MAX_FRAME: usize = 1 << 20;

const HEADER: usize = 5;

const KIND_RUN: u8 = 1;
const KIND_STDIN: u8 = 2;
const KIND_STDIN_CLOSED: u8 = 3;
const KIND_WINDOW_SIZE: u8 = 4;
const KIND_PREPARE: u8 = 5;
const KIND_START: u8 = 6;
const KIND_MARK: u8 = 16;
const KIND_STDOUT: u8 = 17;
const KIND_STDERR: u8 = 18;
const KIND_EXIT: u8 = 19;
const KIND_FAILED: u8 = 20;
const KIND_READY: u8 = 21;

const STATUS_EXITED: u8 = 0;
const STATUS_SIGNALED: u8 = 1;
const STATUS_NOT_FOUND: u8 = 2;
const STATUS_NOT_EXECUTABLE: u8 = 3;

const INPUT_NULL: u8 = 0;
const INPUT_PIPE: u8 = 1;
const INPUT_TERMINAL: u8 = 2;

/// A frame that cannot be decoded. The stream is unusable after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A frame announced more than [`MAX_FRAME`] bytes.
    TooLarge(usize),
    /// The frame kind is not one this side accepts.
    UnknownKind(u8),
    /// The payload ended early or had bytes left over.
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge(len) => write!(f, "frame of {len} bytes exceeds {MAX_FRAME}"),
            DecodeError::UnknownKind(kind) => write!(f, "unknown frame kind {kind}"),
            DecodeError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Types that travel in frames.
pub trait Frame: Sized {
    /// Appends the whole frame, header included, to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Decodes one payload of the given kind.
    fn decode(kind: u8, payload: &[u8]) -> Result<Self, DecodeError>;
}

/// Encodes one message as a complete frame.
pub fn encode<M: Frame>(message: &M) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode_into(&mut out);
    out
}

/// Splits a byte stream into messages; feed it whatever arrives, in any chunking.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    failed: bool,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message<M: Frame>(&mut self) -> Result<Option<M>, DecodeError> {
        if self.failed {
            return Err(DecodeError::Malformed("stream already failed"));
        }
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            self.failed = true;
            return Err(DecodeError::TooLarge(len));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let result = M::decode(kind, &self.buf[HEADER..HEADER + len]);
        self.buf.drain(..HEADER + len);
        if result.is_err() {
            self.failed = true;
        }
        result.map(Some)
    }

    /// Bytes received that do not yet form a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Writer<'a> {
    fn frame(out: &'a mut Vec<u8>, kind: u8) -> Self {
        let start = out.len();
        out.push(kind);
        out.extend_from_slice(&[0; 4]);
        Writer { out, start }
    }

    fn u8(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    fn u16(&mut self, value: u16) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn window_size(&mut self, size: WindowSize) -> &mut Self {
        self.u16(size.rows).u16(size.cols)
    }

    fn u64(&mut self, value: u64) -> &mut Self {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u32(value.len() as u32);
        self.out.extend_from_slice(value);
        self
    }

    fn list(&mut self, items: &[Vec<u8>]) -> &mut Self {
        self.u32(items.len() as u32);
        for item in items {
            self.bytes(item);
        }
        self
    }

    fn share(&mut self, share: &ShareMount) -> &mut Self {
        self.bytes(share.fstype.as_bytes())
            .bytes(share.tag.as_bytes())
            .bytes(share.options.as_bytes())
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let len = (self.out.len() - self.start - HEADER) as u32;
        self.out[self.start + 1..self.start + HEADER].copy_from_slice(&len.to_le_bytes());
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Malformed("payload ends early"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn window_size(&mut self) -> Result<WindowSize, DecodeError> {
        Ok(WindowSize {
            rows: self.u16()?,
            cols: self.u16()?,
        })
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError::Malformed("string is not UTF-8"))
    }

    fn list(&mut self) -> Result<Vec<Vec<u8>>, DecodeError> {
        let count = self.u32()? as usize;
        // Each item costs at least its 4-byte length, which bounds the allocation.
        if count > self.rest.len() / 4 {
            return Err(DecodeError::Malformed("list longer than its payload"));
        }
        (0..count).map(|_| self.bytes()).collect()
    }

    fn share(&mut self) -> Result<ShareMount, DecodeError> {
        Ok(ShareMount {
            fstype: self.string()?,
            tag: self.string()?,
            options: self.string()?,
        })
    }

    /// Writable directories: each costs at least its four 4-byte lengths, which bounds the
    /// count before anything is allocated.
    fn dir_mounts(&mut self) -> Result<Vec<DirMount>, DecodeError> {
        let count = self.u32()? as usize;
        if count > self.rest.len() / 16 {
            return Err(DecodeError::Malformed(
                "more directories than the payload holds",
            ));
        }
        (0..count)
            .map(|_| {
                Ok(DirMount {
                    share: self.share()?,
                    target: self.bytes()?,
                })
            })
            .collect()
    }

    fn end(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("bytes left over"))
        }
    }
}

impl Frame for HostMessage {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            HostMessage::Prepare {
                wall_clock_ns,
                entropy,
            } => {
                Writer::frame(out, KIND_PREPARE)
                    .u64(*wall_clock_ns)
                    .bytes(entropy);
            }
            HostMessage::Run(run) => encode_run(run, out),
            HostMessage::Stdin(data) => {
                Writer::frame(out, KIND_STDIN).out.extend_from_slice(data);
            }
            HostMessage::StdinClosed => {
                Writer::frame(out, KIND_STDIN_CLOSED);
            }
            HostMessage::Start => {
                Writer::frame(out, KIND_START);
            }
            HostMessage::WindowSize(size) => {
                Writer::frame(out, KIND_WINDOW_SIZE).window_size(*size);
            }
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { rest: payload };
        let message = match kind {
            KIND_PREPARE => {
                let wall_clock_ns = r.u64()?;
                let entropy = r.bytes()?;
                if entropy.len() > MAX_ENTROPY {
                    return Err(DecodeError::Malformed("more entropy than a guest takes"));
                }
                HostMessage::Prepare {
                    wall_clock_ns,
                    entropy,
                }
            }
            KIND_RUN => return decode_run(r),
            KIND_STDIN => return Ok(HostMessage::Stdin(payload.to_vec())),
            KIND_STDIN_CLOSED => HostMessage::StdinClosed,
            KIND_START => HostMessage::Start,
            KIND_WINDOW_SIZE => HostMessage::WindowSize(r.window_size()?),
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.end()?;
        Ok(message)
    }
}

fn encode_run(run: &RunRequest, out: &mut Vec<u8>) {
    let mut w = Writer::frame(out, KIND_RUN);
    w.list(&run.argv).list(&run.env).bytes(&run.cwd);
    match &run.share {
        None => {
            w.u8(0);
        }
        Some(share) => {
            w.u8(1).share(share);
        }
    }
    w.u32(run.rwdirs.len() as u32);
    for dir in &run.rwdirs {
        w.share(&dir.share).bytes(&dir.target);
    }
    match run.input {
        Input::Null => {
            w.u8(INPUT_NULL);
        }
        Input::Pipe => {
            w.u8(INPUT_PIPE);
        }
        Input::Terminal(size) => {
            w.u8(INPUT_TERMINAL).window_size(size);
        }
    }
}

fn decode_run(mut r: Reader<'_>) -> Result<HostMessage, DecodeError> {
    let argv = r.list()?;
    let env = r.list()?;
    let cwd = r.bytes()?;
    let share = match r.u8()? {
        0 => None,
        1 => Some(r.share()?),
        _ => return Err(DecodeError::Malformed("share flag")),
    };
    let rwdirs = r.dir_mounts()?;
    let input = match r.u8()? {
        INPUT_NULL => Input::Null,
        INPUT_PIPE => Input::Pipe,
        INPUT_TERMINAL => Input::Terminal(r.window_size()?),
        _ => return Err(DecodeError::Malformed("input kind")),
    };
    r.end()?;
    Ok(HostMessage::Run(RunRequest {
        argv,
        env,
        cwd,
        share,
        rwdirs,
        input,
    }))
}

impl Frame for GuestMessage {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            GuestMessage::Mark { name, boot_ns } => {
                Writer::frame(out, KIND_MARK)
                    .bytes(name.as_bytes())
                    .u64(*boot_ns);
            }
            GuestMessage::Ready => {
                Writer::frame(out, KIND_READY);
            }
            GuestMessage::Stdout(data) => {
                Writer::frame(out, KIND_STDOUT).out.extend_from_slice(data);
            }
            GuestMessage::Stderr(data) => {
                Writer::frame(out, KIND_STDERR).out.extend_from_slice(data);
            }
            GuestMessage::Exit(status) => {
                let (tag, value) = match *status {
                    GuestStatus::Exited(code) => (STATUS_EXITED, code),
                    GuestStatus::Signaled(sig) => (STATUS_SIGNALED, sig),
                    GuestStatus::NotFound => (STATUS_NOT_FOUND, 0),
                    GuestStatus::NotExecutable => (STATUS_NOT_EXECUTABLE, 0),
                };
                Writer::frame(out, KIND_EXIT).u8(tag).u32(value as u32);
            }
            GuestMessage::Failed { step, message } => {
                Writer::frame(out, KIND_FAILED)
                    .bytes(step.as_bytes())
                    .bytes(message.as_bytes());
            }
        }
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { rest: payload };
        let message = match kind {
            KIND_MARK => GuestMessage::Mark {
                name: r.string()?,
                boot_ns: r.u64()?,
            },
            KIND_READY => GuestMessage::Ready,
            KIND_STDOUT => return Ok(GuestMessage::Stdout(payload.to_vec())),
            KIND_STDERR => return Ok(GuestMessage::Stderr(payload.to_vec())),
            KIND_EXIT => {
                let tag = r.u8()?;
                let value = r.u32()? as i32;
                GuestMessage::Exit(match tag {
                    STATUS_EXITED => GuestStatus::Exited(value),
                    STATUS_SIGNALED => GuestStatus::Signaled(value),
                    STATUS_NOT_FOUND => GuestStatus::NotFound,
                    STATUS_NOT_EXECUTABLE => GuestStatus::NotExecutable,
                    _ => return Err(DecodeError::Malformed("exit status tag")),
                })
            }
            KIND_FAILED => GuestMessage::Failed {
                step: r.string()?,
                message: r.string()?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.end()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<M: Frame + PartialEq + Clone + std::fmt::Debug>(message: M) {
        let bytes = encode(&message);
        let mut decoder = Decoder::new();
        // Feed one byte at a time: the host reads in arbitrary chunks.
        for (i, byte) in bytes.iter().enumerate() {
            decoder.push(std::slice::from_ref(byte));
            let got = decoder.next_message::<M>().unwrap();
            if i + 1 < bytes.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got, Some(message.clone()));
            }
        }
        assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn every_guest_message_roundtrips() {
        roundtrip(GuestMessage::Mark {
            name: "modules loaded".into(),
            boot_ns: 123,
        });
        roundtrip(GuestMessage::Ready);
        roundtrip(GuestMessage::Stdout(vec![0, 255, b'\n']));
        roundtrip(GuestMessage::Stderr(Vec::new()));
        roundtrip(GuestMessage::Exit(GuestStatus::Exited(7)));
        roundtrip(GuestMessage::Exit(GuestStatus::Exited(-1)));
        roundtrip(GuestMessage::Exit(GuestStatus::Signaled(9)));
        roundtrip(GuestMessage::Exit(GuestStatus::NotFound));
        roundtrip(GuestMessage::Exit(GuestStatus::NotExecutable));
        roundtrip(GuestMessage::Failed {
            step: "mount /proc".into(),
            message: "EPERM".into(),
        });
    }

    #[test]
    fn run_request_roundtrips() {
        roundtrip(HostMessage::Run(RunRequest {
            argv: vec![b"printf".to_vec(), b"a b '$x' \"q\"".to_vec()],
            env: vec![b"PATH=/bin".to_vec()],
            cwd: b"/home/dev/linux".to_vec(),
            share: Some(ShareMount {
                fstype: "9p".into(),
                tag: "vmlane-root".into(),
                options: "trans=virtio".into(),
            }),
            rwdirs: vec![
                DirMount {
                    share: ShareMount {
                        fstype: "9p".into(),
                        tag: "vmlane-rw0".into(),
                        options: "trans=virtio,cache=mmap".into(),
                    },
                    target: b"/home/dev/out".to_vec(),
                },
                DirMount {
                    share: ShareMount {
                        fstype: "virtiofs".into(),
                        tag: "vmlane-rw1".into(),
                        options: String::new(),
                    },
                    target: b"/mnt/\xff odd".to_vec(),
                },
            ],
            input: Input::Null,
        }));
        for input in [
            Input::Null,
            Input::Pipe,
            Input::Terminal(WindowSize { rows: 24, cols: 80 }),
            Input::Terminal(WindowSize {
                rows: u16::MAX,
                cols: 0,
            }),
        ] {
            roundtrip(HostMessage::Run(RunRequest {
                argv: vec![],
                env: vec![],
                cwd: vec![],
                share: None,
                rwdirs: vec![],
                input,
            }));
        }
    }

    #[test]
    fn every_host_message_roundtrips() {
        roundtrip(HostMessage::Stdin(b"ls\r\x03\x1a\0\xff".to_vec()));
        roundtrip(HostMessage::Stdin(Vec::new()));
        roundtrip(HostMessage::StdinClosed);
        roundtrip(HostMessage::Start);
        roundtrip(HostMessage::WindowSize(WindowSize {
            rows: 50,
            cols: 132,
        }));
        roundtrip(HostMessage::Prepare {
            wall_clock_ns: 1_796_405_203_000_000_000,
            entropy: vec![7; 64],
        });
    }

    #[test]
    fn a_guest_is_never_handed_more_entropy_than_it_takes() {
        let mut frame = encode(&HostMessage::Prepare {
            wall_clock_ns: 0,
            entropy: vec![0; MAX_ENTROPY + 1],
        });
        let mut decoder = Decoder::new();
        decoder.push(&frame);
        assert!(matches!(
            decoder.next_message::<HostMessage>(),
            Err(DecodeError::Malformed(_))
        ));
        // A length field that claims more than the frame holds.
        frame.truncate(HEADER + 8 + 4);
        let len = (frame.len() - HEADER) as u32;
        frame[1..HEADER].copy_from_slice(&len.to_le_bytes());
        frame[HEADER + 8..].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut decoder = Decoder::new();
        decoder.push(&frame);
        assert!(decoder.next_message::<HostMessage>().is_err());
    }

    #[test]
    fn malformed_host_frames_are_errors() {
        for frame in [
            // A window size one byte short, and one with a byte left over.
            vec![KIND_WINDOW_SIZE, 3, 0, 0, 0, 1, 0, 2],
            vec![KIND_WINDOW_SIZE, 5, 0, 0, 0, 1, 0, 2, 0, 9],
            vec![KIND_STDIN_CLOSED, 1, 0, 0, 0, 0],
        ] {
            let mut decoder = Decoder::new();
            decoder.push(&frame);
            assert!(
                matches!(
                    decoder.next_message::<HostMessage>(),
                    Err(DecodeError::Malformed(_))
                ),
                "{frame:?}"
            );
        }
        let mut run = encode(&HostMessage::Run(RunRequest {
            argv: vec![],
            env: vec![],
            cwd: vec![],
            share: None,
            rwdirs: vec![],
            input: Input::Pipe,
        }));
        *run.last_mut().unwrap() = 7;
        let mut decoder = Decoder::new();
        decoder.push(&run);
        assert_eq!(
            decoder.next_message::<HostMessage>(),
            Err(DecodeError::Malformed("input kind"))
        );
    }

    #[test]
    fn oversized_frame_is_rejected_before_it_is_buffered() {
        let mut decoder = Decoder::new();
        decoder.push(&[KIND_STDOUT, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            decoder.next_message::<GuestMessage>(),
            Err(DecodeError::TooLarge(u32::MAX as usize))
        );
        assert!(
            decoder.next_message::<GuestMessage>().is_err(),
            "a failed stream stays failed"
        );
    }

    #[test]
    fn unknown_kind_and_trailing_bytes_are_errors() {
        let mut decoder = Decoder::new();
        decoder.push(&[99, 0, 0, 0, 0]);
        assert_eq!(
            decoder.next_message::<GuestMessage>(),
            Err(DecodeError::UnknownKind(99))
        );

        let mut frame = encode(&GuestMessage::Exit(GuestStatus::Exited(0)));
        frame.push(0);
        frame[1] += 1;
        let mut decoder = Decoder::new();
        decoder.push(&frame);
        assert!(matches!(
            decoder.next_message::<GuestMessage>(),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn huge_list_count_does_not_allocate() {
        let mut frame = vec![KIND_RUN, 4, 0, 0, 0];
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut decoder = Decoder::new();
        decoder.push(&frame);
        assert!(matches!(
            decoder.next_message::<HostMessage>(),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn a_huge_directory_count_does_not_allocate() {
        let mut frame = encode(&HostMessage::Run(RunRequest {
            argv: vec![],
            env: vec![],
            cwd: vec![],
            share: None,
            rwdirs: vec![],
            input: Input::Null,
        }));
        // The count sits after argv, env, cwd (4 bytes each when empty) and the share flag.
        let at = HEADER + 4 + 4 + 4 + 1;
        frame[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut decoder = Decoder::new();
        decoder.push(&frame);
        assert_eq!(
            decoder.next_message::<HostMessage>(),
            Err(DecodeError::Malformed(
                "more directories than the payload holds"
            ))
        );
    }

    fn share_mount() -> impl Strategy<Value = ShareMount> {
        ("[a-z0-9]{0,9}", "[ -~]{0,20}", "[ -~]{0,40}").prop_map(|(fstype, tag, options)| {
            ShareMount {
                fstype,
                tag,
                options,
            }
        })
    }

    proptest! {
        #[test]
        fn run_requests_with_any_directories_roundtrip(
            share in proptest::option::of(share_mount()),
            rwdirs in proptest::collection::vec(
                (share_mount(), proptest::collection::vec(any::<u8>(), 0..64))
                    .prop_map(|(share, target)| DirMount { share, target }),
                0..5,
            ),
            cwd in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let run = HostMessage::Run(RunRequest {
                argv: vec![b"true".to_vec()],
                env: vec![],
                cwd,
                share,
                rwdirs,
                input: Input::Pipe,
            });
            let mut decoder = Decoder::new();
            decoder.push(&encode(&run));
            prop_assert_eq!(decoder.next_message::<HostMessage>().unwrap(), Some(run));
        }

        #[test]
        fn arbitrary_guest_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut decoder = Decoder::new();
            for chunk in chunks {
                decoder.push(&chunk);
                while let Ok(Some(_)) = decoder.next_message::<GuestMessage>() {}
            }
        }

        #[test]
        fn arbitrary_host_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut decoder = Decoder::new();
            for chunk in chunks {
                decoder.push(&chunk);
                while let Ok(Some(_)) = decoder.next_message::<HostMessage>() {}
            }
        }

        #[test]
        fn input_roundtrips(data in proptest::collection::vec(any::<u8>(), 0..4096), rows: u16, cols: u16) {
            let mut decoder = Decoder::new();
            decoder.push(&encode(&HostMessage::Stdin(data.clone())));
            decoder.push(&encode(&HostMessage::WindowSize(WindowSize { rows, cols })));
            prop_assert_eq!(decoder.next_message::<HostMessage>().unwrap(), Some(HostMessage::Stdin(data)));
            prop_assert_eq!(decoder.next_message::<HostMessage>().unwrap(), Some(HostMessage::WindowSize(WindowSize { rows, cols })));
        }

        #[test]
        fn output_roundtrips(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut decoder = Decoder::new();
            decoder.push(&encode(&GuestMessage::Stdout(data.clone())));
            prop_assert_eq!(decoder.next_message::<GuestMessage>().unwrap(), Some(GuestMessage::Stdout(data)));
        }
    }
}
