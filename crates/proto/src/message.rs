use vmlane_spec::GuestStatus;

/// A terminal's size in character cells; 0×0 means not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// What the command reads on its standard input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Input {
    /// `/dev/null`: a command that reads gets end of file at once.
    #[default]
    Null,
    /// A pipe fed by [`HostMessage::Stdin`] and closed by [`HostMessage::StdinClosed`].
    Pipe,
    /// A pseudo-terminal of this size for stdin, stdout and stderr, so job control, line
    /// editing and full-screen programs work; all its output arrives as
    /// [`GuestMessage::Stdout`].
    Terminal(WindowSize),
}

impl From<vmlane_spec::Input> for Input {
    fn from(input: vmlane_spec::Input) -> Input {
        match input {
            vmlane_spec::Input::Null => Input::Null,
            vmlane_spec::Input::Pipe => Input::Pipe,
            // The session that owns the terminal fills in its size when the VM starts.
            vmlane_spec::Input::Terminal => Input::Terminal(WindowSize::default()),
        }
    }
}

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

/// A writable host directory and where the guest mounts it, over its overlay root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMount {
    /// The share: filesystem type, tag and mount(2) data.
    pub share: ShareMount,
    /// The absolute path in the guest it is mounted on.
    pub target: Vec<u8>,
}

/// What the host asks the guest to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The command and its arguments, as raw bytes. Empty: the user's login shell (`$SHELL`
    /// when the guest has it, else bash, else sh), as ssh runs one when given no command.
    pub argv: Vec<Vec<u8>>,
    /// The full environment as `KEY=VALUE` byte strings.
    pub env: Vec<Vec<u8>>,
    /// The directory to run in.
    pub cwd: Vec<u8>,
    /// The host root share, or `None` to run inside the initramfs alone.
    pub share: Option<ShareMount>,
    /// Host directories mounted writable once the root is built, in this order.
    pub rwdirs: Vec<DirMount>,
    /// What the command's standard input is.
    pub input: Input,
}

/// Most entropy a [`HostMessage::Prepare`] carries; the guest needs 32 bytes to reseed.
pub const MAX_ENTROPY: usize = 512;

/// A message from the host to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMessage {
    /// Sent before [`HostMessage::Run`]: what a guest restored from a snapshot would otherwise
    /// have from the moment the snapshot was taken.
    Prepare {
        /// The host's wall clock, nanoseconds since the Unix epoch.
        wall_clock_ns: u64,
        /// Fresh random bytes to mix into the guest's generator before it reseeds, so two
        /// runs restored from one snapshot never share their random numbers.
        entropy: Vec<u8>,
    },
    /// Run this command: the guest makes its root ready, then waits for [`HostMessage::Start`].
    Run(RunRequest),
    /// Start the command now. A run readied ahead of its turn gets it once its turn comes, so
    /// its restore and root are done while the run before it still goes.
    Start,
    /// Bytes for the command's standard input (pipe or terminal).
    Stdin(Vec<u8>),
    /// The host's input ended: a pipe is closed after what was sent; a terminal hangs up.
    StdinClosed,
    /// The host's terminal changed size.
    WindowSize(WindowSize),
}

/// The mark the init sends once the command runs: a restored guest that has not sent it
/// within its limit is booted again instead.
pub const COMMAND_STARTED: &str = "command started";

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
    /// The init waits for its request: a VM saved now restores to a guest ready to run one.
    Ready,
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
