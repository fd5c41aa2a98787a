//! `vmlane completions SHELL` and `vmlane man`: both made from the CLI definition itself, so
//! they never fall behind a new flag.

use crate::args::Cli;
use anyhow::Result;
use clap::CommandFactory;
use std::io::Write;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "vmlane", &mut std::io::stdout());
    Ok(0)
}

/// Prints the man page (roff), `vmlane man > vmlane.1`: the command, then a section per
/// subcommand with its synopsis and options.
pub fn man() -> Result<i32> {
    let mut page = Vec::new();
    let cli = Cli::command().version(crate::args::VERSION);
    clap_mangen::Man::new(cli.clone()).render(&mut page)?;
    for subcommand in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vmlane {}", subcommand.get_name());
        writeln!(page, ".SH \"{}\"", name.to_uppercase())?;
        let command = subcommand.clone().bin_name(name);
        let man = clap_mangen::Man::new(command);
        man.render_description_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_options_section(&mut page)?;
        if subcommand.has_subcommands() {
            man.render_subcommands_section(&mut page)?;
        }
    }
    std::io::stdout().write_all(&page)?;
    Ok(0)
}
