//! Test suites for `vmlane test`: what to run, on which kernels, and what must hold afterwards.
//! A suite is a TOML file or a directory of them; the matrix expands every test over its
//! kernels, and partitions split that matrix across CI machines.
#![deny(missing_docs)]

mod error;
mod golden;
mod judge;
mod load;
mod matrix;
mod model;
mod select;

pub use error::SuiteError;
pub use judge::{judge, Finished, JudgeError, Status, Verdict};
pub use load::{load, parse};
pub use matrix::{matrix, partition, Case, Partition, PartitionKind};
pub use model::{
    Command, ConsoleLine, Expectations, ExpectedSplat, KtapSource, Substitution, Suite, Test,
};
pub use select::{select, NamePattern, PatternError};
