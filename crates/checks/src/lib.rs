//! What `vmlane test` checks after a run, as pure functions over text: kernel failure reports
//! ("splats") in the console log, JSON-line events, expected and forbidden console lines, and
//! golden logs. Nothing here boots a VM or touches a file, so every check is unit-tested on
//! hand-written console excerpts and behaves the same in the CLI, in suites and in CI.
#![deny(missing_docs)]

mod error;
pub mod events;
pub mod golden;
pub mod ktap;
pub mod lines;
mod pattern;
mod printk;
pub mod rc_boot;
pub mod splat;

pub use error::Error;
pub use pattern::TextPattern;
pub use printk::{console_lines, strip_timestamp};
