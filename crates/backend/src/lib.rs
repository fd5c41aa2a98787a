//! What every VM backend (QEMU now; vmlane's own KVM VMM and bhyve later) must provide, and the
//! host side of a run that all of them share: the run directory, the console log, the framed
//! port to the guest init, timeouts, signals, and turning all of that into an [`Outcome`].
#![deny(missing_docs)]

mod console;
mod machine;
mod marked;
mod rundir;
mod session;
mod signals;
mod turn;

pub use console::ConsoleLog;
pub use machine::{
    Backend, BackendError, Disk, GuestOs, GuestRam, Machine, RunningVm, Share, ShareTransport,
};
pub use marked::{ConsoleEvent, MarkedConsole};
pub use rundir::{sweep_abandoned, RunDir};
pub use session::{
    run_session, GuestChannel, Session, SessionError, Snapshotting, Timings, RESTORED_ANSWER_LIMIT,
};
pub use signals::{StopHandle, StopSignals};
pub use turn::{Turn, TurnWait};

pub use vmlane_spec::Outcome;
