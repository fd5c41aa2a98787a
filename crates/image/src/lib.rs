//! The UFS disk images vmlane boots FreeBSD from, written with makefs from a staging
//! directory (never from, or into, the user's files). UFS2 where the makefs can write one
//! FreeBSD mounts (FreeBSD's own); UFS1 with NetBSD's, which Debian packages (see
//! [`Makefs::ufs_version`]).
//!
//!
//! - full FreeBSD systems ([`build_freebsd_image`]) with vmlane's fstab, rc.conf settings,
//!   boot hook ([`rc_script`]), vmlane-relay ([`RELAY_PATH`]) and optionally a custom kernel,
//!   cached by content; a run hands the hook its script on a second disk ([`run_disk`]:
//!   [`relay_script`] for VMs with a channel, [`run_script`] for those without);
//! - the cached image written out as qcow2 or a dynamic VHD for deployment ([`QemuImg`]);
//! - what deploying an image needs ([`Deploy`]): host name, SSH keys, accounts made at first
//!   boot, sshd with keys only, DHCP;
//! - minimal images for vmlane's own FreeBSD init ([`minimal_image`]);
//! - the lint of what FreeBSD's `rc` needs and a tree, base.txz or built image lacks
//!   ([`lint`], [`lint_tree`]), which full builds run on their staged tree.
//!
//! Images are never written after they are made: a run attaches one behind a snapshot that
//! is thrown away with the VM, so one cached image serves every run.
#![deny(missing_docs)]

mod cache;
mod deploy;
mod error;
mod export;
mod fstab;
mod full;
mod hook;
mod key;
mod lint;
mod loader;
mod makefs;
mod metalog;
mod minimal;
mod rcconf;
mod stage;
mod tree;

#[cfg(test)]
mod tests;
mod ufs_read;

pub use cache::images_dir;
pub use deploy::{
    Account, AuthorizedKeys, Deploy, ACCOUNTS_SCRIPT_PATH, DEFAULT_DHCP_INTERFACE,
    FIRSTBOOT_SENTINEL, ROOT_KEYS_PATH, SSHD_CONFIG_PATH,
};
pub use error::ImageError;
pub use export::{DiskFormat, QemuImg};
pub use fstab::{fstab, ROOT_DEVICE};
pub use full::{build_freebsd_image, BuiltImage, CustomKernel, FreeBsdImage};
pub use hook::{
    rc_late_script, rc_script, rc_scripts, relay_script, run_disk, run_script, single_quote,
    RC_LATE_SCRIPT_PATH, RC_SCRIPT_PATH, RELAY_PATH, RUN_DISK_MAGIC, SECTOR,
};
pub use lint::{lint, lint_tree, rc_enabled, Finding, LintError};
pub use loader::{loader_conf, loader_conf_additions, validate_kernel_name, DEFAULT_KERNEL_NAME};
pub use makefs::{image_version, Makefs, UfsVersion};
pub use minimal::{
    minimal_image, minimal_image_with, Content, ExtraFile, INIT_PATH, MOUNT_POINTS, RUN_PATH,
};
pub use rcconf::{rc_conf, rc_conf_additions, HOSTNAME};

/// Lower-case hex, for keys and hashes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
