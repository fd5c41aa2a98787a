//! `vmlane profile` and `--profile`: profiles are looked up, composed, and added to a run's
//! spec under the flags given, which win.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use vmlane_profile::{Origin, Profile, Search};
use vmlane_spec::RunSpec;

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

/// Adds the composed `names` to `spec` and `append`, under the command line's values: the
/// flags' lists come after the profiles' (later kernel arguments and environment entries
/// win), and `cpus`/`memory` from flags replace the profiles'.
pub fn apply(
    names: &[String],
    spec: &mut RunSpec,
    append: &mut Vec<String>,
    cpus: Option<u32>,
    memory: Option<u32>,
) -> Result<()> {
    let profile = if names.is_empty() {
        Profile::default()
    } else {
        Search::from_env(&spec.cwd).resolve(names)?
    };
    let nodes = profile.numa_nodes();
    let node_cpus = (!nodes.is_empty()).then(|| nodes.iter().map(|n| n.cpus).sum());
    let node_memory = (!nodes.is_empty()).then(|| nodes.iter().map(|n| n.memory_mib).sum());
    spec.cpus = cpus.or(profile.cpus).or(node_cpus).unwrap_or(1);
    spec.memory_mib = memory
        .or(profile.memory_mib())
        .or(node_memory)
        .unwrap_or(512);
    if node_cpus.is_some_and(|n| n != spec.cpus) {
        bail!(
            "the profiles' NUMA nodes have {} CPUs in all, but the run has {} (--cpus or cpus)",
            node_cpus.unwrap_or_default(),
            spec.cpus
        );
    }
    if node_memory.is_some_and(|n| n != spec.memory_mib) {
        bail!(
            "the profiles' NUMA nodes have {} MiB in all, but the run has {} MiB (--memory or memory)",
            node_memory.unwrap_or_default(),
            spec.memory_mib
        );
    }
    let disks = profile
        .disk_specs()
        .map_err(|e| anyhow::anyhow!("a profile's disks: {e}"))?;
    spec.disks.splice(0..0, disks);
    append.splice(0..0, profile.append.iter().cloned());
    // A shell's SHELL stays first; the flags' entries stay after the profiles'.
    let at = spec.env.iter().take_while(|(k, _)| k == "SHELL").count();
    spec.env.splice(
        at..at,
        profile.env.iter().map(|(k, v)| (k.into(), v.into())),
    );
    spec.modules = profile.modules.clone();
    spec.host_setup = profile.host_setup.clone();
    spec.guest_setup = profile.guest_commands();
    spec.numa = nodes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn flags_win_over_profiles_and_lists_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "cpus = 2\nmemory = \"1G\"\nappend = [\"quiet\"]\ndisks = [\"1G\"]\nenv = { A = \"p\" }\nguest_setup = [\"true\"]\n",
        )
        .unwrap();
        let names = [file.display().to_string()];
        let mut spec = RunSpec::new(vec!["true".into()], dir.path().to_path_buf());
        spec.env = vec![("A".into(), "flag".into())];
        spec.disks = vec![vmlane_spec::DiskSpec::Scratch { bytes: 1 << 20 }];
        let mut append = vec!["loglevel=7".to_string()];
        apply(&names, &mut spec, &mut append, Some(3), None).unwrap();
        assert_eq!((spec.cpus, spec.memory_mib), (3, 1024));
        assert_eq!(append, ["quiet", "loglevel=7"]);
        assert_eq!(
            spec.env,
            [("A".into(), "p".into()), ("A".into(), "flag".into())]
        );
        assert_eq!(spec.disks.len(), 2);
        assert_eq!(spec.guest_setup, ["true"]);

        let mut plain = RunSpec::new(vec!["true".into()], dir.path().to_path_buf());
        apply(&[], &mut plain, &mut Vec::new(), None, None).unwrap();
        assert_eq!((plain.cpus, plain.memory_mib), (1, 512));
    }

    #[test]
    fn numa_sets_cpus_and_memory_and_refuses_other_flags() {
        let cwd = Path::new("/");
        let numa = || RunSpec::new(vec!["true".into()], cwd.to_path_buf());
        let names = ["numa2".to_string()];
        let mut spec = numa();
        apply(&names, &mut spec, &mut Vec::new(), None, None).unwrap();
        assert_eq!((spec.cpus, spec.memory_mib, spec.numa.len()), (2, 1024, 2));
        let error = apply(&names, &mut numa(), &mut Vec::new(), Some(4), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("2 CPUs in all, but the run has 4"),
            "{error}"
        );
        assert!(apply(&names, &mut numa(), &mut Vec::new(), None, Some(2048)).is_err());
    }

    #[test]
    fn the_listing_names_shipped_profiles_with_their_description() {
        let search = Search::new(Path::new("/"), Some("/nonexistent".as_ref()), None);
        let text = listing(&search);
        let line = text.lines().find(|l| l.starts_with("zfs-scratch")).unwrap();
        assert!(line.contains("shipped") && line.contains("1 GiB"), "{line}");
    }
}
