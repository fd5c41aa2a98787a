//! Step 5, staging: the files and resources the plan needs, each held by a guard that
//! removes or releases it however the run ends. A run killed outright leaves its run
//! directory behind; the next run's staging removes it (see [`RunDir::create`]).

mod disks;
mod error;
mod freebsd;
mod linux;
mod ports;
mod probe;
mod rwdirs;
mod setup;
mod staged;

pub use error::StageError;
pub use probe::ProbeError;
pub use staged::Staged;

use crate::host::Host;
use crate::plan::{GuestPlan, Plan};
use vmlane_backend::RunDir;

/// Stages everything `plan` needs, in an order where the cheap checks come first.
pub fn stage(plan: &Plan, host: &Host) -> Result<Staged, StageError> {
    let run_dir = RunDir::create().map_err(StageError::RunDir)?;
    let request_disks = disks::check(&plan.vm.disks)?;
    rwdirs::check_root(plan.vm.share.as_ref())?;
    rwdirs::check(&plan.vm.rwdirs)?;
    let ports = ports::reserve(&plan.vm.ports)?;
    let mut notes = Vec::new();
    let guest = match &plan.guest {
        GuestPlan::Linux(guest) => linux::stage(guest, &plan.kernel, host, &mut notes)?,
        GuestPlan::FreeBsd(guest) => {
            freebsd::stage(guest, &plan.kernel, host, &run_dir, &mut notes)?
        }
    };
    let mut disks = guest.disks;
    disks.extend(disks::attach(request_disks, &run_dir)?);
    let scratch = setup::run(&plan.vm.host_setup, &host.cache_dir, &plan.vm.cwd)?;
    Ok(Staged {
        run_dir,
        kernel: guest.kernel,
        initrd: guest.initrd,
        disks,
        scratch,
        ports,
        notes,
    })
}
