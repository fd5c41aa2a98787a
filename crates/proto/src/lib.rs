//! The wire formats between vmlane's host side and its guest inits: framed messages on a
//! virtio-serial port (Linux), and marker lines on the serial console (FreeBSD).
//!
//! One virtio-serial port carries everything in both directions, so the order in which the guest
//! sends output and its exit status is the order the host sees them. Every frame is
//! `[kind: u8][length: u32 LE][payload]`. This crate is the only place where the host parses bytes
//! the guest controls, so decoding never panics and bounds every length.
#![deny(missing_docs)]

mod codec;
mod marker;
mod message;

pub use codec::{encode, DecodeError, Decoder, Frame, MAX_FRAME};
pub use marker::{new_token, parse_marker, Marker, MARKER_PREFIX, UNKNOWN_TOKEN};
pub use message::{
    DirMount, GuestMessage, HostMessage, Input, RunRequest, ShareMount, WindowSize, MAX_ENTROPY,
};

/// The name of the virtio-serial port the guest init looks for.
pub const PORT_NAME: &str = "vmlane.0";
