//! The guest payload: an initramfs holding vmlane's guest init and exactly the kernel modules
//! the guest's devices need, cached by content so an unchanged run reuses it.
#![deny(missing_docs)]

pub mod cpio;
mod error;
mod init_binary;
pub mod initramfs;
pub mod modules;

pub use error::PayloadError;
pub use init_binary::{init_for, INIT};
