use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::{DiskSpec, Network};

/// Which CPU accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// Hardware KVM when it can boot stock kernels, otherwise TCG.
    #[default]
    Auto,
    /// Force KVM, even where it is a software module such as `kvm_pvm`.
    Kvm,
    /// QEMU's Tiny Code Generator: slow but runs anywhere.
    Tcg,
}

/// How the host's root filesystem reaches the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareKind {
    /// Whichever the kernel supports, virtio-fs first when a virtiofsd is installed.
    #[default]
    Auto,
    /// virtio-9p served by QEMU itself: no helper process.
    NineP,
    /// virtio-fs served by a virtiofsd helper: faster and POSIX-correct.
    VirtioFs,
}

/// What the guest command reads on its standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Input {
    /// `/dev/null`, so a run never waits on the host's input.
    #[default]
    Null,
    /// The host's stdin, relayed through a pipe (`vmlane shell` without a terminal).
    Pipe,
    /// The host's terminal, relayed to a pseudo-terminal in the guest (`vmlane shell`).
    Terminal,
}

/// One command to run in one throwaway VM.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The command and its arguments, passed to the guest byte for byte.
    pub argv: Vec<OsString>,
    /// Extra `KEY=VALUE` environment entries, applied over the defaults.
    pub env: Vec<(OsString, OsString)>,
    /// The directory the command starts in; the host path, visible in the guest unchanged.
    pub cwd: PathBuf,
    /// Number of virtual CPUs.
    pub cpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Wall-clock limit for the whole VM; `None` waits forever.
    pub timeout: Option<Duration>,
    /// The accelerator to ask for.
    pub accel: Accel,
    /// The shared-folder transport to ask for.
    pub share: ShareKind,
    /// Disks for the guest, as `/dev/vda`, `/dev/vdb`, ... in this order.
    pub disks: Vec<DiskSpec>,
    /// The guest's network (Linux guests).
    pub network: Network,
    /// Start halted with a gdb stub on this port of 127.0.0.1 (Linux guests).
    pub gdb: Option<u16>,
    /// What the command reads on stdin.
    pub input: Input,
    /// Kernel modules to load in the guest besides those its devices need (Linux guests).
    pub modules: Vec<String>,
    /// Shell commands run on the host before the VM starts; the first failure stops the run.
    pub host_setup: Vec<String>,
    /// Shell commands run in the guest before the command (Linux guests).
    pub guest_setup: Vec<String>,
    /// NUMA nodes; empty for one node. Their CPUs and memory add up to `cpus` and
    /// `memory_mib`.
    pub numa: Vec<NumaNode>,
}

/// One NUMA node of the guest: its share of the CPUs and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumaNode {
    /// Virtual CPUs on this node.
    pub cpus: u32,
    /// Memory on this node, in MiB.
    pub memory_mib: u32,
}

impl RunSpec {
    /// A spec for `argv` in `cwd` with vmlane's defaults for everything else.
    pub fn new(argv: Vec<OsString>, cwd: PathBuf) -> Self {
        RunSpec {
            argv,
            env: Vec::new(),
            cwd,
            cpus: 1,
            memory_mib: 512,
            timeout: None,
            accel: Accel::Auto,
            share: ShareKind::Auto,
            disks: Vec::new(),
            network: Network::None,
            gdb: None,
            input: Input::Null,
            modules: Vec::new(),
            host_setup: Vec::new(),
            guest_setup: Vec::new(),
            numa: Vec::new(),
        }
    }
}
