//! `vmlane report merge`: the results files of a partitioned run's shards, made into the one
//! report the unsharded run would have written, and told apart when a shard is missing,
//! doubled or was cut short.

use crate::result::{Record, RunEnd, RunInfo};
use crate::Report;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A run read back from its results file.
pub fn read_run(path: &Path) -> Result<Report, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut report: Option<Report> = None;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|source| MergeError::Parse {
            path: path.to_path_buf(),
            line: number + 1,
            source,
        })?;
        match (record, report.as_mut()) {
            (Record::Start(run), None) => report = Some(Report::new(run)),
            (Record::Result(result), Some(report)) => report.add(*result),
            (Record::End(end), Some(report)) => report.end = Some(end),
            _ => {
                return Err(MergeError::Shape {
                    path: path.to_path_buf(),
                    line: number + 1,
                })
            }
        }
    }
    report.ok_or_else(|| MergeError::Empty(path.to_path_buf()))
}

/// What the merge made, and what it found wrong with the shards.
#[derive(Debug)]
pub struct Merged {
    /// The combined report, in matrix order.
    pub report: Report,
    /// Missing, doubled or unfinished shards; empty when the shards make the whole run.
    pub problems: Vec<String>,
}

/// Merges the runs of one suite's shards.
pub fn merge(runs: Vec<(PathBuf, Report)>) -> Result<Merged, MergeError> {
    let Some((_, first)) = runs.first() else {
        return Err(MergeError::Nothing);
    };
    let suite = first.run.suite.clone();
    let matrix_size = first.run.matrix_size;
    let vmlane_version = first.run.vmlane_version.clone();
    let mut problems = Vec::new();
    let mut by_shard: BTreeMap<usize, Vec<&Path>> = BTreeMap::new();
    let mut shard_count = None;
    for (path, report) in &runs {
        if report.run.suite != suite || report.run.matrix_size != matrix_size {
            return Err(MergeError::Mismatch {
                path: path.clone(),
                suite: report.run.suite.clone(),
                expected: suite,
            });
        }
        match report.run.shard {
            Some(shard) => {
                if shard_count
                    .is_some_and(|(count, kind)| (count, kind) != (shard.count, shard.kind))
                {
                    problems.push(format!(
                        "{}: shard {shard} does not split the matrix as the other shards do",
                        path.display()
                    ));
                }
                shard_count.get_or_insert((shard.count, shard.kind));
                by_shard.entry(shard.index).or_default().push(path);
            }
            None => by_shard.entry(0).or_default().push(path),
        }
        if report.end.is_none() {
            problems.push(format!(
                "{}: the run has no end: it was killed or is still going",
                path.display()
            ));
        }
    }
    if let Some((count, kind)) = shard_count {
        let missing: Vec<String> = (1..=count)
            .filter(|k| !by_shard.contains_key(k))
            .map(|k| format!("{}:{k}/{count}", kind_name(kind)))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("missing shards: {}", missing.join(", ")));
        }
    }
    for (index, paths) in &by_shard {
        if paths.len() > 1 {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            problems.push(format!(
                "{} came more than once: {}",
                if *index == 0 {
                    "an unsharded run".to_string()
                } else {
                    format!("shard {index}")
                },
                names.join(", ")
            ));
        }
    }
    let mut planned = Vec::new();
    let mut results = Vec::new();
    let mut ends = Vec::new();
    let mut started = Vec::new();
    for (_, report) in runs {
        started.push(report.run.started_at.clone());
        planned.extend(report.run.planned);
        results.extend(report.results);
        ends.extend(report.end);
    }
    planned.sort_by_key(|p| p.index);
    planned.dedup_by_key(|p| p.index);
    let run = RunInfo {
        suite,
        shard: None,
        planned,
        matrix_size,
        started_at: started.into_iter().min().unwrap_or_default(),
        vmlane_version,
    };
    let mut report = Report::new(run);
    for result in results {
        if !report.results.iter().any(|r| r.index == result.index) {
            report.add(result);
        }
    }
    let not_run = report.not_run().count();
    report.end = Some(RunEnd {
        finished: report.results.len(),
        not_run,
        interrupted: ends.iter().any(|e| e.interrupted),
        ended_at: ends
            .iter()
            .map(|e| e.ended_at.clone())
            .max()
            .unwrap_or_default(),
        exit_code: ends.iter().map(|e| e.exit_code).max().unwrap_or(125),
    });
    Ok(Merged { report, problems })
}

fn kind_name(kind: crate::ShardKind) -> &'static str {
    match kind {
        crate::ShardKind::Count => "count",
        crate::ShardKind::Hash => "hash",
    }
}

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing given.
    #[error("no results to merge: give the results directories of the shards (vmlane test --results DIR)")]
    Nothing,
    /// A results file is unreadable.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a results record.
    #[error("{path}:{line}: not a vmlane results record")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Records out of order (a result before the start, two starts).
    #[error("{path}:{line}: records out of order; is this a file vmlane test wrote?")]
    Shape {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
    },
    /// No start record.
    #[error("{0} holds no run")]
    Empty(PathBuf),
    /// Shards of different suites or matrices.
    #[error("{path} is a run of suite {suite:?} (or of another matrix), not of {expected:?}: merge the shards of one run")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Its suite.
        suite: String,
        /// The first file's suite.
        expected: String,
    },
}
