//! vmlane as a library: boot a kernel in a throwaway VM, run one command, and get its exit
//! status, output, console log, JSON-line events and kernel splats back, from ordinary Rust
//! tests.
//!
//! ```no_run
//! let result = vmlane::Run::new(["uname", "-r"]).kernel("6.1").output()?;
//! assert!(result.success(), "{}", result.console);
//! assert!(result.splats.is_empty());
//! # Ok::<(), vmlane::Error>(())
//! ```
//!
//! Underneath is the launch engine every vmlane run goes through, one module per step:
//! [`request`] → [`host`] → [`kernel`] → [`plan`] → [`stage`] → [`boot`] → [`result`]
//! ([`launch::launch`] calls them in that order).
#![deny(missing_docs)]

mod api;
pub mod boot;
pub mod check;
mod error;
pub mod event;
pub mod host;
pub mod kernel;
pub mod launch;
pub mod plan;
pub mod request;
pub mod result;
pub mod snapshot;
pub mod stage;

pub use api::{Run, RunResult};
pub use error::Error;
pub use event::LaunchEvent;
pub use request::{BackendChoice, BootChoice, MachineChoice, OsChoice, Request, RequestError};
pub use vmlane_checks::events::{matches as events_match, Event};
pub use vmlane_checks::splat::Splat;
pub use vmlane_spec::{Accel, Outcome, RwDir, ShareKind};

/// The error of a [`Run`], by its earlier name.
pub type LaunchError = Error;
