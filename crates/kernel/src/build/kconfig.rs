//! The config symbols a source tree defines, so an option that does not exist is reported as
//! such before the build starts instead of silently dropped by kconfig.

use std::collections::HashSet;
use std::path::Path;

/// Every `config NAME` and `menuconfig NAME` in the tree's `Kconfig*` files.
pub fn symbols(source: &Path) -> HashSet<String> {
    let mut found = HashSet::new();
    collect(source, &mut found);
    found
}

fn collect(dir: &Path, found: &mut HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && !name.starts_with('.') {
            collect(&entry.path(), found);
        } else if kind.is_file() && name.starts_with("Kconfig") {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                found.extend(defined_in(&text));
            }
        }
    }
}

fn defined_in(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("config" | "menuconfig"), Some(name)) => Some(name.to_string()),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn symbols_come_from_every_kconfig_file_in_the_tree() {
        let tree = tempfile::tempdir().unwrap();
        fs::write(
            tree.path().join("Kconfig"),
            "source \"fs/Kconfig\"\nconfig A\n\tbool \"a\"\n",
        )
        .unwrap();
        fs::create_dir(tree.path().join("fs")).unwrap();
        fs::write(
            tree.path().join("fs/Kconfig"),
            "menuconfig B\n\tbool\n\tselect C\n  config D\n# config E\n",
        )
        .unwrap();
        fs::write(tree.path().join("fs/Makefile"), "config F\n").unwrap();
        let found = symbols(tree.path());
        let mut found: Vec<&str> = found.iter().map(String::as_str).collect();
        found.sort();
        assert_eq!(found, ["A", "B", "D"]);
    }
}
