//! Running one build step with its output in a log file and a progress line on a terminal.

use super::BuildError;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

/// Receives the build's progress: the current step and its latest output line.
pub trait Progress {
    /// A new line of build output.
    fn line(&mut self, step: &str, line: &str);
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
    let (read, write) = pipe().map_err(BuildError::io("create a pipe"))?;
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

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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

    #[test]
    fn output_reaches_the_log_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let mut command = Command::new("sh");
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
        let mut command = Command::new("sh");
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
