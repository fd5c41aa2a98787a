//! The wire formats between vmlane's host side and its guest inits: framed messages on a port of
//! their own, and marker lines on the serial console.
//!
//! Linux's init has a virtio-serial port that carries everything in both directions. FreeBSD's
//! init sends the same [`GuestMessage`] frames (`Stdout`, `Stderr`, `Exit`, `Failed`) on a second
//! serial port (COM2), from a C encoder of its own (`crates/guest-freebsd/init/frame.h`); it gets
//! nothing back, its run being on its disk. Either way one port carries a command's output and
//! its exit status, so the order in which the guest sends them is the order the host sees them,
//! and the kernel's console stays apart. Every frame is `[kind: u8][length: u32 LE][payload]`.
//! FreeBSD guests without that port (an image's rc.d hook, bhyve), and a FreeBSD init that fails
//! before its port is open, report with [marker lines](parse_marker) on the console instead.
//!
//! This crate is the only place where the host parses bytes the guest controls, so decoding
//! never panics and bounds every length.
#![deny(missing_docs)]

mod codec;
mod marker;
mod message;

pub use codec::{encode, DecodeError, Decoder, Frame, MAX_FRAME};
pub use marker::{new_token, parse_marker, Marker, MARKER_PREFIX, UNKNOWN_TOKEN};
pub use message::{
    DirMount, GuestMessage, HostMessage, Input, RunRequest, ShareMount, WindowSize,
    COMMAND_STARTED, MAX_ENTROPY,
};

/// The name of the virtio-serial port the guest init looks for.
pub const PORT_NAME: &str = "vmlane.0";
