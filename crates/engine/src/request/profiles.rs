//! Profiles resolved into a request: they add to its lists and fill in what it leaves open,
//! so the request's own values (flags, a suite test's keys, [`crate::Run`] calls) win.

use super::Request;
use vmlane_profile::{Profile, ProfileError, Search};

/// Why the profiles of a request cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A profile could not be found or read.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A disk is not one `--disk` takes.
    #[error("bad disk: {0}")]
    Disk(String),
    /// A writable directory is not one `--rwdir` takes.
    #[error("bad --rwdir: {0}")]
    RwDir(String),
    /// A profile's disk is not one `--disk` takes.
    #[error("a profile's disks: {0}")]
    ProfileDisk(String),
    /// The NUMA nodes' CPUs do not add up to the VM's.
    #[error("the profiles' NUMA nodes have {nodes} CPUs in all, but the run has {cpus} (--cpus or cpus)")]
    NumaCpus {
        /// CPUs of all nodes.
        nodes: u32,
        /// CPUs of the VM.
        cpus: u32,
    },
    /// The NUMA nodes' memory does not add up to the VM's.
    #[error("the profiles' NUMA nodes have {nodes} MiB in all, but the run has {memory} MiB (--memory or memory)")]
    NumaMemory {
        /// MiB of all nodes.
        nodes: u32,
        /// MiB of the VM.
        memory: u32,
    },
}

impl Request {
    /// The request with its profiles (looked up from its directory) composed in order and
    /// applied under its own values: their lists come first (later kernel words and
    /// environment entries win), their CPUs and memory only where the request has none.
    pub fn with_profiles(self) -> Result<Request, RequestError> {
        if self.profiles.is_empty() {
            return Ok(self);
        }
        let profile = Search::from_env(&self.cwd).resolve(&self.profiles)?;
        self.apply(&profile)
    }

    fn apply(mut self, profile: &Profile) -> Result<Request, RequestError> {
        let nodes = profile.numa_nodes();
        if !nodes.is_empty() && self.numa.is_empty() {
            self.numa = nodes;
        }
        let node_cpus = (!self.numa.is_empty()).then(|| self.numa.iter().map(|n| n.cpus).sum());
        let node_memory =
            (!self.numa.is_empty()).then(|| self.numa.iter().map(|n| n.memory_mib).sum());
        self.cpus = self.cpus.or(profile.cpus).or(node_cpus);
        self.arch = self.arch.or(profile.guest_arch());
        self.linux.root = self.linux.root.take().or_else(|| profile.root.clone());
        self.memory_mib = self.memory_mib.or(profile.memory_mib()).or(node_memory);
        if let Some(nodes) = node_cpus.filter(|&n| n != self.cpus()) {
            return Err(RequestError::NumaCpus {
                nodes,
                cpus: self.cpus(),
            });
        }
        if let Some(nodes) = node_memory.filter(|&n| n != self.memory_mib()) {
            return Err(RequestError::NumaMemory {
                nodes,
                memory: self.memory_mib(),
            });
        }
        let disks = profile.disk_specs().map_err(RequestError::ProfileDisk)?;
        self.disks.splice(0..0, disks);
        self.append.splice(0..0, profile.append.iter().cloned());
        // A shell's SHELL stays first; the request's entries stay after the profiles'.
        let at = self.env.iter().take_while(|(k, _)| k == "SHELL").count();
        self.env.splice(
            at..at,
            profile.env.iter().map(|(k, v)| (k.into(), v.into())),
        );
        self.linux
            .modules
            .splice(0..0, profile.modules.iter().cloned());
        self.host_setup
            .splice(0..0, profile.host_setup.iter().cloned());
        self.linux
            .guest_setup
            .splice(0..0, profile.guest_commands());
        self.profiles.clear();
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use vmlane_spec::DiskSpec;

    fn request(dir: &Path) -> Request {
        Request::new(vec!["true".into()], dir.to_path_buf())
    }

    #[test]
    fn the_requests_own_values_win_and_its_lists_follow_the_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "cpus = 2\nmemory = \"1G\"\nappend = [\"quiet\"]\ndisks = [\"1G\"]\nenv = { A = \"p\" }\nguest_setup = [\"true\"]\nmodules = [\"zfs\"]\nhost_setup = [\"echo\"]\n",
        )
        .unwrap();
        let mut asked = request(dir.path());
        asked.profiles = vec![file.display().to_string()];
        asked.env = vec![("A".into(), "flag".into())];
        asked.disks = vec![DiskSpec::Scratch { bytes: 1 << 20 }];
        asked.append = vec!["loglevel=7".into()];
        asked.cpus = Some(3);
        asked.linux.modules = vec!["dummy".into()];
        let applied = asked.with_profiles().unwrap();
        assert_eq!((applied.cpus(), applied.memory_mib()), (3, 1024));
        assert_eq!(applied.append, ["quiet", "loglevel=7"]);
        assert_eq!(
            applied.env,
            [("A".into(), "p".into()), ("A".into(), "flag".into())]
        );
        assert_eq!(
            applied.disks,
            [
                DiskSpec::Scratch { bytes: 1 << 30 },
                DiskSpec::Scratch { bytes: 1 << 20 }
            ]
        );
        assert_eq!(applied.linux.guest_setup, ["true"]);
        assert_eq!(applied.linux.modules, ["zfs", "dummy"]);
        assert_eq!(applied.host_setup, ["echo"]);
        assert!(applied.profiles.is_empty());
    }

    #[test]
    fn a_profile_names_the_architecture_and_a_root_beside_it_unless_the_request_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("arm.toml");
        std::fs::write(&file, "arch = \"arm64\"\nroot = \"roots/arm64\"\n").unwrap();
        let mut asked = request(dir.path());
        asked.profiles = vec![file.display().to_string()];
        let applied = asked.clone().with_profiles().unwrap();
        assert_eq!(applied.arch, Some(vmlane_spec::Arch::Aarch64));
        assert_eq!(applied.linux.root, Some(dir.path().join("roots/arm64")));
        asked.arch = Some(vmlane_spec::Arch::X86_64);
        asked.linux.root = Some("/mine".into());
        let applied = asked.with_profiles().unwrap();
        assert_eq!(applied.arch, Some(vmlane_spec::Arch::X86_64));
        assert_eq!(applied.linux.root, Some("/mine".into()));

        std::fs::write(&file, "cpus = 1\narch = \"sparc\"\n").unwrap();
        let error = Profile::parse(
            &std::fs::read_to_string(&file).unwrap(),
            &file.display().to_string(),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(":2") && error.contains("unknown architecture `sparc`"),
            "{error}"
        );
    }

    #[test]
    fn no_profiles_leaves_the_defaults() {
        let plain = request(Path::new("/")).with_profiles().unwrap();
        assert_eq!((plain.cpus(), plain.memory_mib()), (1, 512));
        assert_eq!((plain.cpus, plain.memory_mib), (None, None));
    }

    #[test]
    fn numa_sets_cpus_and_memory_and_refuses_other_values() {
        let numa = |cpus, memory| {
            let mut asked = request(Path::new("/"));
            asked.profiles = vec!["numa2".into()];
            asked.cpus = cpus;
            asked.memory_mib = memory;
            asked.with_profiles()
        };
        let applied = numa(None, None).unwrap();
        assert_eq!(
            (applied.cpus(), applied.memory_mib(), applied.numa.len()),
            (2, 1024, 2)
        );
        let error = numa(Some(4), None).unwrap_err().to_string();
        assert!(
            error.contains("2 CPUs in all, but the run has 4"),
            "{error}"
        );
        assert!(numa(None, Some(2048)).is_err());
    }

    #[test]
    fn an_unknown_profile_names_where_it_looked() {
        let mut asked = request(Path::new("/"));
        asked.profiles = vec!["no-such-profile".into()];
        let error = asked.with_profiles().unwrap_err();
        assert!(matches!(error, RequestError::Profile(_)), "{error}");
        assert!(error.to_string().contains("no-such-profile"), "{error}");
    }
}
