//! One error per phase of a run, each keeping its cause as a source.

use crate::kernel::KernelError;
use crate::plan::PlanError;
use crate::request::RequestError;
use crate::stage::StageError;
use std::path::PathBuf;
use vmlane_backend::{BackendError, SessionError};

/// Why a run could not start or finish. Every message names what was wrong and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request's profiles could not be applied.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No kernel can be booted.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The request cannot run on this kernel and host.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A file, disk or port the run needs could not be made ready.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The VMM could not be started.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The VM's session failed before it had an outcome.
    #[error(transparent)]
    Session(SessionError),
    /// vmlane could not catch SIGINT and SIGTERM.
    #[error("cannot catch SIGINT and SIGTERM")]
    Signals(#[source] std::io::Error),
    /// The console log could not be written or read back.
    #[error("cannot use the console log {path}")]
    ConsoleLog {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A run that failed after its VM started; its console log was kept for reading.
    #[error("the run failed; its console log is kept at {}", console_log.display())]
    LogKept {
        /// The console log.
        console_log: PathBuf,
        /// Why the run failed.
        #[source]
        source: Box<Error>,
    },
}
