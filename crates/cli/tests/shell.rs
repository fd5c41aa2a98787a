//! `vmlane shell` end to end: vmlane runs on a real pseudo-terminal as its controlling
//! terminal, the test types keys into it and reads the screen, on vmlane's own kernel.

mod common;

use common::{accel, kernels, text, Sandbox, TestKernel};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Booting under TCG with other tests' VMs beside it takes seconds, not minutes.
const PATIENCE: Duration = Duration::from_secs(90);
/// Set by the profile the tests give the guest shell, so a prompt is recognisable.
const PROMPT: &str = "vmlane-test$ ";

fn vmlane_kernel() -> Option<TestKernel> {
    kernels().into_iter().find(|k| k.label == "vmlane-built")
}

/// A pseudo-terminal of the given size: (master, slave).
fn openpty(rows: u16, cols: u16) -> (File, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = winsize(rows, cols);
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
    assert_eq!(ret, 0, "openpty: {}", io::Error::last_os_error());
    // SAFETY: openpty succeeded; both descriptors are ours alone.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn termios(fd: &impl AsRawFd) -> libc::termios {
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-pointer.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t
}

fn same_termios(a: &libc::termios, b: &libc::termios) -> bool {
    (a.c_iflag, a.c_oflag, a.c_cflag, a.c_lflag, a.c_cc)
        == (b.c_iflag, b.c_oflag, b.c_cflag, b.c_lflag, b.c_cc)
}

/// `vmlane shell` with a terminal: the test holds the master, vmlane the slave.
struct Shell {
    child: Child,
    master: File,
    slave: OwnedFd,
    /// Everything vmlane wrote to the terminal so far.
    screen: Vec<u8>,
    /// How much of `screen` earlier expectations consumed.
    seen: usize,
}

/// A home for the guest shell whose profile sets a known prompt and nothing slow.
fn guest_home(sandbox: &Sandbox) -> String {
    let home = sandbox.work().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Bracketed-paste switches around each command's output would split what is matched.
    let profile = format!("PS1='{PROMPT}'\nbind 'set enable-bracketed-paste off' 2>/dev/null\n");
    std::fs::write(home.join(".bash_profile"), profile).unwrap();
    format!("HOME={}", home.display())
}

fn shell_command(sandbox: &Sandbox, kernel: &TestKernel) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmlane"));
    command
        .arg("shell")
        .arg("-k")
        .arg(&kernel.dir)
        .args(["--accel", accel()])
        .args(["-e", &guest_home(sandbox)])
        .current_dir(sandbox.work())
        .env("XDG_RUNTIME_DIR", sandbox.runtime())
        .env("SHELL", "/bin/bash")
        .env("TERM", "xterm")
        .env_remove("VMLANE_KERNEL");
    command
}

impl Shell {
    fn start(sandbox: &Sandbox, kernel: &TestKernel, rows: u16, cols: u16) -> Shell {
        let (master, slave) = openpty(rows, cols);
        let mut command = shell_command(sandbox, kernel);
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
                // A session of its own with the terminal as its controlling one, as a login
                // gives a user's shell: resizes and job control then reach vmlane.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start vmlane shell");
        Shell {
            child,
            master,
            slave,
            screen: Vec::new(),
            seen: 0,
        }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Reads whatever arrives within `wait`.
    fn read_for(&mut self, wait: Duration) {
        let mut fd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, wait.as_millis().max(1) as i32) };
        if ready > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.master.read(&mut buf) {
                self.screen.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// Waits until `needle` appears after what earlier expectations consumed; returns the
    /// screen up to and including it.
    fn expect_within(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let unseen = &self.screen[self.seen..];
            if let Some(at) = unseen
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                let found = text(&unseen[..at + needle.len()]);
                self.seen += at + needle.len();
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.read_for(left.min(Duration::from_millis(200)));
        }
    }

    fn expect(&mut self, needle: &str) -> String {
        match self.expect_within(needle, PATIENCE) {
            Some(found) => found,
            None => panic!(
                "{needle:?} did not appear; the screen after the last match:\n{}",
                text(&self.screen[self.seen..])
            ),
        }
    }

    /// Waits for vmlane to exit, reading the screen meanwhile.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.read_for(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "vmlane shell did not exit; the screen:\n{}",
                    text(&self.screen)
                );
            }
            self.read_for(Duration::from_millis(100));
        }
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        // SAFETY: a valid winsize; the kernel sends SIGWINCH to the terminal's foreground
        // process group, which is vmlane's.
        let ret = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(ret, 0);
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // A failed test must not leave its VM behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_banner_and_a_prompt_appear_and_commands_run() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 24, 80);
    let banner = shell.expect("Ctrl-A X ends the VM");
    assert!(banner.contains("vmlane: Linux 6."), "{banner}");
    assert!(banner.contains("1 CPU,"), "{banner}");
    assert!(banner.contains("MiB memory"), "{banner}");
    assert!(banner.contains("host files read-only over"), "{banner}");
    shell.expect(PROMPT);
    shell.send("echo $((6*7))\r");
    shell.expect("\r\n42\r\n");
    shell.expect(PROMPT);
    // TERM comes from the host; the shell is the one $SHELL names, on a real terminal.
    shell.send("echo $TERM $SHELL; tty\r");
    shell.expect("\r\nxterm /bin/bash\r\n/dev/pts/");
    shell.expect(PROMPT);
    shell.send("exit\r");
    assert_eq!(shell.wait().code(), Some(0), "{}", text(&shell.screen));
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn the_window_size_is_the_terminals_and_follows_it() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 33, 101);
    shell.expect(PROMPT);
    shell.send("stty size\r");
    shell.expect("\r\n33 101\r\n");
    shell.expect(PROMPT);
    shell.resize(40, 120);
    shell.send("stty size; echo cols=$(tput cols)\r");
    shell.expect("\r\n40 120\r\ncols=120\r\n");
    shell.expect(PROMPT);
    // Ctrl-D at the prompt ends the shell like exit.
    shell.send("false\r");
    shell.expect(PROMPT);
    shell.send("\x04");
    assert_eq!(shell.wait().code(), Some(1));
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn ctrl_c_interrupts_the_guests_foreground_job_not_vmlane() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 24, 80);
    shell.expect(PROMPT);
    let started = Instant::now();
    shell.send("echo st''arted; sleep 100; echo not-interrupted\r");
    shell.expect("started\r\n");
    std::thread::sleep(Duration::from_millis(500));
    shell.send("\x03");
    shell.expect(PROMPT);
    shell.send("echo alive-$((2+3))\r");
    shell.expect("\r\nalive-5\r\n");
    assert!(started.elapsed() < Duration::from_secs(60));
    // Only the echo of the typed line names it; the command never printed it.
    assert!(!text(&shell.screen).contains("\r\nnot-interrupted"));
    shell.send("exit\r");
    assert_eq!(shell.wait().code(), Some(0));
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn ctrl_z_stops_a_job_and_job_control_works() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 24, 80);
    shell.expect(PROMPT);
    shell.send("sleep 100\r");
    // A Ctrl-Z before the job has the terminal reaches only the shell, which ignores it.
    let mut stopped = None;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        shell.send("\x1a");
        stopped = shell.expect_within("Stopped", Duration::from_secs(2));
        if stopped.is_some() {
            break;
        }
    }
    assert!(stopped.is_some(), "{}", text(&shell.screen));
    shell.expect(PROMPT);
    shell.send("jobs\r");
    shell.expect("sleep 100");
    shell.expect(PROMPT);
    shell.send("kill %1; wait; echo killed-$((1+1))\r");
    shell.expect("killed-2");
    shell.expect(PROMPT);
    // fg brings a stopped job back to the terminal.
    shell.send("sleep 2; echo slept\r");
    let mut stopped = None;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        shell.send("\x1a");
        stopped = shell.expect_within("Stopped", Duration::from_secs(2));
        if stopped.is_some() {
            break;
        }
    }
    assert!(stopped.is_some(), "{}", text(&shell.screen));
    shell.expect(PROMPT);
    shell.send("fg; echo back-$((3+3))\r");
    shell.expect("back-6");
    shell.expect(PROMPT);
    shell.send("exit\r");
    assert_eq!(shell.wait().code(), Some(0), "{}", text(&shell.screen));
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn the_shells_exit_status_is_vmlanes_and_the_terminal_is_restored() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 24, 80);
    let before = termios(&shell.slave);
    shell.expect(PROMPT);
    let during = termios(&shell.slave);
    assert_eq!(during.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
    shell.send("exit 3\r");
    assert_eq!(shell.wait().code(), Some(3), "{}", text(&shell.screen));
    assert!(same_termios(&before, &termios(&shell.slave)));
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn ctrl_a_x_ends_the_vm_and_ctrl_a_ctrl_a_is_a_ctrl_a() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 24, 80);
    let before = termios(&shell.slave);
    shell.expect(PROMPT);
    // Ctrl-A in the guest's line editor goes to the start of the line.
    shell.send("$((3*5))");
    shell.send("\x01\x01");
    shell.send("echo \r");
    shell.expect("\r\n15\r\n");
    shell.expect(PROMPT);
    shell.send("sleep 100\r");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    shell.send("\x01x");
    assert_eq!(shell.wait().code(), Some(130), "{}", text(&shell.screen));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(text(&shell.screen).contains("Ctrl-A X: ending the VM"));
    assert!(same_termios(&before, &termios(&shell.slave)));
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn full_screen_programs_work() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    if !common::has_program("vi") || !common::has_program("top") {
        eprintln!("skipped: needs vi and top on the host (the guest sees the host's files)");
        return;
    }
    let sandbox = Sandbox::new();
    let mut shell = Shell::start(&sandbox, &kernel, 24, 80);
    shell.expect(PROMPT);
    // The guest sees the host's /tmp: a name no host file has, so vi starts a new file.
    let note = format!("/tmp/vmlane-vi-note-{}", std::process::id());
    shell.send(&format!("vi {note}\r"));
    shell.expect("[New");
    shell.send("ihello from vi");
    std::thread::sleep(Duration::from_millis(300));
    shell.send("\x1b");
    std::thread::sleep(Duration::from_millis(300));
    shell.send(":wq\r");
    shell.expect(PROMPT);
    shell.send(&format!("tr a-z A-Z < {note}\r"));
    shell.expect("\r\nHELLO FROM VI\r\n");
    shell.expect(PROMPT);
    shell.send("top\r");
    shell.expect("load average");
    shell.send("q");
    shell.expect(PROMPT);
    shell.send("exit\r");
    assert_eq!(shell.wait().code(), Some(0), "{}", text(&shell.screen));
    sandbox.assert_nothing_left(&kernel);
}

/// `vmlane shell [extra]` with `script` piped to it and no terminal, to its end.
fn piped_shell(
    sandbox: &Sandbox,
    kernel: &TestKernel,
    extra: &[&str],
    script: &[u8],
) -> std::process::Output {
    let mut child = shell_command(sandbox, kernel)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmlane shell");
    // Written and closed at once: the guest gets it as soon as it is up.
    child.stdin.take().unwrap().write_all(script).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn without_a_terminal_stdin_is_the_script() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = piped_shell(
        &sandbox,
        &kernel,
        &[],
        b"echo hi; [ -t 0 ] || echo no-terminal; exit 3\n",
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "hi\nno-terminal\n");
    assert!(
        !text(&output.stderr).contains("Ctrl-A"),
        "{}",
        text(&output.stderr)
    );
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn with_net_user_the_login_shell_has_the_guest_address() {
    let Some(kernel) = vmlane_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = piped_shell(
        &sandbox,
        &kernel,
        &["--net", "user"],
        b"ip -4 address show eth0 | grep -o 10.0.2.15/24; exit 4\n",
    );
    assert_eq!(
        output.status.code(),
        Some(4),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "10.0.2.15/24\n");
    sandbox.assert_nothing_left(&kernel);
}
