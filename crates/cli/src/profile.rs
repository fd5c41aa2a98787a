//! `vmlane profile`: the profiles `--profile` finds, and what some compose to. The engine
//! applies them to a run (`vmlane::Request::with_profiles`).

use anyhow::{Context, Result};
use clap::Subcommand;
use vmlane_profile::{Origin, Search};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List every profile found: its name, where it is, and its description.
    List,
    /// Print what the given profiles compose to, in order, as TOML.
    Show {
        /// Profile names or .toml files.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

pub fn profile(command: ProfileCommand) -> Result<i32> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let search = Search::from_env(&cwd);
    match command {
        ProfileCommand::List => print!("{}", listing(&search)),
        ProfileCommand::Show { names } => print!("{}", search.resolve(&names)?.to_toml()),
    }
    Ok(0)
}

/// One line per profile; a name found again later is shadowed by the first.
fn listing(search: &Search) -> String {
    let found = search.list();
    let width = found.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for profile in &found {
        let place = match &profile.origin {
            Origin::Shipped => "shipped".to_string(),
            other => other.to_string(),
        };
        let about = match profile.load(&search.cwd) {
            Ok(loaded) => loaded.description.unwrap_or_default(),
            Err(e) => format!("(invalid: {e})"),
        };
        let shadowed = if seen.insert(profile.name.clone()) {
            ""
        } else {
            " (shadowed)"
        };
        out.push_str(&format!(
            "{:width$}  {place}{shadowed}  {about}\n",
            profile.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_listing_names_shipped_profiles_with_their_description() {
        let search = Search::new(Path::new("/"), Some("/nonexistent".as_ref()), None);
        let text = listing(&search);
        let line = text.lines().find(|l| l.starts_with("zfs-scratch")).unwrap();
        assert!(line.contains("shipped") && line.contains("1 GiB"), "{line}");
    }
}
