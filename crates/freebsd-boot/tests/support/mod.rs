//! What the tests share.

pub mod elf;
