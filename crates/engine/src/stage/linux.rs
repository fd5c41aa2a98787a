//! A Linux guest's initramfs: vmlane's init and exactly the modules the plan named, with
//! everything they depend on, written once per content into vmlane's cache.

use super::error::StageError;
use super::staged::GuestFiles;
use crate::host::Host;
use crate::plan::LinuxGuest;
use vmlane_kernel::Kernel;

pub(super) fn stage(
    guest: &LinuxGuest,
    kernel: &Kernel,
    host: &Host,
    notes: &mut Vec<String>,
) -> Result<GuestFiles, StageError> {
    let wanted: Vec<&str> = guest.modules.iter().map(String::as_str).collect();
    let load = match &guest.index {
        Some(index) => index.closure(&wanted)?,
        None => Vec::new(),
    };
    let init = vmlane_payload::init_for(kernel.format.arch())?;
    let initrd = vmlane_payload::initramfs::build_cached(&host.cache_dir, init, &load)?;
    notes.push(format!(
        "initramfs {} ({} modules)",
        initrd.display(),
        load.len()
    ));
    Ok(GuestFiles {
        kernel: kernel.image.clone(),
        initrd: Some(initrd),
        disks: Vec::new(),
    })
}
