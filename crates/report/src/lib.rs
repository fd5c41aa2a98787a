//! The results of `vmlane test` and every report made of them. A run is a stream of
//! records (start, a result per case as it ends, end), kept as JSON lines in the results
//! directory; the human view, JUnit, KTAP and KCIDB are views of those records, rewritten
//! as each case ends so a run cut short still leaves valid reports.
#![deny(missing_docs)]

mod files;
pub mod human;
pub mod junit;
pub mod kcidb;
pub mod ktap;
mod merge;
mod result;

pub use files::{write_atomically, write_record as write_record_to, JsonLines, ReportFiles};
pub use merge::{merge, read_run, MergeError, Merged};
pub use result::{
    now, tail, time_of, Attempt, CaseResult, KernelInfo, PlannedCase, Record, RunEnd, RunInfo,
    Shard, ShardKind, OUTPUT_TAIL_BYTES,
};

/// A run as the reports see it: what was planned, what ended, and how the run ended (`None`
/// while it is still going or when it was killed).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The start record.
    pub run: RunInfo,
    /// Results in matrix order.
    pub results: Vec<CaseResult>,
    /// The end record.
    pub end: Option<RunEnd>,
}

impl Report {
    /// A run with no results yet.
    pub fn new(run: RunInfo) -> Report {
        Report {
            run,
            results: Vec::new(),
            end: None,
        }
    }

    /// Adds a result, keeping matrix order.
    pub fn add(&mut self, result: CaseResult) {
        let at = self.results.partition_point(|r| r.index <= result.index);
        self.results.insert(at, result);
    }

    /// Planned cases without a result.
    pub fn not_run(&self) -> impl Iterator<Item = &PlannedCase> {
        self.run
            .planned
            .iter()
            .filter(|p| !self.results.iter().any(|r| r.index == p.index))
    }

    /// One line about how the run stands, for the end of a report.
    pub fn state(&self) -> String {
        match &self.end {
            None => "the run was still going or was killed when this was written".into(),
            Some(end) if end.interrupted => format!(
                "the run was interrupted: {} cases finished, {} not run",
                end.finished, end.not_run
            ),
            Some(end) if end.not_run > 0 => format!(
                "the run ended early: {} cases finished, {} not run",
                end.finished, end.not_run
            ),
            Some(end) => format!("the run is complete: {} cases", end.finished),
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
