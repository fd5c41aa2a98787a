//! The guest init, built static by `build.rs` and embedded so every vmlane binary carries the
//! init that speaks its own protocol version.

/// The static `vmlane-init` executable, placed at `/init` in every initramfs.
pub static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vmlane-init"));
