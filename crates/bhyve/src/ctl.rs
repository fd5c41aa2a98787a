//! Destroying a VM's kernel instance: it outlives bhyve (and bhyveload) and holds the guest's
//! memory until `bhyvectl --destroy`.

use crate::argv::destroy_args;
use crate::sys;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One VM to destroy, once.
#[derive(Debug, Clone)]
pub struct Destroy {
    /// bhyvectl.
    pub bhyvectl: PathBuf,
    /// The VM.
    pub name: String,
    /// How long bhyvectl may take: it has hung on guests halted with interrupts off.
    pub timeout: Duration,
}

impl Destroy {
    /// Runs `bhyvectl --destroy --vm=NAME`. Failure is not reported: the VM may not exist
    /// (bhyveload failed before creating it), and there is nothing else to try.
    pub fn run(self) {
        let mut command = Command::new(&self.bhyvectl);
        command
            .args(destroy_args(&self.name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(mut child) = command.spawn() else {
            return;
        };
        if let Ok(None) = sys::wait_timeout(&mut child, self.timeout) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
