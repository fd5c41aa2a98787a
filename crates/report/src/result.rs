//! What a run of `vmlane test` records: the run itself (suite, shard, planned cases), each
//! case's result, and the run's end. These are the JSON lines every report is made from, so
//! shards written on different machines can be merged later.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use vmlane_checks::ktap::KtapResult;
use vmlane_suite::Status;

/// Captured output kept in a result is cut to this many bytes (its end), so a flooding test
/// cannot make a report unreadable.
pub const OUTPUT_TAIL_BYTES: usize = 16 * 1024;

/// One line of a results file: the run starts, cases end, the run ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first line.
    Start(RunInfo),
    /// A case that ended, in the order cases ended.
    Result(Box<CaseResult>),
    /// The last line; a file without it is from a run that was killed.
    End(RunEnd),
}

/// What a run set out to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The suite's name (its file's or directory's name).
    pub suite: String,
    /// The share of the matrix this run made, when partitioned.
    pub shard: Option<Shard>,
    /// The (test, kernel) cases this run was to make, in matrix order.
    pub planned: Vec<PlannedCase>,
    /// The whole matrix's size before partitioning, so a merge can tell a missing shard.
    pub matrix_size: usize,
    /// When the run started, RFC 3339.
    pub started_at: String,
    /// The vmlane that made it.
    pub vmlane_version: String,
}

/// A case a run was to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCase {
    /// Its place in the whole (unpartitioned) matrix: reports list cases in this order.
    pub index: usize,
    /// The test's name.
    pub test: String,
    /// The kernel as given, or `default`.
    pub kernel: String,
}

/// `--partition`: which share of how many, and how the matrix was split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// `count` (every N-th case) or `hash` (by test name).
    pub kind: ShardKind,
    /// 1-based.
    pub index: usize,
    /// Number of shares.
    pub count: usize,
}

/// How cases are dealt to shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardKind {
    /// Round robin over the matrix.
    Count,
    /// By a hash of the test's name and kernel: stable when tests are added.
    Hash,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ShardKind::Count => "count",
            ShardKind::Hash => "hash",
        };
        write!(f, "{kind}:{}/{}", self.index, self.count)
    }
}

/// One (test, kernel) result, with what it printed and the paths of everything it left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The suite's name.
    pub suite: String,
    /// The test's name.
    pub test: String,
    /// The kernel as given, or `default`.
    pub kernel: String,
    /// The shard that ran it.
    pub shard: Option<Shard>,
    /// Its place in the whole matrix.
    pub index: usize,
    /// How it ended; [`Status::Flaky`] when it passed only on a retry.
    pub status: Status,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// Wall time of the last attempt and its checks.
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// The command's exit status, when it finished.
    pub exit: Option<i32>,
    /// Why it did not pass, one entry per failed check.
    pub reasons: Vec<String>,
    /// Unexpected kernel reports, each with its backtrace.
    pub splats: Vec<String>,
    /// KTAP subtests, when the test declared KTAP output.
    pub subtests: Vec<KtapResult>,
    /// Attempts before the last one that did not pass (`--retries`).
    #[serde(default)]
    pub retries: Vec<Attempt>,
    /// The kernel it ran on, when vmlane got as far as finding it.
    #[serde(default)]
    pub kernel_info: Option<KernelInfo>,
    /// The end of the command's stdout.
    #[serde(default)]
    pub stdout_tail: String,
    /// The end of the command's stderr.
    #[serde(default)]
    pub stderr_tail: String,
    /// The end of the guest console.
    #[serde(default)]
    pub console_tail: String,
    /// The guest console.
    pub console_log: PathBuf,
    /// The command's stdout.
    pub stdout_path: PathBuf,
    /// The command's stderr.
    pub stderr_path: PathBuf,
    /// Writable host directories the test was given (`--rwdir`): where its artifacts are.
    #[serde(default)]
    pub artifacts: Vec<PathBuf>,
}

/// An attempt that did not pass, kept when the case is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// How it ended.
    pub status: Status,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// Its wall time.
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// Why it did not pass.
    pub reasons: Vec<String>,
    /// Its console log.
    pub console_log: PathBuf,
}

/// What the reports say about the kernel a case ran on (KCIDB's build and checkout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The image booted.
    pub image: PathBuf,
    /// `uname -r`, when known.
    pub release: Option<String>,
    /// The `.config` it was built with, when known.
    pub config: Option<PathBuf>,
    /// The build tree's commit, for a kernel from a git tree.
    pub git_commit: Option<String>,
    /// `git describe` of that commit.
    pub git_describe: Option<String>,
    /// The guest's architecture, as KCIDB names it (`x86_64`).
    pub architecture: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Cases with a result.
    pub finished: usize,
    /// Planned cases that never ran (interrupted, `--fail-fast`).
    pub not_run: usize,
    /// Ended by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// When, RFC 3339.
    pub ended_at: String,
    /// The run's exit code.
    pub exit_code: i32,
}

impl CaseResult {
    /// A result not yet run, writing into `dir`.
    pub fn new(
        planned: &PlannedCase,
        suite: &str,
        shard: Option<Shard>,
        dir: &std::path::Path,
    ) -> CaseResult {
        CaseResult {
            suite: suite.into(),
            test: planned.test.clone(),
            kernel: planned.kernel.clone(),
            shard,
            index: planned.index,
            status: Status::Error,
            started_at: now(),
            duration: Duration::ZERO,
            exit: None,
            reasons: Vec::new(),
            splats: Vec::new(),
            subtests: Vec::new(),
            retries: Vec::new(),
            kernel_info: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            console_tail: String::new(),
            console_log: dir.join("console.log"),
            stdout_path: dir.join("stdout"),
            stderr_path: dir.join("stderr"),
            artifacts: Vec::new(),
        }
    }

    /// Passed, at once or on a retry.
    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Passed | Status::Flaky)
    }
}

/// The current time, RFC 3339 with the local offset, as JUnit and KCIDB take it.
pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The local time at `instant`, as [`now`] gives it.
pub fn time_of(instant: std::time::Instant) -> String {
    let ago = chrono::Duration::from_std(instant.elapsed()).unwrap_or_default();
    (chrono::Local::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The last `limit` bytes of `bytes` as text, starting at a line when one starts nearby.
pub fn tail(bytes: &[u8], limit: usize) -> String {
    if bytes.len() <= limit {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut start = bytes.len() - limit;
    if let Some(newline) = bytes[start..].iter().position(|b| *b == b'\n') {
        if newline < 256 {
            start += newline + 1;
        }
    }
    format!(
        "[... {} bytes before this ...]\n{}",
        start,
        String::from_utf8_lossy(&bytes[start..])
    )
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_end_and_says_what_was_cut() {
        assert_eq!(tail(b"short", 10), "short");
        let text = format!("{}\nlast line\n", "x".repeat(100));
        let cut = tail(text.as_bytes(), 20);
        assert!(cut.ends_with("last line\n"), "{cut}");
        assert!(
            cut.starts_with("[... 101 bytes before this ...]\n"),
            "{cut}"
        );
    }

    #[test]
    fn shards_print_as_partition_takes_them() {
        let shard = Shard {
            kind: ShardKind::Hash,
            index: 2,
            count: 3,
        };
        assert_eq!(shard.to_string(), "hash:2/3");
    }
}
