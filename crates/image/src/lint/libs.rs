//! Check 1: every dynamically linked program and library finds its run-time linker and the
//! libraries it needs where FreeBSD's `ld-elf.so.1` looks for them. A missing
//! `libgeom.so.5` otherwise shows up as a service that silently never started.

use super::elf::{self, Needs};
use super::finding::Findings;
use super::image::{shown, Image, Lookup};
use super::rcd::RC_D_DIRS;
use super::settings::Settings;
use super::view::Kind;
use std::collections::{BTreeMap, BTreeSet};

/// Where programs and libraries live; each is walked whole.
const PROGRAM_DIRS: &[&str] = &[
    "bin",
    "sbin",
    "lib",
    "libexec",
    "usr/bin",
    "usr/sbin",
    "usr/lib",
    "usr/libexec",
];

/// Under the program directories, but holding debug files whose segments are not there.
const SKIPPED_DIRS: &[&str] = &["usr/lib/debug"];

/// Directories below a program directory that the walk enters.
const MAX_DEPTH: usize = 16;
/// Files looked at in all, a bound for hostile trees.
const MAX_FILES: usize = 250_000;
/// Smaller files cannot be ELF programs.
const MIN_ELF: u64 = 52;

/// The hints directories `ld-elf.so.1` always has, before rc.conf's `ldconfig_paths`.
const SYSTEM_LIBS: &[&str] = &["/lib", "/usr/lib"];
/// `/etc/defaults/rc.conf`'s values, for an image without one.
const DEFAULT_LDCONFIG_PATHS: &str = "/usr/lib/compat /usr/local/lib /usr/local/lib/compat/pkg";
const DEFAULT_LDCONFIG32_PATHS: &str = "/usr/lib32 /usr/local/lib32/compat";
const DEFAULT_LOCAL_DIRS: &str = "/usr/local/libdata/ldconfig";
const DEFAULT_LOCAL32_DIRS: &str = "/usr/local/libdata/ldconfig32";
/// Always searched: where packages put their libraries.
const LOCAL_LIB: &str = "/usr/local/lib";

/// Runs check 1 over `image`.
pub(crate) fn check(image: &Image, settings: &Settings, findings: &mut Findings) {
    let search = SearchPath::new(image, settings);
    let mut files = BTreeSet::new();
    let mut budget = MAX_FILES;
    for dir in PROGRAM_DIRS {
        if let Lookup::Found { path, node } = image.lookup(dir.as_bytes()) {
            if node.kind == Kind::Dir {
                walk(image, path, 0, &mut budget, &mut files);
            }
        }
    }
    files.extend(script_interpreters(image, findings));
    for file in files {
        check_file(image, &search, &file, findings);
    }
}

/// Adds the regular files under `dir` (links resolved inside the image) to `files`.
fn walk(
    image: &Image,
    dir: Vec<u8>,
    depth: usize,
    budget: &mut usize,
    files: &mut BTreeSet<Vec<u8>>,
) {
    if depth > MAX_DEPTH || SKIPPED_DIRS.iter().any(|s| s.as_bytes() == dir) {
        return;
    }
    for name in image.list(&dir) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = [dir.as_slice(), b"/", &name].concat();
        let Some(node) = image.node(&path) else {
            continue;
        };
        match node.kind {
            Kind::Dir => walk(image, path, depth + 1, budget, files),
            Kind::File if node.size >= MIN_ELF => {
                files.insert(path);
            }
            Kind::Symlink => {
                if let Lookup::Found { path, node } = image.lookup(&path) {
                    if node.kind == Kind::File && node.size >= MIN_ELF {
                        files.insert(path);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The interpreters on rc.d scripts' `#!` lines, resolved. A missing one is one finding,
/// naming the scripts that need it.
fn script_interpreters(image: &Image, findings: &mut Findings) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut missing: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for dir in RC_D_DIRS {
        for name in image.list(dir.as_bytes()) {
            let script = [dir.as_bytes(), b"/", &name].concat();
            let Some(interpreter) = image.read(&script, 256).as_deref().and_then(interpreter)
            else {
                continue;
            };
            match image.lookup(&interpreter) {
                Lookup::Found { path, node } if node.kind == Kind::File => found.push(path),
                Lookup::Unreadable => {}
                _ => missing
                    .entry(interpreter)
                    .or_default()
                    .push(String::from_utf8_lossy(&script).into_owned()),
            }
        }
    }
    for (interpreter, scripts) in missing {
        let (count, named) = (scripts.len(), scripts[..scripts.len().min(3)].join(", "));
        let more = if count > 3 { ", ..." } else { "" };
        let whose = match count {
            1 => format!("the interpreter of {named}"),
            n => format!("the interpreter of {n} rc.d scripts ({named}{more})"),
        };
        findings.add(
            String::from_utf8_lossy(&interpreter),
            format!("missing; {whose}"),
        );
    }
    found
}

/// The absolute program named on a `#!` line.
fn interpreter(head: &[u8]) -> Option<Vec<u8>> {
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n')?];
    let program = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())?;
    program.starts_with(b"/").then(|| program.to_vec())
}

/// Checks one resolved regular file.
fn check_file(image: &Image, search: &SearchPath, path: &[u8], findings: &mut Findings) {
    let (Some(node), Some(file)) = (image.node(path), image.open_resolved(path)) else {
        return;
    };
    let Some(needs) = elf::needs(file, node.size) else {
        return;
    };
    let shown_path = String::from_utf8_lossy(path);
    if let Some(interpreter) = &needs.interpreter {
        if !image.has_file(interpreter) {
            findings.add(
                &shown_path,
                format!(
                    "needs the run-time linker {}, which the image lacks",
                    shown(interpreter)
                ),
            );
        }
    }
    let dirs = search.dirs(&needs, parent(path));
    for library in &needs.libraries {
        if let Some(message) = find_library(image, library, dirs.as_deref(), &needs) {
            findings.add(&shown_path, message);
        }
    }
}

/// Where `library` is not, as a finding's message; `None` when it is there, or when the
/// search is too uncertain to say.
fn find_library(
    image: &Image,
    library: &[u8],
    dirs: Option<&[Vec<u8>]>,
    needs: &Needs,
) -> Option<String> {
    let name = String::from_utf8_lossy(library);
    if library.contains(&b'/') {
        // A path: taken as it is (a relative one depends on the working directory).
        return (library.starts_with(b"/") && !image.has_file(library))
            .then(|| format!("needs {name}, which the image lacks"));
    }
    let dirs = dirs?;
    let mut looped = None;
    for dir in dirs {
        let candidate = [dir.as_slice(), b"/", library].concat();
        match image.lookup(&candidate) {
            Lookup::Found { node, .. } if node.kind == Kind::File => return None,
            Lookup::Unreadable => return None,
            Lookup::Loop => {
                looped.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    if let Some(link) = looped {
        return Some(format!(
            "needs {name}, but {} is a symlink loop",
            shown(&link)
        ));
    }
    let shown_dirs: Vec<String> = dirs.iter().map(|d| shown(d)).collect();
    let class = if needs.class32 { "32-bit " } else { "" };
    Some(format!(
        "needs {class}{name}, which is in none of {}",
        shown_dirs.join(" ")
    ))
}

/// The directories `ld-elf.so.1` searches, from the hints rc.d/ldconfig builds at boot.
struct SearchPath {
    native: Vec<Vec<u8>>,
    compat32: Vec<Vec<u8>>,
}

impl SearchPath {
    fn new(image: &Image, settings: &Settings) -> SearchPath {
        let configured = |name: &str, default: &str| -> Vec<String> {
            match settings.get(name) {
                Some(value) => value.split_whitespace().map(str::to_string).collect(),
                None if settings.is_set(name) => Vec::new(),
                None => default.split_whitespace().map(str::to_string).collect(),
            }
        };
        let mut native: Vec<String> = SYSTEM_LIBS.iter().map(|s| s.to_string()).collect();
        native.extend(configured("ldconfig_paths", DEFAULT_LDCONFIG_PATHS));
        native.extend(local_dirs(
            image,
            &configured("ldconfig_local_dirs", DEFAULT_LOCAL_DIRS),
        ));
        native.push(LOCAL_LIB.to_string());
        let mut compat32: Vec<String> = configured("ldconfig32_paths", DEFAULT_LDCONFIG32_PATHS);
        compat32.extend(local_dirs(
            image,
            &configured("ldconfig_local32_dirs", DEFAULT_LOCAL32_DIRS),
        ));
        compat32.extend(native.iter().cloned());
        SearchPath {
            native: unique(native),
            compat32: unique(compat32),
        }
    }

    /// The directories for one object: its run path first (`None`: a run path this check
    /// cannot follow, so it says nothing).
    fn dirs(&self, needs: &Needs, origin: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut dirs = Vec::new();
        for entry in &needs.runpath {
            dirs.push(expand_origin(entry, origin)?);
        }
        dirs.extend(if needs.class32 {
            self.compat32.iter().cloned()
        } else {
            self.native.iter().cloned()
        });
        Some(dirs)
    }
}

/// `$ORIGIN` (the object's directory) in a run path entry; `None` for other tokens.
fn expand_origin(entry: &[u8], origin: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(entry);
    let origin = format!("/{}", String::from_utf8_lossy(origin));
    let expanded = text
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin);
    (!expanded.contains('$') && expanded.starts_with('/')).then(|| expanded.into_bytes())
}

/// Directories listed in the files of `ldconfig_local_dirs` (packages drop them there).
fn local_dirs(image: &Image, dirs: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for name in image.list(dir.as_bytes()).into_iter().take(256) {
            let file = [dir.as_bytes(), b"/", &name].concat();
            let Some(text) = image.read(&file, 64 << 10) else {
                continue;
            };
            found.extend(
                String::from_utf8_lossy(&text)
                    .split_whitespace()
                    .filter(|w| w.starts_with('/'))
                    .map(str::to_string),
            );
        }
    }
    found
}

fn unique(dirs: Vec<String>) -> Vec<Vec<u8>> {
    let mut seen = BTreeSet::new();
    dirs.into_iter()
        .map(|d| d.trim_end_matches('/').to_string())
        .filter(|d| d.starts_with('/') && seen.insert(d.clone()))
        .map(String::into_bytes)
        .collect()
}

/// A resolved path's directory (`$ORIGIN`).
fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_name_absolute_interpreters_only() {
        assert_eq!(interpreter(b"#!/bin/sh\n"), Some(b"/bin/sh".to_vec()));
        assert_eq!(
            interpreter(b"#! /usr/local/bin/python3 -u\nx"),
            Some(b"/usr/local/bin/python3".to_vec())
        );
        assert_eq!(interpreter(b"#!sh\n"), None);
        assert_eq!(interpreter(b"# comment\n"), None);
        assert_eq!(
            interpreter(b"#!/bin/sh"),
            None,
            "no line end within the head"
        );
    }

    #[test]
    fn origin_is_the_objects_directory_and_other_tokens_are_unknown() {
        assert_eq!(
            expand_origin(b"$ORIGIN/../lib", b"usr/local/bin"),
            Some(b"/usr/local/bin/../lib".to_vec())
        );
        assert_eq!(
            expand_origin(b"/opt/lib", b"bin"),
            Some(b"/opt/lib".to_vec())
        );
        assert_eq!(expand_origin(b"$LIB/x", b"bin"), None);
        assert_eq!(expand_origin(b"lib", b"bin"), None);
    }
}
