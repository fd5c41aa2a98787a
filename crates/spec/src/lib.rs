//! The run model shared by every vmlane crate: what to run, how big the VM is, and what came of
//! it. No I/O happens here, so front ends (CLI, suites, the library facade) and backends agree on
//! one vocabulary.
#![deny(missing_docs)]

mod disk;
mod net;
mod outcome;
mod run;

pub use disk::{parse_size, DiskSpec};
pub use net::{Network, PortForward};
pub use outcome::{exit_code, GuestStatus, Outcome};
pub use run::{Accel, Input, NumaNode, RunSpec, ShareKind};
