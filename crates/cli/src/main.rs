//! The `vmlane` command: flags in, exit code out. Everything else lives in the library crates.

mod args;
mod completions;
mod image;
mod image_check;
mod interrupt;
mod kernel;
mod profile;
mod report;
mod rootfs;
mod run;
mod shell;
mod test;
mod turns;
mod vm;

use clap::Parser;
use std::process::ExitCode;
use vmlane_spec::exit_code;

fn main() -> ExitCode {
    // Usage errors are vmlane's failures too (125), never a code the command could return.
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(match error.use_stderr() {
                true => exit_code::VMLANE_FAILED as u8,
                false => 0,
            });
        }
    };
    if prints_a_listing(&cli.command) {
        restore_sigpipe();
    }
    let result = match cli.command {
        args::Command::Run(run_args) => run::run(run_args),
        args::Command::Shell(shell_args) => shell::shell(shell_args),
        args::Command::Kernel(command) => kernel::kernel(command),
        args::Command::Test(test_args) => test::test(test_args),
        args::Command::Image(command) => image::image(command),
        args::Command::Profile(command) => profile::profile(command),
        args::Command::Rootfs(command) => rootfs::rootfs(command),
        args::Command::Report(command) => report::report(command),
        args::Command::Completions { shell } => completions::completions(shell),
        args::Command::Man => completions::man(),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => match error.downcast_ref::<interrupt::Interrupted>() {
            // Ctrl-C is how the user ended it, not a failure of vmlane's.
            Some(interrupted) => {
                eprintln!("vmlane: {interrupted}");
                ExitCode::from(interrupted.code() as u8)
            }
            None => {
                eprintln!("vmlane: error: {error:#}");
                ExitCode::from(exit_code::VMLANE_FAILED as u8)
            }
        },
    }
}

/// Commands that only print: cut off by a closed pipe (`vmlane kernel list | head`), they end
/// quietly as any lister does. Runs keep SIGPIPE ignored: they end their VM first.
fn prints_a_listing(command: &args::Command) -> bool {
    matches!(
        command,
        args::Command::Kernel(args::KernelCommand::List { .. })
            | args::Command::Profile(_)
            | args::Command::Completions { .. }
            | args::Command::Man
    )
}

/// The default action for SIGPIPE, which Rust's runtime sets to ignored.
fn restore_sigpipe() {
    // SAFETY: a plain signal(2) call before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
