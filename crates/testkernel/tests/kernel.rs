//! The built kernel: its notes and brand, what vmlane takes it for, and real boots under QEMU.
//! Without clang, lld or QEMU these skip, unless `VMLANE_E2E_REQUIRED=1` says they must run.

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vmlane_proto::{
    DirMount, GuestMessage, HostMessage, Input, RunRequest, ShareMount, WindowSize,
};
use vmlane_spec::GuestStatus;

const XEN_ELFNOTE_GUEST_OS: u32 = 6;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const QEMU: &str = "qemu-system-x86_64";
/// Far more than a boot takes (well under a second under TCG); only a broken kernel hits it.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

fn skip(why: &str) {
    let required = std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1");
    assert!(!required, "VMLANE_E2E_REQUIRED=1, but {why}");
    println!("skipped: {why}");
}

/// The kernel, or `None` once the test has been skipped.
fn kernel() -> Option<&'static Path> {
    vmlane_testkernel::pvh_kernel().map_err(skip).ok()
}

#[test]
fn the_kernel_has_a_pvh_entry_and_says_it_is_freebsd() {
    let Some(path) = kernel() else { return };
    let data = std::fs::read(path).unwrap();
    let header = elf::FileHeader64::<Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    assert_eq!(header.e_ident().os_abi, elf::ELFOSABI_FREEBSD);
    assert_eq!(header.e_machine(endian), elf::EM_X86_64);

    let segments = header.program_headers(endian, &*data).unwrap();
    let (mut entry, mut guest_os) = (None, None);
    for segment in segments {
        let Some(mut notes) = segment.notes(endian, &*data).unwrap() else {
            continue;
        };
        while let Some(note) = notes.next().unwrap() {
            match (note.name(), note.n_type(endian)) {
                (b"Xen", XEN_ELFNOTE_PHYS32_ENTRY) => {
                    entry = Some(u32::from_le_bytes(note.desc().try_into().unwrap()))
                }
                (b"Xen", XEN_ELFNOTE_GUEST_OS) => guest_os = Some(note.desc().to_vec()),
                _ => {}
            }
        }
    }
    let entry = u64::from(entry.expect("no PHYS32_ENTRY note in a PT_NOTE segment"));
    assert!(
        segments.iter().any(|s| {
            let start = s.p_paddr(endian);
            s.p_type(endian) == elf::PT_LOAD && (start..start + s.p_filesz(endian)).contains(&entry)
        }),
        "the PVH entry {entry:#x} is outside every loaded segment"
    );
    assert_eq!(guest_os.as_deref(), Some(&b"FreeBSD\0"[..]));
}

#[test]
fn vmlane_takes_it_for_a_freebsd_kernel() {
    let Some(path) = kernel() else { return };
    assert_eq!(
        vmlane_kernel::identify(path).unwrap(),
        (
            vmlane_kernel::ImageFormat::FreeBsd,
            Some("15.0-VMLANE".into())
        )
    );
}

/// What came of one boot.
struct Boot {
    /// The serial console.
    output: String,
    /// How QEMU ended, if it did so by itself.
    status: Option<ExitStatus>,
    stderr: String,
}

impl Boot {
    fn has_line(&self, line: &str) -> bool {
        self.output.lines().any(|l| l == line)
    }

    #[track_caller]
    fn assert_lines(&self, lines: &[&str]) {
        for line in lines {
            assert!(self.has_line(line), "no line {line:?} in:\n{self}");
        }
    }

    #[track_caller]
    fn assert_exited(&self) {
        assert!(
            self.status.is_some_and(|s| s.success()),
            "QEMU did not exit by itself with status 0:\n{self}"
        );
    }
}

impl std::fmt::Display for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- QEMU ended: {:?}; its stderr:\n{}",
            self.output, self.status, self.stderr
        )
    }
}

/// Boots the kernel with `append` until QEMU exits, or until the console shows `until` (then
/// QEMU is killed), or the timeout. `None` once the test has been skipped.
fn boot(append: &str, until: Option<&str>) -> Option<Boot> {
    boot_with_com2(append, until, None)
}

/// Where a boot's second serial port (COM2) goes.
enum Com2<'a> {
    /// Written to this file.
    File(&'a Path),
    /// Connected to the unix socket a test listens on here, for frames both ways.
    Socket(&'a Path),
}

impl Com2<'_> {
    fn chardev(&self) -> String {
        match self {
            Com2::File(path) => format!("file,id=com2,path={}", path.display()),
            Com2::Socket(path) => format!("socket,id=com2,path={}", path.display()),
        }
    }
}

/// [`boot`], with a second serial port (COM2) when given.
fn boot_with_com2(append: &str, until: Option<&str>, com2: Option<Com2>) -> Option<Boot> {
    let kernel = kernel()?;
    if Command::new(QEMU).arg("--version").output().is_err() {
        skip(&format!("{QEMU} is not installed"));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let mut child = Command::new(QEMU)
        .args(["-M", "microvm,acpi=off,pit=on,pic=on,rtc=on"])
        .args(["-accel", "tcg", "-cpu", "max", "-m", "128M"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-serial", "stdio"])
        .args(["-device", "virtio-blk-device,drive=d0", "-drive"])
        .arg(format!("file={},format=raw,if=none,id=d0", disk.display()))
        .args(com2.map_or_else(Vec::new, |com2| {
            vec![
                "-chardev".to_string(),
                com2.chardev(),
                "-device".to_string(),
                "isa-serial,chardev=com2,index=1".to_string(),
            ]
        }))
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut stdout = child.stdout.take().unwrap();
    let (chunks, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if chunks.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut output = Vec::new();
    let mut closed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(chunk) => {
                output.extend_from_slice(&chunk);
                if until.is_some_and(|u| String::from_utf8_lossy(&output).contains(u)) {
                    break;
                }
            }
            // The console closed: QEMU is on its way out.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                closed = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    let mut status = None;
    while closed && status.is_none() && Instant::now() < deadline {
        status = child.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    // A no-op once QEMU has exited by itself.
    let _ = child.kill();
    let _ = child.wait();
    Some(Boot {
        output: String::from_utf8_lossy(&output).into_owned(),
        status,
        stderr: stderr.join().unwrap(),
    })
}

#[test]
fn a_boot_reports_what_qemu_handed_over_and_the_exit_status() {
    let Some(boot) = boot("vmlane.token=abc vmlane_test.action=exit:7", None) else {
        return;
    };
    boot.assert_exited();
    let line = |prefix: &str| {
        boot.output
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{boot}"))
            .to_string()
    };
    // QEMU's microvm adds a virtio_mmio.device= word per transport.
    assert!(line("vmlane-testkernel: cmdline: ")
        .starts_with("vmlane-testkernel: cmdline: vmlane.token=abc vmlane_test.action=exit:7"));
    assert!(line("vmlane-testkernel: memmap: addr=0x100000 ").ends_with(" type=1"));
    let disk = boot
        .output
        .lines()
        .find(|l| l.starts_with("vmlane-testkernel: virtio_mmio: ") && !l.ends_with("device_id=0"))
        .unwrap_or_else(|| panic!("no virtio_mmio line for the disk in:\n{boot}"));
    assert!(disk.contains(" size=0x200 "), "{disk}");
    assert!(disk.contains(" magic=0x74726976 "), "{disk}");
    assert!(disk.ends_with(" device_id=2"), "{disk}");
    boot.assert_lines(&[
        "vmlane:abc:start",
        "hello from the test kernel",
        r#"{"kind":"probe","status":"ok","data":{"n":1}}"#,
        "vmlane:abc:exit 7",
    ]);
}

#[test]
fn without_words_the_command_exits_0_under_the_unknown_token() {
    let Some(boot) = boot("", None) else { return };
    boot.assert_exited();
    boot.assert_lines(&["vmlane:?:start", "vmlane:?:exit 0"]);
}

#[test]
fn a_signal_ends_the_command() {
    let Some(boot) = boot("vmlane.token=t vmlane_test.action=signal:9", None) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&["vmlane:t:start", "vmlane:t:signal 9"]);
    assert!(!boot.output.contains("vmlane:t:exit"), "{boot}");
}

const BACKTRACE: &[&str] = &[
    "KDB: stack backtrace:",
    "#0 0xffffffff80b8f1ad at kdb_backtrace+0x5d",
    "#1 0xffffffff80b40ba2 at vpanic+0x132",
    "#2 0xffffffff80b40a63 at panic+0x43",
    "#3 0xffffffff80f6a3c1 at vmlane_test_panic+0x11",
];

#[test]
fn a_panic_prints_freebsds_report_and_resets() {
    let Some(boot) = boot(
        "vmlane.token=t vmlane_test.action=panic:test_panic_here",
        None,
    ) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&["panic: test panic here", "cpuid = 0", "time = 1"]);
    boot.assert_lines(BACKTRACE);
    boot.assert_lines(&[
        "Uptime: 1s",
        "Automatic reboot in 0 seconds - press a key on the console to abort",
    ]);
    assert!(!boot.output.contains("vmlane:t:"), "{boot}");
}

#[test]
fn a_panic_with_the_debugger_stops_at_its_prompt() {
    let append = "vmlane_test.action=panic:oops vmlane_test.debugger=1";
    let Some(boot) = boot(append, Some("db> ")) else {
        return;
    };
    assert!(
        boot.status.is_none(),
        "QEMU exited at the debugger:\n{boot}"
    );
    boot.assert_lines(&["panic: oops", "KDB: enter: panic"]);
    assert!(boot.output.ends_with("\ndb> "), "{boot}");
}

#[test]
fn a_trap_prints_a_fatal_trap_and_resets() {
    let Some(boot) = boot("vmlane_test.action=trap", None) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&[
        "Fatal trap 12: page fault while in kernel mode",
        "panic: page fault",
    ]);
    boot.assert_lines(BACKTRACE);
}

#[test]
fn a_root_that_will_not_mount_waits_at_the_mountroot_prompt() {
    let Some(boot) = boot("vmlane_test.action=mountroot", Some("mountroot> ")) else {
        return;
    };
    assert!(boot.status.is_none(), "QEMU exited at mountroot:\n{boot}");
    boot.assert_lines(&["Mounting from ufs:/dev/vtbd0 failed with error 19."]);
}

#[test]
fn a_flood_goes_on() {
    let Some(boot) = boot(
        "vmlane.token=t vmlane_test.action=flood",
        Some("flood 00001000\n"),
    ) else {
        return;
    };
    assert!(boot.status.is_none(), "QEMU exited mid-flood:\n{boot}");
    boot.assert_lines(&["vmlane:t:start", "flood 00000000", "flood 00000999"]);
}

#[test]
fn an_unknown_action_is_named() {
    let Some(boot) = boot("vmlane_test.action=dance", None) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&["vmlane-testkernel: unknown action dance"]);
}

/// Every frame in the bytes written to COM2, as vmlane's host decodes them.
fn frames(bytes: &[u8]) -> Vec<vmlane_proto::GuestMessage> {
    let mut decoder = vmlane_proto::Decoder::new();
    decoder.push(bytes);
    let mut messages = Vec::new();
    while let Some(message) = decoder.next_message().expect("valid frames") {
        messages.push(message);
    }
    assert_eq!(decoder.pending(), 0, "a partial frame at the end");
    messages
}

#[test]
fn given_com2_the_results_go_there_as_frames_and_the_console_keeps_the_kernels_lines() {
    use vmlane_proto::GuestMessage::{Exit, Stderr, Stdout};
    let dir = tempfile::tempdir().unwrap();
    let com2 = dir.path().join("com2");
    let append = "vmlane.token=t hint.uart.1.port=0x2F8 vmlane_test.action=streams";
    let Some(boot) = boot_with_com2(append, None, Some(Com2::File(&com2))) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&[
        "vmlane:t:start",
        "pid 15 (sleep), jid 0, uid 0: exited on signal 6 (core dumped)",
    ]);
    assert!(!boot.output.contains("out 1"), "{boot}");
    assert!(!boot.output.contains("vmlane:t:exit"), "{boot}");
    assert_eq!(
        frames(&std::fs::read(&com2).unwrap()),
        [
            Stdout(b"out 1\n".to_vec()),
            Stderr(b"err 1\n".to_vec()),
            Stdout(b"\0\xff\r\n\tend".to_vec()),
            Stderr(b"err 2, no newline".to_vec()),
            Exit(vmlane_spec::GuestStatus::Exited(0)),
        ]
    );
}

/// The host's end of COM2 for the `request` action: frames both ways over QEMU's socket.
struct Channel {
    stream: UnixStream,
    decoder: vmlane_proto::Decoder,
}

impl Channel {
    /// Waits for QEMU to connect; `None` if it never does (the boot then says why).
    fn accept(listener: UnixListener) -> Option<Channel> {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return None,
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(BOOT_TIMEOUT)).unwrap();
        Some(Channel {
            stream,
            decoder: vmlane_proto::Decoder::new(),
        })
    }

    fn send(&mut self, message: HostMessage) {
        self.stream
            .write_all(&vmlane_proto::encode(&message))
            .unwrap();
    }

    fn next(&mut self) -> GuestMessage {
        loop {
            if let Some(message) = self.decoder.next_message().expect("a valid frame") {
                return message;
            }
            let mut buf = [0u8; 4096];
            let n = self
                .stream
                .read(&mut buf)
                .expect("a frame before the timeout");
            assert!(n > 0, "COM2 closed mid-frame");
            self.decoder.push(&buf[..n]);
        }
    }

    /// Stdout frames until `n` bytes have come: an echo may arrive in pieces.
    fn stdout(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next() {
                GuestMessage::Stdout(data) => out.extend_from_slice(&data),
                other => panic!("{other:?} after {out:?}, {n} bytes of stdout expected"),
            }
        }
        out
    }
}

/// Boots `vmlane_test.action=request` with COM2 on a socket, `talk` playing the host there;
/// what `talk` returns, and the boot. `None` once the test has been skipped.
fn request<T: Send + 'static>(
    talk: impl FnOnce(&mut Channel) -> T + Send + 'static,
) -> Option<(T, Boot)> {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("com2.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let host = std::thread::spawn(move || {
        let mut channel = Channel::accept(listener)?;
        assert_eq!(channel.next(), GuestMessage::Ready, "Ready comes first");
        Some(talk(&mut channel))
    });
    let append = "vmlane.token=t hint.uart.1.port=0x2F8 vmlane_test.action=request";
    let boot = boot_with_com2(append, None, Some(Com2::Socket(&socket)))?;
    let talked = host.join().unwrap();
    let talked = talked.unwrap_or_else(|| panic!("QEMU never connected to COM2:\n{boot}"));
    Some((talked, boot))
}

fn run_request(input: Input) -> HostMessage {
    let share = |tag: &str| ShareMount {
        fstype: "9p".into(),
        tag: tag.into(),
        options: "trans=virtio".into(),
    };
    HostMessage::Run(RunRequest {
        argv: vec![b"echo".to_vec(), b"a b".to_vec()],
        // Far more than the kernel keeps: it must read past it, not into it.
        env: (0..300)
            .map(|i| format!("VAR{i}={}", "x".repeat(100)).into_bytes())
            .collect(),
        cwd: b"/tmp/work".to_vec(),
        share: Some(share("root")),
        rwdirs: vec![DirMount {
            share: share("rw0"),
            target: b"/home/me".to_vec(),
        }],
        input,
    })
}

#[test]
fn a_request_is_read_after_ready_and_a_terminals_input_echoes_until_ctrl_c() {
    let Some((stdout, boot)) = request(|channel| {
        channel.send(HostMessage::Prepare {
            wall_clock_ns: 1_700_000_000_999_999_999,
            entropy: vec![7; 64],
        });
        let size = WindowSize { rows: 24, cols: 80 };
        channel.send(run_request(Input::Terminal(size)));
        let line = b"argv=echo,a b cwd=/tmp/work input=terminal 24x80\n";
        assert_eq!(channel.stdout(line.len()), line);
        channel.send(HostMessage::Stdin(b"hello".to_vec()));
        assert_eq!(channel.stdout(5), b"hello");
        channel.send(HostMessage::WindowSize(WindowSize {
            rows: 50,
            cols: 132,
        }));
        assert_eq!(channel.stdout(15), b"winsize 50x132\n");
        // Larger than any buffer in the kernel: it echoes in pieces, whole.
        let big: Vec<u8> = (0..10_000u32)
            .map(|i| b"abcdefgh\n"[i as usize % 9])
            .collect();
        channel.send(HostMessage::Stdin(big.clone()));
        assert_eq!(channel.stdout(big.len()), big);
        channel.send(HostMessage::Stdin(b"ab\x03cd".to_vec()));
        let mut rest = Vec::new();
        loop {
            match channel.next() {
                GuestMessage::Stdout(data) => rest.extend_from_slice(&data),
                GuestMessage::Exit(status) => return (rest, status),
                other => panic!("unexpected {other:?}"),
            }
        }
    }) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&[
        "vmlane:t:start",
        "vmlane-test: prepare clock=1700000000 entropy=64",
    ]);
    assert_eq!(stdout, (b"ab".to_vec(), GuestStatus::Signaled(2)));
}

#[test]
fn a_piped_request_ends_at_stdin_closed_and_a_null_one_at_once() {
    let Some((pipe, boot)) = request(|channel| {
        channel.send(run_request(Input::Pipe));
        let line = b"argv=echo,a b cwd=/tmp/work input=pipe\n";
        assert_eq!(channel.stdout(line.len()), line);
        channel.send(HostMessage::Stdin(b"line\n".to_vec()));
        assert_eq!(channel.stdout(5), b"line\n");
        channel.send(HostMessage::StdinClosed);
        channel.next()
    }) else {
        return;
    };
    boot.assert_exited();
    assert_eq!(pipe, GuestMessage::Exit(GuestStatus::Exited(0)));
    assert!(!boot.output.contains("vmlane-test: prepare"), "{boot}");

    let Some((null, boot)) = request(|channel| {
        channel.send(run_request(Input::Null));
        let line = b"argv=echo,a b cwd=/tmp/work input=null\n";
        assert_eq!(channel.stdout(line.len()), line);
        channel.next()
    }) else {
        return;
    };
    boot.assert_exited();
    assert_eq!(null, GuestMessage::Exit(GuestStatus::Exited(0)));
}

#[test]
fn a_malformed_run_frame_fails_the_run() {
    let Some((failed, boot)) = request(|channel| {
        // A Run whose argv count promises more strings than its payload holds.
        channel
            .stream
            .write_all(&[1, 4, 0, 0, 0, 9, 0, 0, 0])
            .unwrap();
        channel.next()
    }) else {
        return;
    };
    boot.assert_exited();
    assert_eq!(
        failed,
        GuestMessage::Failed {
            step: "read the host's frames".into(),
            message: "a malformed Run frame".into(),
        }
    );
    boot.assert_lines(&["vmlane:t:failed read the host's frames: a malformed Run frame"]);
}

#[test]
fn without_com2_the_request_action_says_it_needs_it() {
    let Some(boot) = boot("vmlane_test.action=request", None) else {
        return;
    };
    boot.assert_exited();
    boot.assert_lines(&[
        "vmlane-testkernel: action request needs the channel (hint.uart.1.port=0x2F8)",
    ]);
}
