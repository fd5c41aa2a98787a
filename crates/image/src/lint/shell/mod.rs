//! A conservative reader of `sh` scripts: what they run, define, assign and test.

mod lex;
mod scan;

pub(crate) use lex::{literal, Part};
pub(crate) use scan::{scan, Command, Scan};
