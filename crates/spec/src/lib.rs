//! The vocabulary shared by every vmlane crate: accelerators, shares, writable directories,
//! disks, networks, what a command reads, and what came of a run. No I/O happens here, so the
//! engine, suites and backends agree on one vocabulary.
#![deny(missing_docs)]

mod arch;
mod disk;
mod net;
mod outcome;
mod run;
mod rwdir;

pub use arch::{Arch, UnknownArch};
pub use disk::{parse_size, DiskSpec};
pub use net::{Network, PortForward};
pub use outcome::{exit_code, GuestStatus, Outcome};
pub use run::{Accel, Input, NumaNode, ShareKind};
pub use rwdir::RwDir;
