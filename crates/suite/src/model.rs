//! The suite file format, as serde reads it. Unknown keys are errors, so a misspelt
//! expectation fails loudly instead of silently checking nothing.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use vmlane_spec::{DiskSpec, RwDir};

/// One suite file, after loading.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// The tests of every file, in file order then test order.
    pub tests: Vec<Test>,
}

/// What a file holds: defaults and tests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuiteFile {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "test")]
    pub tests: Vec<RawTest>,
}

/// Settings every test of a file starts from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub kernels: Option<Vec<String>>,
    pub timeout: Option<f64>,
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub rwdirs: Vec<String>,
}

/// A test as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTest {
    pub name: String,
    pub command: Command,
    pub kernels: Option<Vec<String>>,
    pub timeout: Option<f64>,
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub append: Vec<String>,
    #[serde(default)]
    pub disks: Vec<String>,
    #[serde(default)]
    pub rwdirs: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub cold: bool,
    #[serde(default)]
    pub expect: Expectations,
}

/// The command: an argv list, run as given, or a string, run by `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// `command = ["./probe", "--op", "1"]`.
    Argv(Vec<String>),
    /// `command = "make -C tests check"`.
    Shell(String),
}

impl Command {
    /// The argv the guest runs.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Argv(argv) => argv.clone(),
            Command::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
        }
    }
}

/// A test ready to run: defaults applied, values checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// Unique within the suite.
    pub name: String,
    /// The file it came from, for messages and relative paths.
    pub file: PathBuf,
    /// The guest's argv.
    pub argv: Vec<String>,
    /// Kernels named in the suite (empty: the caller's default).
    pub kernels: Vec<String>,
    /// Seconds before the run is ended and reported as a hang.
    pub timeout: Option<f64>,
    /// Virtual CPUs.
    pub cpus: Option<u32>,
    /// Guest memory in MiB.
    pub memory_mib: Option<u32>,
    /// Extra environment for the command.
    pub env: BTreeMap<String, String>,
    /// Extra kernel command-line arguments.
    pub append: Vec<String>,
    /// Disks as `--disk` takes them (images relative to the suite file), attached as
    /// `/dev/vda`, `/dev/vdb`, ...
    pub disks: Vec<DiskSpec>,
    /// Host directories the guest may write to, as `--rwdir` takes them (host directories
    /// relative to the suite file), the defaults' then the test's own.
    pub rwdirs: Vec<RwDir>,
    /// `--profile` names or paths, the defaults' then the test's own, loaded by the launch
    /// engine. Paths (with a `/` or ending in `.toml`) are already made absolute against the
    /// suite file's directory; bare names are looked up as `--profile` does.
    pub profiles: Vec<String>,
    /// Always booted, never restored from a saved guest: for tests that must see a boot of
    /// their own.
    pub cold: bool,
    /// What must hold afterwards.
    pub expect: Expectations,
}

/// What must hold after a run. Every field is optional; an empty table still fails on an
/// unexpected kernel splat.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The command's exit status (default 0).
    pub exit: Option<i32>,
    /// Console lines that must appear.
    #[serde(default)]
    pub console: Vec<ConsoleLine>,
    /// Whether `console` must match in the order given.
    #[serde(default)]
    pub console_in_order: bool,
    /// Console lines that must not appear.
    #[serde(default)]
    pub console_absent: Vec<ConsoleLine>,
    /// Lines the command's stdout must contain.
    #[serde(default)]
    pub stdout: Vec<ConsoleLine>,
    /// JSON-line events (from stdout or the console) matched by partial objects.
    #[serde(default)]
    pub events: Vec<serde_json::Value>,
    /// Kernel failure reports this test expects (a panic it provokes, say).
    #[serde(default)]
    pub splats: Vec<ExpectedSplat>,
    /// Where the command's KTAP (KUnit, kselftest) appears; each subtest is then a result.
    pub ktap: Option<KtapSource>,
    /// A golden console log, relative to the suite file, compared after normalisation.
    pub golden: Option<PathBuf>,
    /// Extra normalisations for the golden comparison, applied after the built-in ones.
    #[serde(default)]
    pub substitutions: Vec<Substitution>,
}

/// The stream a test's KTAP is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KtapSource {
    /// The command's stdout (kselftest).
    Stdout,
    /// The serial console (KUnit writes to the kernel log). Such a test always boots: KUnit
    /// built into the kernel runs before the guest could have been saved, so a restored one
    /// would only repeat the saved boot's results.
    Console,
}

/// A line to look for: plain text, or a regex.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ConsoleLine {
    /// `"Linux version"`: a substring.
    Text(String),
    /// `{ regex = "BUG: .*" }`.
    Regex {
        /// The pattern (Rust `regex` syntax).
        regex: String,
    },
}

/// A kernel failure report a test expects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSplat {
    /// The kind: `panic`, `bug`, `warning`, `oops`, `kasan`, `ubsan`, `lockdep`, `hung_task`,
    /// `rcu_stall`, `freebsd_panic`, `fatal_trap`, `debugger`.
    pub kind: Option<String>,
    /// A substring of its first line, e.g. `TSC not initialized`.
    pub contains: Option<String>,
}

/// A golden-log normalisation: every match of `regex` becomes `replace`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Substitution {
    /// The pattern.
    pub regex: String,
    /// Its replacement (`$1` refers to groups).
    pub replace: String,
}
