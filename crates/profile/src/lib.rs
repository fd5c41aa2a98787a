//! Profiles: named TOML files of options that add to a `vmlane run` or `vmlane shell`, so a
//! setup used again and again (scratch disks, debugfs, NUMA) is one `--profile NAME`.
//!
//! A name is looked up in the project's `.vmlane/profiles/`, then the user's
//! `$XDG_CONFIG_HOME/vmlane/profiles/`, then the profiles shipped in vmlane; a name with a `/`
//! or ending in `.toml` is a file. Profiles compose in order: later ones add to lists and
//! override single values.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use vmlane_spec::{Arch, DiskSpec, NumaNode};

/// The profiles vmlane ships, by name.
pub const SHIPPED: &[(&str, &str)] = &[
    ("debug", include_str!("../../../profiles/debug.toml")),
    ("numa2", include_str!("../../../profiles/numa2.toml")),
    (
        "zfs-scratch",
        include_str!("../../../profiles/zfs-scratch.toml"),
    ),
];

/// One profile, or several composed. Paths in it are absolute once loaded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One line for `vmlane profile list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The guest's architecture (`arm64`), as `--arch` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// A root filesystem to run from, as `--root` takes it (relative to the profile's
    /// directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Virtual CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Guest memory, `512M` or `2G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Kernel command-line arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub append: Vec<String>,
    /// Kernel modules to load in the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// Disks, as `--disk` takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<String>,
    /// Shell commands run on the host before the VM starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_setup: Vec<String>,
    /// Shell commands run in the guest before the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guest_setup: Vec<String>,
    /// Environment for the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Host files copied into the guest before the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileCopy>,
    /// NUMA nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numa: Vec<Node>,
}

/// A host file or directory placed in the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCopy {
    /// On the host, relative to the profile's directory.
    pub from: PathBuf,
    /// In the guest: an absolute path.
    pub to: PathBuf,
}

/// A NUMA node as written in a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Its CPUs.
    pub cpus: u32,
    /// Its memory, `512M` or `1G`.
    pub memory: String,
}

/// Why profiles could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No profile has the name.
    #[error("no profile named `{name}`; looked for {}", looked.join(", "))]
    NotFound {
        /// The name.
        name: String,
        /// Where it was looked for.
        looked: Vec<String>,
    },
    /// The file could not be read.
    #[error("cannot read the profile {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// Where it came from.
        origin: String,
        /// Its line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

/// Where a profile was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The project's `.vmlane/profiles/`.
    Project(PathBuf),
    /// The user's config directory.
    User(PathBuf),
    /// Shipped in vmlane.
    Shipped,
    /// Given as a path.
    Path(PathBuf),
}

impl Origin {
    /// The file, unless shipped.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::Project(p) | Origin::User(p) | Origin::Path(p) => Some(p),
            Origin::Shipped => None,
        }
    }

    /// Short label for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Project(_) => "project",
            Origin::User(_) => "user",
            Origin::Shipped => "shipped",
            Origin::Path(_) => "file",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Shipped => write!(f, "vmlane's shipped profile"),
            other => write!(f, "{}", other.path().unwrap_or(Path::new("")).display()),
        }
    }
}

/// Which [`Origin`] a directory's files have.
type MakeOrigin = fn(PathBuf) -> Origin;

/// A profile file found, not yet parsed.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its name (the file stem).
    pub name: String,
    /// Where it is.
    pub origin: Origin,
    /// Its text.
    pub text: String,
}

impl Found {
    /// Parses and checks it; relative paths are taken from its directory (shipped ones: `cwd`).
    pub fn load(&self, cwd: &Path) -> Result<Profile, ProfileError> {
        let shown = match &self.origin {
            Origin::Shipped => format!("vmlane's shipped profile {}.toml", self.name),
            other => other.to_string(),
        };
        let dir = match self.origin.path().and_then(Path::parent) {
            Some(dir) => cwd.join(dir),
            None => cwd.to_path_buf(),
        };
        Profile::parse(&self.text, &shown, &dir)
    }
}

/// Where profiles are looked for.
#[derive(Debug, Clone)]
pub struct Search {
    /// The project's profile directory, if there is a project.
    pub project: Option<PathBuf>,
    /// The user's profile directory.
    pub user: Option<PathBuf>,
    /// Where path-like names and shipped profiles' relative paths start.
    pub cwd: PathBuf,
}

impl Search {
    /// The project is `cwd` or its nearest ancestor with a `.vmlane` directory; the user's
    /// directory follows `$XDG_CONFIG_HOME`, else `~/.config`.
    pub fn new(cwd: &Path, xdg_config_home: Option<&OsStr>, home: Option<&OsStr>) -> Search {
        let project = cwd
            .ancestors()
            .find(|dir| dir.join(".vmlane").is_dir())
            .map(|dir| dir.join(".vmlane/profiles"));
        let config = match xdg_config_home.filter(|v| !v.is_empty()) {
            Some(dir) => Some(PathBuf::from(dir)),
            None => home
                .filter(|v| !v.is_empty())
                .map(|h| Path::new(h).join(".config")),
        };
        Search {
            project,
            user: config.map(|c| c.join("vmlane/profiles")),
            cwd: cwd.to_path_buf(),
        }
    }

    /// From the process's environment.
    pub fn from_env(cwd: &Path) -> Search {
        Search::new(
            cwd,
            std::env::var_os("XDG_CONFIG_HOME").as_deref(),
            std::env::var_os("HOME").as_deref(),
        )
    }

    /// The profile `name`: a path when it looks like one, else the first of project, user,
    /// shipped.
    pub fn find(&self, name: &str) -> Result<Found, ProfileError> {
        if name.contains('/') || name.ends_with(".toml") {
            let path = self.cwd.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ProfileError::Read { path, source })?;
            let stem = Path::new(name).file_stem().unwrap_or_default();
            return Ok(Found {
                name: stem.to_string_lossy().into_owned(),
                origin: Origin::Path(PathBuf::from(name)),
                text,
            });
        }
        let mut looked = Vec::new();
        for (dir, origin) in self.dirs() {
            let path = dir.join(format!("{name}.toml"));
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    return Ok(Found {
                        name: name.into(),
                        origin: origin(path),
                        text,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    looked.push(path.display().to_string())
                }
                Err(source) => return Err(ProfileError::Read { path, source }),
            }
        }
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
            return Ok(Found {
                name: name.into(),
                origin: Origin::Shipped,
                text: (*text).into(),
            });
        }
        let shipped: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        looked.push(format!(
            "vmlane's shipped profiles ({})",
            shipped.join(", ")
        ));
        Err(ProfileError::NotFound {
            name: name.into(),
            looked,
        })
    }

    /// Every profile, in lookup order (project, user, shipped), by name within each; a name
    /// found twice is used from its first place.
    pub fn list(&self) -> Vec<Found> {
        let mut all = Vec::new();
        for (dir, origin) in self.dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let name = path.file_stem().unwrap_or_default();
                all.push(Found {
                    name: name.to_string_lossy().into_owned(),
                    origin: origin(path),
                    text,
                });
            }
        }
        all.extend(SHIPPED.iter().map(|(name, text)| Found {
            name: (*name).into(),
            origin: Origin::Shipped,
            text: (*text).into(),
        }));
        all
    }

    /// The profiles named, loaded and composed in order.
    pub fn resolve(&self, names: &[String]) -> Result<Profile, ProfileError> {
        let mut composed = Profile::default();
        for name in names {
            let profile = self.find(name)?.load(&self.cwd)?;
            composed = composed.compose(profile);
        }
        Ok(composed)
    }

    fn dirs(&self) -> Vec<(PathBuf, MakeOrigin)> {
        let mut dirs: Vec<(PathBuf, MakeOrigin)> = Vec::new();
        if let Some(dir) = &self.project {
            dirs.push((dir.clone(), Origin::Project));
        }
        if let Some(dir) = &self.user {
            dirs.push((dir.clone(), Origin::User));
        }
        dirs
    }
}

impl Profile {
    /// Parses a profile's text and checks it; `origin` names it in errors, `dir` is where its
    /// relative paths start.
    pub fn parse(text: &str, origin: &str, dir: &Path) -> Result<Profile, ProfileError> {
        let invalid = |line, message: String| ProfileError::Invalid {
            origin: origin.into(),
            line,
            message,
        };
        let mut profile: Profile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            invalid(line, e.message().trim().to_string())
        })?;
        // Errors found after parsing point at the key's first line.
        let line_of = |key: &str| {
            text.lines()
                .position(|l| {
                    l.trim_start()
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
                })
                .map(|i| i + 1)
        };
        let bad = |key: &str, message: String| invalid(line_of(key), message);
        if profile.cpus == Some(0) {
            return Err(bad("cpus", "cpus must be at least 1".into()));
        }
        if let Some(memory) = &profile.memory {
            let mib = parse_mib(memory).map_err(|m| bad("memory", format!("memory: {m}")))?;
            if mib < 128 {
                return Err(bad(
                    "memory",
                    format!("memory: {mib} MiB is too little to boot; use at least 128M"),
                ));
            }
        }
        for node in &profile.numa {
            parse_mib(&node.memory).map_err(|m| bad("numa", format!("numa: {m}")))?;
            if node.cpus == 0 {
                return Err(bad("numa", "numa: every node needs at least 1 CPU".into()));
            }
        }
        profile
            .check_numa()
            .map_err(|m| bad("numa", m.to_string()))?;
        for disk in &mut profile.disks {
            let spec = DiskSpec::parse(OsStr::new(disk.as_str()), |p| dir.join(p).exists())
                .map_err(|m| bad("disks", format!("disks: {m}")))?;
            if let DiskSpec::Image { path, read_only } = spec {
                let path = dir.join(path);
                *disk = format!("{}{}", path.display(), if read_only { ",ro" } else { "" });
            }
        }
        if let Some(Err(e)) = profile.arch.as_deref().map(str::parse::<Arch>) {
            return Err(bad("arch", format!("arch: {e}")));
        }
        if let Some(root) = &mut profile.root {
            *root = dir.join(&*root);
        }
        for file in &mut profile.files {
            file.from = dir.join(&file.from);
            if std::fs::symlink_metadata(&file.from).is_err() {
                return Err(bad(
                    "files",
                    format!("files: {} does not exist", file.from.display()),
                ));
            }
            if !file.to.is_absolute() {
                return Err(bad(
                    "files",
                    format!(
                        "files: `to = {:?}` must be an absolute path in the guest",
                        file.to
                    ),
                ));
            }
        }
        if let Some(key) = profile.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(bad("env", format!("env: `{key}` is not a variable name")));
        }
        Ok(profile)
    }

    /// The architecture asked for; checked when the profile was read.
    pub fn guest_arch(&self) -> Option<Arch> {
        self.arch.as_deref().and_then(|name| name.parse().ok())
    }

    /// `self` with `later` on top: lists and `env` add up, single values and `numa` are
    /// replaced when `later` has them.
    pub fn compose(mut self, later: Profile) -> Profile {
        self.description = later.description.or(self.description);
        self.arch = later.arch.or(self.arch);
        self.root = later.root.or(self.root);
        self.cpus = later.cpus.or(self.cpus);
        self.memory = later.memory.or(self.memory);
        self.append.extend(later.append);
        self.modules.extend(later.modules);
        self.disks.extend(later.disks);
        self.host_setup.extend(later.host_setup);
        self.guest_setup.extend(later.guest_setup);
        self.env.extend(later.env);
        self.files.extend(later.files);
        if !later.numa.is_empty() {
            self.numa = later.numa;
        }
        self
    }

    /// As TOML that loads back to the same profile.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot be shown as TOML: {e}\n"))
    }

    /// Memory in MiB, if set.
    pub fn memory_mib(&self) -> Option<u32> {
        self.memory.as_deref().and_then(|m| parse_mib(m).ok())
    }

    /// The NUMA nodes in the run model.
    pub fn numa_nodes(&self) -> Vec<NumaNode> {
        self.numa
            .iter()
            .map(|node| NumaNode {
                cpus: node.cpus,
                memory_mib: parse_mib(&node.memory).unwrap_or(0),
            })
            .collect()
    }

    /// The disks in the run model (images are absolute paths already).
    pub fn disk_specs(&self) -> Result<Vec<DiskSpec>, String> {
        self.disks
            .iter()
            .map(|d| DiskSpec::parse(OsStr::new(d.as_str()), |p| p.exists()))
            .collect()
    }

    /// The commands the guest runs before the command: the files placed first, so the
    /// setup commands can use them.
    pub fn guest_commands(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|file| {
                let (from, to) = (quote(&file.from), quote(&file.to));
                format!("mkdir -p \"$(dirname {to})\" && cp -a {from} {to}")
            })
            .chain(self.guest_setup.iter().cloned())
            .collect()
    }

    /// NUMA nodes must add up to `cpus` and `memory` when those are given too.
    pub fn check_numa(&self) -> Result<(), String> {
        if self.numa.is_empty() {
            return Ok(());
        }
        let nodes = self.numa_nodes();
        let cpus: u32 = nodes.iter().map(|n| n.cpus).sum();
        let memory: u32 = nodes.iter().map(|n| n.memory_mib).sum();
        if self.cpus.is_some_and(|c| c != cpus) {
            return Err(format!(
                "numa: the nodes have {cpus} CPUs in all, but cpus = {}",
                self.cpus.unwrap_or_default()
            ));
        }
        if self.memory_mib().is_some_and(|m| m != memory) {
            return Err(format!(
                "numa: the nodes have {memory} MiB in all, but memory = {:?}",
                self.memory.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// `512`, `512M`, `2G` in MiB.
pub fn parse_mib(value: &str) -> Result<u32, String> {
    let upper = value.trim().to_ascii_uppercase();
    let (number, factor) = match upper.strip_suffix('G') {
        Some(n) => (n, 1024),
        None => (upper.strip_suffix('M').unwrap_or(&upper), 1),
    };
    number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("expected a size like 512M or 2G, got `{value}`"))
}

/// `path` as one shell word.
pub fn quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn later_profiles_add_to_lists_and_override_values() {
        let dir = tempfile::tempdir().unwrap();
        let parse = |text| Profile::parse(text, "p.toml", dir.path()).unwrap();
        let first = parse(
            "cpus = 2\nmemory = \"1G\"\nappend = [\"a=1\"]\ndisks = [\"1G\"]\nenv = { A = \"1\", B = \"1\" }\n",
        );
        let second = parse("cpus = 4\nappend = [\"b=2\"]\ndisks = [\"2G\"]\nenv = { B = \"2\" }\n");
        let both = first.compose(second);
        assert_eq!(both.cpus, Some(4));
        assert_eq!(both.memory_mib(), Some(1024));
        assert_eq!(both.append, ["a=1", "b=2"]);
        assert_eq!(both.disks, ["1G", "2G"]);
        assert_eq!(both.env["A"], "1");
        assert_eq!(both.env["B"], "2");
        // What `vmlane profile show` prints reads back as the same profile.
        let shown = both.to_toml();
        assert_eq!(parse(&shown), both);
    }

    #[test]
    fn an_unknown_key_names_the_key_the_file_and_the_line() {
        let error = Profile::parse("cpus = 2\n\nmemroy = \"1G\"\n", "/p/x.toml", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("/p/x.toml:3: "), "{error}");
        assert!(error.contains("unknown field `memroy`"), "{error}");
        let error = Profile::parse(
            "files = [{ from = \"a\", to = \"/b\", mode = 1 }]",
            "f",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("f:1:") && error.contains("`mode`"),
            "{error}"
        );
    }

    #[test]
    fn paths_are_taken_from_the_profile_directory_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "data/hello.txt", "hi");
        write(dir.path(), "base.img", "");
        let profile = Profile::parse(
            "disks = [\"base.img,ro\", \"1G\"]\nfiles = [{ from = \"data/hello.txt\", to = \"/root/hello.txt\" }]\n",
            "p",
            dir.path(),
        )
        .unwrap();
        let base = dir.path().join("base.img");
        assert_eq!(profile.disks[0], format!("{},ro", base.display()));
        assert_eq!(
            profile.disk_specs().unwrap(),
            [
                DiskSpec::Image {
                    path: base,
                    read_only: true
                },
                DiskSpec::Scratch { bytes: 1 << 30 }
            ]
        );
        assert_eq!(profile.files[0].from, dir.path().join("data/hello.txt"));
        let commands = profile.guest_commands();
        assert!(commands[0].starts_with("mkdir -p \"$(dirname /root/hello.txt)\" && cp -a /"));
        let error = Profile::parse(
            "\nfiles = [{ from = \"nope\", to = \"/x\" }]\n",
            "p.toml",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("p.toml:2: files: "), "{error}");
        assert!(error.contains("nope does not exist"), "{error}");
    }

    #[test]
    fn project_then_user_then_shipped_and_paths_as_given() {
        let root = tempfile::tempdir().unwrap();
        let project = root.path().join("proj");
        let cwd = project.join("src/deep");
        std::fs::create_dir_all(&cwd).unwrap();
        let config = root.path().join("config");
        write(&project, ".vmlane/profiles/debug.toml", "cpus = 3\n");
        write(&project, ".vmlane/profiles/mine.toml", "cpus = 5\n");
        write(&config, "vmlane/profiles/mine.toml", "cpus = 6\n");
        write(&config, "vmlane/profiles/theirs.toml", "cpus = 7\n");
        write(&cwd, "local.toml", "cpus = 8\n");
        let search = Search::new(&cwd, Some(config.as_os_str()), None);
        let cpus = |name: &str| search.find(name).unwrap().load(&cwd).unwrap().cpus;
        assert_eq!(cpus("debug"), Some(3));
        assert_eq!(cpus("mine"), Some(5));
        assert_eq!(cpus("theirs"), Some(7));
        assert_eq!(cpus("local.toml"), Some(8));
        assert_eq!(search.find("zfs-scratch").unwrap().origin, Origin::Shipped);
        let error = search.find("nothing").unwrap_err().to_string();
        assert!(error.contains("no profile named `nothing`"), "{error}");
        assert!(error.contains(".vmlane/profiles/nothing.toml"), "{error}");
        assert!(
            error.contains("config/vmlane/profiles/nothing.toml"),
            "{error}"
        );
        assert!(error.contains("shipped"), "{error}");
        let listed: Vec<(String, &str)> = search
            .list()
            .iter()
            .map(|f| (f.name.clone(), f.origin.kind()))
            .collect();
        assert_eq!(listed[0], ("debug".to_string(), "project"));
        assert_eq!(listed[2], ("mine".to_string(), "user"));
        assert!(listed.contains(&("zfs-scratch".to_string(), "shipped")));
        // Without XDG_CONFIG_HOME, ~/.config.
        let search = Search::new(&cwd, None, Some(OsStr::new("/home/u")));
        assert_eq!(
            search.user,
            Some(PathBuf::from("/home/u/.config/vmlane/profiles"))
        );
    }

    #[test]
    fn shipped_profiles_parse_and_numa_must_match_cpus_and_memory() {
        for (name, text) in SHIPPED {
            let profile = Profile::parse(text, name, Path::new("/")).unwrap();
            assert!(profile.description.is_some(), "{name}");
        }
        let zfs = Profile::parse(SHIPPED[2].1, "zfs", Path::new("/")).unwrap();
        assert_eq!(zfs.disk_specs().unwrap().len(), 4);
        let numa = "numa = [{ cpus = 2, memory = \"1G\" }, { cpus = 1, memory = \"512M\" }]\n";
        let profile = Profile::parse(numa, "n", Path::new("/")).unwrap();
        assert_eq!(
            profile.numa_nodes(),
            [
                NumaNode {
                    cpus: 2,
                    memory_mib: 1024
                },
                NumaNode {
                    cpus: 1,
                    memory_mib: 512
                }
            ]
        );
        let error = Profile::parse(&format!("cpus = 2\n{numa}"), "n", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("3 CPUs in all, but cpus = 2"), "{error}");
        assert!(
            Profile::parse(&format!("memory = \"1536M\"\n{numa}"), "n", Path::new("/")).is_ok()
        );
    }
}
