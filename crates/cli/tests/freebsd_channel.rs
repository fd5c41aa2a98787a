//! What the host sends a FreeBSD guest on its channel (COM2), end to end on real QEMU with
//! vmlane's test kernel in the guest's part (`vmlane_test.action=request`): the run once the
//! guest says it is ready, the clock and entropy before it, the input of `vmlane shell`, and
//! the same run restored from a saved ready guest.

mod common;

use common::freebsd::{probe, test_kernel};
use common::{assert_code, text, Sandbox, TestKernel};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vmlane_checks::golden::RESTORE_LINE;

/// The test kernel's action that reads the host's frames, and a word of this test's own, so
/// saved guests are never shared between tests.
fn words(test: &str) -> [String; 2] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    [
        "vmlane_test.action=request".into(),
        format!("vmlane_test.{test}={nanos}"),
    ]
}

/// `--os freebsd --boot pvh` (this kernel tests PVH) with the words appended.
fn freebsd_args(words: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["--os", "freebsd", "--boot", "pvh"]
        .map(String::from)
        .into();
    for word in words {
        args.extend(["--append".into(), word.clone()]);
    }
    args
}

fn run(sandbox: &Sandbox, kernel: &TestKernel, extra: &[String], argv: &[&str]) -> Output {
    probe(sandbox);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    sandbox.run(kernel, &extra, argv)
}

/// The clock the guest was given, from the test kernel's console line.
fn guest_clock(console: &str) -> u64 {
    let line = console
        .lines()
        .rfind(|l| l.starts_with("vmlane-test: prepare clock="))
        .unwrap_or_else(|| panic!("no clock in the console:\n{console}"));
    let words: Vec<&str> = line.split([' ', '=']).collect();
    assert_eq!(words[5], "64", "entropy bytes: {line}");
    words[3].parse().unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_run_goes_on_the_channel_once_the_guest_is_ready_after_the_clock() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let log = sandbox.root.path().join("console.log");
    let mut args = freebsd_args(&words("request"));
    args.extend(["--log".into(), log.display().to_string()]);
    let output = run(&sandbox, &kernel, &args, &["./probe", "arg one", ""]);
    assert_code(&kernel, &output, 0);
    assert_eq!(
        text(&output.stdout),
        "argv=/vmlane/bin/probe,arg one, cwd=/ input=null\n"
    );
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(guest_clock(&console).abs_diff(now()) <= 2, "{console}");
}

/// `vmlane shell --os freebsd --image IMAGE` on the test kernel.
fn shell(sandbox: &Sandbox, kernel: &TestKernel, test: &str) -> Command {
    let image = sandbox.work().join("freebsd.img");
    std::fs::write(&image, [0u8; 512]).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmlane"));
    command
        .arg("shell")
        .arg("-k")
        .arg(&kernel.dir)
        .args(["--accel", common::accel(), "--image"])
        .arg(&image)
        .args(freebsd_args(&words(test)))
        .current_dir(sandbox.work())
        .env("XDG_RUNTIME_DIR", sandbox.runtime())
        .env_remove("VMLANE_KERNEL");
    command
}

#[test]
fn a_freebsd_shell_reads_piped_input_until_its_end() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let mut child = shell(&sandbox, &kernel, "piped")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo typed\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    sandbox.assert_nothing_left(&kernel);
    assert_code(&kernel, &output, 0);
    assert_eq!(
        text(&output.stdout),
        "argv= cwd=/ input=pipe\necho typed\n",
        "the login shell, then the input echoed"
    );
}

/// A pseudo-terminal of the given size: (master, slave).
fn openpty(rows: u16, cols: u16) -> (std::fs::File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-pointers and winsize; no name buffer or termios is asked for.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded; both descriptors are ours alone.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

/// Reads the terminal until `needle` shows, or fails after a minute.
fn expect(master: &mut std::fs::File, screen: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(screen).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on the terminal: {:?}",
            String::from_utf8_lossy(screen)
        );
        let mut fds = [libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 200) } > 0 {
            let mut buf = [0u8; 4096];
            match master.read(&mut buf) {
                Ok(n) if n > 0 => screen.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

#[test]
fn a_freebsd_shell_on_a_terminal_gets_its_size_resizes_keys_and_ctrl_c() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let (mut master, slave) = openpty(30, 100);
    let mut command = shell(&sandbox, &kernel, "terminal");
    for stream in 0..3 {
        let end = Stdio::from(slave.try_clone().unwrap());
        match stream {
            0 => command.stdin(end),
            1 => command.stdout(end),
            _ => command.stderr(end),
        };
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut screen = Vec::new();
    expect(&mut master, &mut screen, "input=terminal 30x100");
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: a valid descriptor and winsize; the kernel signals vmlane's group.
    let resized = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(resized, 0);
    expect(&mut master, &mut screen, "winsize 40x120");
    master.write_all(b"keys").unwrap();
    expect(&mut master, &mut screen, "keys");
    // Ctrl-C goes to the guest as a key; the test kernel dies of SIGINT on it.
    master.write_all(b"\x03").unwrap();
    let status = child.wait().unwrap();
    drop(slave);
    sandbox.assert_nothing_left(&kernel);
    assert_eq!(
        status.code(),
        Some(130),
        "{:?}",
        String::from_utf8_lossy(&screen)
    );
}

#[test]
fn a_ready_minimal_guest_is_saved_and_later_runs_restore_it_with_their_own_request() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let words = words("warm");
    let mut consoles = Vec::new();
    for (i, arg) in ["first", "second", "third"].into_iter().enumerate() {
        let log = sandbox.root.path().join(format!("console-{i}.log"));
        let mut args = freebsd_args(&words);
        args.extend(["--log".into(), log.display().to_string()]);
        let output = run(&sandbox, &kernel, &args, &["./probe", arg]);
        assert_code(&kernel, &output, 0);
        assert_eq!(
            text(&output.stdout),
            format!("argv=/vmlane/bin/probe,{arg} cwd=/ input=null\n"),
            "run {i}"
        );
        consoles.push(std::fs::read_to_string(&log).unwrap());
    }
    assert!(!consoles[0].contains(RESTORE_LINE), "{}", consoles[0]);
    assert!(!consoles[1].contains(RESTORE_LINE), "{}", consoles[1]);
    let warm = &consoles[2];
    assert!(warm.contains(RESTORE_LINE), "not restored:\n{warm}");
    // The saved boot heads the log; the clock is this run's, given after the restore.
    let (boot, after) = warm.split_once(RESTORE_LINE).unwrap();
    assert!(boot.contains("vmlane-testkernel: cmdline:"), "{warm}");
    assert!(guest_clock(after).abs_diff(now()) <= 2, "{warm}");
}
