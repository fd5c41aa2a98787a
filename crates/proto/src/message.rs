use vmlane_spec::GuestStatus;

/// Where and how the guest mounts the host's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMount {
    /// Filesystem type for mount(2): `9p` or `virtiofs`.
    pub fstype: String,
    /// The device tag QEMU gave the share.
    pub tag: String,
    /// mount(2) data, e.g. `trans=virtio,version=9p2000.L`.
    pub options: String,
}

/// What the host asks the guest to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The command and its arguments, as raw bytes.
    pub argv: Vec<Vec<u8>>,
    /// The full environment as `KEY=VALUE` byte strings.
    pub env: Vec<Vec<u8>>,
    /// The directory to run in.
    pub cwd: Vec<u8>,
    /// The host root share, or `None` to run inside the initramfs alone.
    pub share: Option<ShareMount>,
}

/// A message from the host to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMessage {
    /// Run this command.
    Run(RunRequest),
}

/// A message from the guest to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestMessage {
    /// The init reached a named point, `boot_ns` after the kernel started (CLOCK_BOOTTIME).
    Mark {
        /// What was reached, e.g. `modules loaded`.
        name: String,
        /// Nanoseconds since boot.
        boot_ns: u64,
    },
    /// Bytes the command wrote to its standard output.
    Stdout(Vec<u8>),
    /// Bytes the command wrote to its standard error.
    Stderr(Vec<u8>),
    /// The command ended; no output follows.
    Exit(GuestStatus),
    /// A step of the init failed; the run cannot go on.
    Failed {
        /// The step, phrased so that "failed to <step>" reads well.
        step: String,
        /// Why.
        message: String,
    },
}
