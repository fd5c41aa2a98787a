//! Running bhyveload: it creates the VM in the kernel and copies the FreeBSD kernel into its
//! memory, then exits; bhyve then runs what it loaded.

use crate::sys;
use rustix::process::Signal;
use std::ffi::OsString;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use vmlane_backend::BackendError;

/// The loader's console output kept for the console log and error messages.
const MAX_CONSOLE: usize = 1 << 20;

/// How bhyveload ended.
pub enum Loaded {
    /// The kernel is in the VM; the loader's console output, for the console log.
    Ready(Vec<u8>),
    /// It ran and failed; the VM may exist in the kernel and must be destroyed.
    Failed(BackendError),
}

/// Runs `program` with `args`, its stderr into `log`, for at most `timeout`: a loader that
/// cannot find its kernel drops to its prompt and waits there for input that never comes.
/// Errors are failures to start it at all.
pub fn run(
    program: &Path,
    args: &[OsString],
    log: &Path,
    timeout: Duration,
) -> Result<Loaded, BackendError> {
    let io_err = |action: &str| {
        let action = action.to_string();
        move |source| BackendError::Io { action, source }
    };
    let stderr = File::create(log).map_err(io_err("create bhyveload's log"))?;
    let (out_r, out_w) = sys::pipe().map_err(io_err("make a pipe for bhyveload"))?;
    // Input that never ends: the loader polls its console and must see neither bytes nor EOF.
    let (in_r, in_w) = sys::pipe().map_err(io_err("make a pipe for bhyveload"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::from(in_r))
        .stdout(Stdio::from(out_w))
        .stderr(stderr)
        .process_group(0);
    // SAFETY: the closure only makes an async-signal-safe system call in the forked child.
    unsafe { command.pre_exec(sys::die_with_parent) };
    let spawned = command.spawn();
    // The parent's copies of the child's pipe ends go now, or the output would never end.
    drop(command);
    let mut child = spawned.map_err(|source| BackendError::Spawn {
        program: program.display().to_string(),
        source,
    })?;

    let deadline = Instant::now() + timeout;
    let mut output = File::from(out_r);
    let mut console = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !sys::wait_readable(output.as_fd(), Some(left)).unwrap_or(false) {
            timed_out = true;
            break;
        }
        match output.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => keep_tail(&mut console, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let status = match sys::wait_timeout(&mut child, left) {
        Ok(Some(status)) if !timed_out => Some(status),
        _ => {
            timed_out = true;
            sys::signal_group(&child, Signal::KILL);
            child.wait().ok()
        }
    };
    drop(in_w);
    match status {
        Some(status) if status.success() && !timed_out => Ok(Loaded::Ready(console)),
        _ => Ok(Loaded::Failed(BackendError::Helper {
            program: "bhyveload".into(),
            message: failure(log, &console, status, timed_out.then_some(timeout)),
        })),
    }
}

/// Its stderr, else the end of what the loader printed, and how it ended.
fn failure(
    log: &Path,
    console: &[u8],
    status: Option<ExitStatus>,
    timed_out: Option<Duration>,
) -> String {
    let mut said = String::new();
    let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut said));
    let mut said = said.trim().to_string();
    if said.is_empty() {
        let text = String::from_utf8_lossy(console);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        said = lines[lines.len().saturating_sub(5)..].join("\n");
    }
    let ending = match (timed_out, status) {
        (Some(limit), _) => format!("did not load the kernel within {} s", limit.as_secs_f32()),
        (None, Some(status)) => format!("exited with {status}"),
        (None, None) => "could not be waited for".to_string(),
    };
    if said.is_empty() {
        ending
    } else {
        format!("{said} ({ending})")
    }
}

fn keep_tail(kept: &mut Vec<u8>, more: &[u8]) {
    kept.extend_from_slice(more);
    if kept.len() > MAX_CONSOLE {
        kept.drain(..kept.len() - MAX_CONSOLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn stderr_comes_first_then_the_loaders_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "vm_create: Operation not permitted\n").unwrap();
        let status = Some(ExitStatus::from_raw(1 << 8));
        assert_eq!(
            failure(&log, b"ignored", status, None),
            "vm_create: Operation not permitted (exited with exit status: 1)"
        );
        std::fs::write(&log, "").unwrap();
        let console = b"a\nb\n\nc\nd\ne\nf\ncan't load 'kernel'\n";
        assert_eq!(
            failure(&log, console, None, Some(Duration::from_secs(60))),
            "c\nd\ne\nf\ncan't load 'kernel' (did not load the kernel within 60 s)"
        );
    }

    #[test]
    fn only_the_tail_is_kept() {
        let mut kept = Vec::new();
        keep_tail(&mut kept, &vec![b'a'; MAX_CONSOLE]);
        keep_tail(&mut kept, b"end");
        assert_eq!(kept.len(), MAX_CONSOLE);
        assert!(kept.ends_with(b"aend"));
    }
}
