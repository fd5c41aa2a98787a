//! Host setup: commands run on the host before the VM starts, with `VMLANE_SCRATCH` set to a
//! directory of this run's. It is under vmlane's cache, not /tmp, because the guest gets a
//! fresh /tmp but sees the rest of the host's files; a run killed outright leaves it, and the
//! next run with host setup removes it.

use super::error::StageError;
use std::path::Path;
use std::process::{Command, Stdio};
use vmlane_backend::{sweep_abandoned, RunDir};

const PREFIX: &str = "run-";

/// Runs `commands` in `cwd`; the scratch directory lives as long as the returned guard.
pub(super) fn run(
    commands: &[String],
    cache: &Path,
    cwd: &Path,
) -> Result<Option<RunDir>, StageError> {
    if commands.is_empty() {
        return Ok(None);
    }
    let base = cache.join("scratch");
    let scratch = std::fs::create_dir_all(&base)
        .and_then(|()| {
            sweep_abandoned(&base, PREFIX);
            RunDir::owned(&base, PREFIX)
        })
        .map_err(|source| StageError::ScratchDir {
            base: base.clone(),
            source,
        })?;
    for command in commands {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .current_dir(cwd)
            .env("VMLANE_SCRATCH", scratch.path())
            .stdin(Stdio::null())
            .status()
            .map_err(StageError::Shell)?;
        if !status.success() {
            return Err(StageError::HostSetup {
                command: command.clone(),
                status,
            });
        }
    }
    Ok(Some(scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_host_setup_stops_the_run_and_the_scratch_dir_goes() {
        let cache = tempfile::tempdir().unwrap();
        assert!(run(&[], cache.path(), cache.path()).unwrap().is_none());
        let scratch = run(
            &["test -d \"$VMLANE_SCRATCH\" && touch \"$VMLANE_SCRATCH/made\"".into()],
            cache.path(),
            cache.path(),
        )
        .unwrap()
        .unwrap();
        assert!(scratch.path().join("made").is_file());
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists());
        let error = run(
            &["true".into(), "exit 3".into()],
            cache.path(),
            cache.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`exit 3` failed") && error.contains("not started"),
            "{error}"
        );
        let left: Vec<_> = std::fs::read_dir(cache.path().join("scratch"))
            .unwrap()
            .collect();
        assert!(
            left.is_empty(),
            "a failed setup leaves no scratch directory"
        );
    }
}
