//! vmlane as a library: boot a kernel in a throwaway VM, run one command, and get its exit
//! status, output, console log, JSON-line events and kernel splats back, from ordinary Rust
//! tests.
//!
//! ```no_run
//! let result = vmlane::Run::new(["uname", "-r"]).kernel("6.1").output()?;
//! assert!(result.success(), "{}", result.console);
//! assert!(result.splats.is_empty());
//! # Ok::<(), vmlane::LaunchError>(())
//! ```
#![deny(missing_docs)]

mod api;
mod freebsd;
pub mod launch;

pub use api::{Run, RunResult};
pub use launch::{LaunchError, OsChoice};
pub use vmlane_checks::events::{matches as events_match, Event};
pub use vmlane_checks::splat::Splat;
pub use vmlane_spec::Outcome;
