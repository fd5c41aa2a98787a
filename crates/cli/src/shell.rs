//! `vmlane shell`: the user's login shell in a throwaway VM. With a terminal on stdin the guest
//! shell gets a pseudo-terminal of the same size and every key; without one, stdin is piped to
//! it as a script. Either way vmlane exits with the shell's status.

use crate::args::{GuestArgs, VmArgs};
use crate::vm::{launch_here, settle_log_after_error, Events};
use anyhow::{Context, Result};
use clap::Args;
use vmlane::Request;
use vmlane_backend::StopSignals;
use vmlane_spec::{Input, Outcome};

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The VM's options, as for `vmlane run`.
    #[command(flatten)]
    pub vm: VmArgs,
    /// The guest's OS; a FreeBSD shell runs from `--image`.
    #[command(flatten)]
    pub guest: GuestArgs,
}

/// Runs the shell and returns the exit code vmlane should exit with.
pub fn shell(args: ShellArgs) -> Result<i32> {
    let signals = StopSignals::register().context("failed to catch SIGINT and SIGTERM")?;
    let events = Events::new(args.vm.verbose);
    let terminal = rustix::termios::isatty(std::io::stdin());
    let request = shell_request(&args, terminal)?;
    let mut console = args.vm.console_log()?;
    // The terminal is raw only inside the session, and restored however it ends.
    let (outcome, debug_info) = match launch_here(request, &mut console, &signals, &events) {
        Ok(finished) => (finished.outcome, finished.debug_info),
        Err(error) => {
            settle_log_after_error(&console, args.vm.log.is_some());
            return Err(error.into());
        }
    };
    // Ctrl-A X (the session said so already) and --timeout end a shell as the user asked;
    // only the rest are failures worth the console's last lines.
    let escaped = terminal && outcome == Outcome::Interrupted(libc::SIGINT);
    if terminal && !outcome.completed() && !escaped {
        // The guest's last line, a prompt, has no newline of its own.
        eprintln!();
    }
    if outcome.completed() || escaped || outcome == Outcome::TimedOut {
        if outcome == Outcome::TimedOut {
            eprintln!("vmlane: {outcome}");
        }
        let splats = std::fs::read(console.path())
            .map(|bytes| vmlane_checks::splat::scan(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        for splat in &splats {
            eprintln!(
                "vmlane: the guest kernel reported {}: {}",
                splat.kind, splat.first_line
            );
        }
        if !splats.is_empty() {
            eprintln!("vmlane: console log: {}", console.path().display());
        } else if args.vm.log.is_none() {
            let _ = std::fs::remove_file(console.path());
        }
    } else {
        crate::run::report(
            &outcome,
            &mut console,
            debug_info.as_deref(),
            args.vm.log.is_some(),
            args.vm.verbose,
        );
    }
    Ok(outcome.exit_code())
}

/// The request of a shell: no command (the guest runs the login shell), the host's `SHELL`,
/// stdin as a terminal or a pipe. A FreeBSD guest runs it from its image (`--image`).
fn shell_request(args: &ShellArgs, terminal: bool) -> Result<Request> {
    // An empty command is the login shell.
    let mut request = args.vm.request(Vec::new())?;
    args.guest.apply(&mut request);
    if let Some(shell) = std::env::var_os("SHELL") {
        request.env.insert(0, ("SHELL".into(), shell));
    }
    request.input = if terminal {
        Input::Terminal
    } else {
        Input::Pipe
    };
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::PathBuf;
    use vmlane::OsChoice;

    fn parse(argv: &[&str]) -> ShellArgs {
        let mut full = vec!["vmlane", "shell"];
        full.extend_from_slice(argv);
        match crate::args::Cli::try_parse_from(&full).unwrap().command {
            crate::args::Command::Shell(args) => args,
            _ => panic!("not a shell"),
        }
    }

    #[test]
    fn a_shell_runs_no_command_and_reads_stdin() {
        let args = parse(&["-k", "6.1", "-e", "A=b", "--cpus", "2", "-m", "1G"]);
        let request = shell_request(&args, true).unwrap();
        assert!(request.argv.is_empty());
        assert_eq!(request.input, Input::Terminal);
        assert_eq!((request.cpus(), request.memory_mib()), (2, 1024));
        assert_eq!(request.env.last().unwrap(), &("A".into(), "b".into()));
        assert_eq!(request.os, OsChoice::Auto);
        assert_eq!(shell_request(&args, false).unwrap().input, Input::Pipe);
        assert_eq!(args.vm.kernel, Some(PathBuf::from("6.1")));
    }

    #[test]
    fn a_shell_takes_no_command() {
        assert!(crate::args::Cli::try_parse_from(["vmlane", "shell", "--", "ls"]).is_err());
    }
}
