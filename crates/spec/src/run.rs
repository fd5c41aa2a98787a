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
    /// Whichever the kernel supports: 9p first where saved guests may stand in for the boot
    /// (a 9p guest is saved as it is), else virtio-fs first when a virtiofsd is installed.
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

/// One NUMA node of the guest: its share of the CPUs and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumaNode {
    /// Virtual CPUs on this node.
    pub cpus: u32,
    /// Memory on this node, in MiB.
    pub memory_mib: u32,
}
