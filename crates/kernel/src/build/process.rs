//! Starting the programs a build runs, with the signal state they expect, and running one
//! build step with its output in a log file and a progress line on a terminal.

use super::BuildError;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Signals numbered below this are the standard ones, on Linux and FreeBSD alike.
const STANDARD_SIGNALS_END: libc::c_int = 32;

/// Receives the build's progress: the current step and its latest output line.
pub trait Progress {
    /// A new line of build output.
    fn line(&mut self, step: &str, line: &str);

    /// Whether the user asked the build to stop (Ctrl-C), asked while it waits on its own,
    /// with no program of its running to receive the signal.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// A command for a program the build runs (make, make.py, git): every child of a build is
/// made here, so each starts with default signal dispositions whatever vmlane inherited.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    // SAFETY: the hook runs between fork and exec and calls only async-signal-safe functions.
    unsafe { command.pre_exec(default_signals) };
    command
}

/// Puts every standard signal back to its default action and unblocks all signals. Ignored
/// signals survive exec, and vmlane may run with SIGINT ignored (nohup, a background job of a
/// script), which fails bmake's unit tests that expect SIGINT to kill them.
fn default_signals() -> io::Result<()> {
    for signal in 1..STANDARD_SIGNALS_END {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: signal() is async-signal-safe, and SIG_DFL installs no handler.
        if unsafe { libc::signal(signal, libc::SIG_DFL) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    let mut none = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises `none` before sigprocmask reads it; both are
    // async-signal-safe, and a null old-set pointer is allowed.
    let masked = unsafe {
        libc::sigemptyset(none.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut())
    };
    match masked {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Runs `command`, appending everything it prints to `log`. On failure, quotes the lines
/// that say why.
pub fn run_logged(
    step: &str,
    mut command: Command,
    log: &Path,
    progress: &mut dyn Progress,
) -> Result<(), BuildError> {
    let mut log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(BuildError::io(format!(
            "open the build log {}",
            log.display()
        )))?;
    writeln!(log_file, "==> {step}: {command:?}").map_err(BuildError::io("write the build log"))?;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(io::Error::from)
        .map_err(BuildError::io("create a pipe"))?;
    let write_err = write.try_clone().map_err(BuildError::io("create a pipe"))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write_err));
    let mut child = command
        .spawn()
        .map_err(BuildError::io(format!("start {step}")))?;
    drop(command);
    let mut tail: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for line in BufReader::new(File::from(read)).split(b'\n') {
        let line = String::from_utf8_lossy(&line.map_err(BuildError::io("read build output"))?)
            .into_owned();
        writeln!(log_file, "{line}").map_err(BuildError::io("write the build log"))?;
        progress.line(step, &line);
        if is_error_line(&line) && errors.len() < 20 {
            errors.push(line.clone());
        }
        if tail.len() == 15 {
            tail.remove(0);
        }
        tail.push(line);
    }
    let status = child
        .wait()
        .map_err(BuildError::io(format!("wait for {step}")))?;
    if status.success() {
        return Ok(());
    }
    let quoted = if errors.is_empty() { tail } else { errors };
    Err(BuildError::StepFailed {
        step: format!("{step} ({status})"),
        quote: quoted
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        log: log.to_path_buf(),
    })
}

fn is_error_line(line: &str) -> bool {
    line.contains("error:")
        || line.contains("Error ")
        || line.contains("*** ")
        || line.contains("undefined reference")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lines(Vec<String>);

    impl Progress for Lines {
        fn line(&mut self, _step: &str, line: &str) {
            self.0.push(line.to_string());
        }
    }

    /// Child signal state, read from /proc, which only Linux has.
    #[cfg(target_os = "linux")]
    mod signals {
        use super::*;

        /// The signal state a build may inherit, until dropped: SIGINT ignored in the whole
        /// process (as under nohup) and SIGQUIT blocked in this thread.
        struct InheritedSignals {
            sigint: libc::sigaction,
            mask: libc::sigset_t,
        }

        impl InheritedSignals {
            fn set() -> InheritedSignals {
                // SAFETY: sigaction and sigset_t are plain C data, valid all-zero; every pointer
                // passed below is to a live local.
                unsafe {
                    let mut ignore: libc::sigaction = std::mem::zeroed();
                    ignore.sa_sigaction = libc::SIG_IGN;
                    libc::sigemptyset(&mut ignore.sa_mask);
                    let mut old: InheritedSignals = std::mem::zeroed();
                    assert_eq!(libc::sigaction(libc::SIGINT, &ignore, &mut old.sigint), 0);
                    let mut quit: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut quit);
                    libc::sigaddset(&mut quit, libc::SIGQUIT);
                    assert_eq!(
                        libc::pthread_sigmask(libc::SIG_BLOCK, &quit, &mut old.mask),
                        0
                    );
                    old
                }
            }
        }

        impl Drop for InheritedSignals {
            fn drop(&mut self) {
                // SAFETY: restores what `set` saved; the pointers are to live fields.
                unsafe {
                    libc::sigaction(libc::SIGINT, &self.sigint, std::ptr::null_mut());
                    libc::pthread_sigmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
                }
            }
        }

        /// A `SigIgn:` or `SigBlk:` mask from /proc/self/status lines.
        fn mask(status: &[String], field: &str) -> u64 {
            let line = status
                .iter()
                .find_map(|l| l.strip_prefix(field))
                .unwrap_or_else(|| panic!("no {field} in {status:?}"));
            u64::from_str_radix(line.trim(), 16).unwrap()
        }

        /// Bit of signal `n` in a /proc/self/status mask.
        fn bit(n: libc::c_int) -> u64 {
            1 << (n - 1)
        }

        #[test]
        fn build_commands_start_with_default_signals_even_when_vmlane_ignores_sigint() {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("build.log");
            let inherited = InheritedSignals::set();
            let plain = Command::new("cat")
                .arg("/proc/self/status")
                .output()
                .unwrap();
            let mut status = Lines(Vec::new());
            let mut cat = command("cat");
            cat.arg("/proc/self/status");
            let ran = run_logged("cat", cat, &log, &mut status);
            drop(inherited);
            ran.unwrap();

            let plain: Vec<String> = String::from_utf8(plain.stdout)
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            assert_ne!(
                mask(&plain, "SigIgn:") & bit(libc::SIGINT),
                0,
                "a plain Command inherits the ignored SIGINT, so the test sets it up"
            );
            assert_eq!(mask(&status.0, "SigIgn:") & bit(libc::SIGINT), 0);
            assert_eq!(mask(&status.0, "SigBlk:"), 0);
        }
    }

    #[test]
    fn output_reaches_the_log_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let mut command = command("sh");
        command.args(["-c", "echo one; echo two >&2"]);
        let mut lines = Lines(Vec::new());
        run_logged("demo", command, &log, &mut lines).unwrap();
        let mut seen = lines.0.clone();
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("==> demo") && text.contains("one") && text.contains("two"));
    }

    #[test]
    fn failure_quotes_the_error_lines_and_names_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let mut command = command("sh");
        command.args([
            "-c",
            "echo fine; echo 'fs/x.c:3: error: expected ;'; echo more; exit 2",
        ]);
        let error = run_logged("make bzImage", command, &log, &mut Lines(Vec::new()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("make bzImage"), "{error}");
        assert!(error.contains("fs/x.c:3: error: expected ;"), "{error}");
        assert!(!error.contains("fine"), "{error}");
        assert!(error.contains(&log.display().to_string()), "{error}");
    }
}
