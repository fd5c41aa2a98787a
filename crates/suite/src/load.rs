//! Reading suite files: a file, or every `*.toml` in a directory in name order; defaults
//! applied and every value checked before anything boots.

use crate::error::SuiteError;
use crate::model::{ConsoleLine, KtapSource, RawTest, Suite, SuiteFile, Test};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use vmlane_checks::splat::SplatKind;
use vmlane_spec::{DiskSpec, RwDir};

/// Loads a suite file or a directory of them.
pub fn load(path: &Path) -> Result<Suite, SuiteError> {
    let read_error = |source| SuiteError::Read {
        path: path.to_path_buf(),
        source,
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error)?
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SuiteError::Empty(path.to_path_buf()));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut tests = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| SuiteError::Read {
            path: file.clone(),
            source,
        })?;
        tests.extend(parse(&text, &file)?.tests);
    }
    check_unique_names(&tests)?;
    Ok(Suite { tests })
}

/// Parses one suite file's text; `path` names it in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Suite, SuiteError> {
    let file: SuiteFile = toml::from_str(text).map_err(|e| SuiteError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let tests = file
        .tests
        .into_iter()
        .map(|raw| resolve(raw, &file.defaults, path))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(&tests)?;
    Ok(Suite { tests })
}

fn resolve(
    raw: RawTest,
    defaults: &crate::model::Defaults,
    path: &Path,
) -> Result<Test, SuiteError> {
    let invalid = |message: String| SuiteError::Invalid {
        path: path.to_path_buf(),
        test: raw.name.clone(),
        message,
    };
    if raw.name.trim().is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    let argv = raw.command.argv();
    if argv.first().is_none_or(|program| program.is_empty()) {
        return Err(invalid("the command is empty".into()));
    }
    let timeout = raw.timeout.or(defaults.timeout);
    if let Some(secs) = timeout {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(invalid(format!(
                "timeout must be a positive number of seconds, got {secs}"
            )));
        }
    }
    let cpus = raw.cpus.or(defaults.cpus);
    if cpus == Some(0) {
        return Err(invalid("cpus must be at least 1".into()));
    }
    let memory_mib = match raw.memory.as_ref().or(defaults.memory.as_ref()) {
        Some(text) => Some(parse_memory(text).map_err(invalid)?),
        None => None,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let disks = raw
        .disks
        .iter()
        .map(
            |disk| match DiskSpec::parse(disk.as_ref(), |p| base.join(p).exists()) {
                Ok(DiskSpec::Image { path, read_only }) => Ok(DiskSpec::Image {
                    path: base.join(path),
                    read_only,
                }),
                Ok(scratch) => Ok(scratch),
                Err(message) => Err(invalid(message)),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    let rwdirs = defaults
        .rwdirs
        .iter()
        .chain(&raw.rwdirs)
        .map(|dir| match RwDir::parse(dir.as_ref()) {
            Ok(RwDir { host, guest }) => Ok(RwDir {
                host: base.join(host),
                guest,
            }),
            Err(message) => Err(invalid(message)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let profiles = defaults
        .profiles
        .iter()
        .chain(&raw.profiles)
        .map(|name| resolve_profile(name, base).map_err(&invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = defaults.env.clone();
    env.extend(raw.env);
    for key in env.keys() {
        if key.is_empty() || key.contains('=') {
            return Err(invalid(format!("environment name {key:?} is not usable")));
        }
    }
    let mut expect = raw.expect;
    for line in expect
        .console
        .iter()
        .chain(&expect.console_absent)
        .chain(&expect.stdout)
    {
        if let ConsoleLine::Regex { regex } = line {
            compile(regex).map_err(invalid)?;
        }
    }
    for substitution in &expect.substitutions {
        compile(&substitution.regex).map_err(invalid)?;
    }
    for event in &expect.events {
        if !event.is_object() {
            return Err(invalid(format!(
                "an expected event must be a table, got {event}"
            )));
        }
    }
    for splat in &expect.splats {
        if let Some(kind) = &splat.kind {
            if kind.parse::<SplatKind>().is_err() {
                return Err(invalid(format!(
                    "unknown splat kind {kind:?}; one of: {}",
                    SplatKind::NAMES.join(", ")
                )));
            }
        }
    }
    if let Some(golden) = &expect.golden {
        let base = path.parent().unwrap_or(Path::new("."));
        expect.golden = Some(base.join(golden));
    }
    Ok(Test {
        name: raw.name,
        file: path.to_path_buf(),
        argv,
        kernels: raw
            .kernels
            .or_else(|| defaults.kernels.clone())
            .unwrap_or_default(),
        timeout,
        cpus,
        memory_mib,
        env,
        append: raw.append,
        disks,
        rwdirs,
        profiles,
        // KUnit built into the kernel runs while it boots: a restored guest would report the
        // saved boot's results again instead of running the tests.
        cold: raw.cold || expect.ktap == Some(KtapSource::Console),
        expect,
    })
}

/// A profile path (as `--profile` tells them: a `/` or a `.toml` suffix) becomes absolute
/// against the suite file's directory, so the suite works from any directory; a bare name is
/// left for the profile search.
fn resolve_profile(name: &str, base: &Path) -> Result<String, String> {
    if name.trim().is_empty() {
        return Err("a profile name is empty".into());
    }
    if !(name.contains('/') || name.ends_with(".toml")) {
        return Ok(name.to_string());
    }
    let path = base.join(name);
    let path = std::path::absolute(&path).unwrap_or(path);
    Ok(path.to_string_lossy().into_owned())
}

fn compile(pattern: &str) -> Result<(), String> {
    regex::Regex::new(pattern)
        .map(drop)
        .map_err(|e| format!("bad regex {pattern:?}: {e}"))
}

/// `512`, `512M`, `2G` (MiB unless suffixed).
fn parse_memory(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (digits, scale) = match text.char_indices().last() {
        Some((i, 'M' | 'm')) => (&text[..i], 1),
        Some((i, 'G' | 'g')) => (&text[..i], 1024),
        _ => (text, 1),
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&mib| mib >= 64)
        .ok_or_else(|| format!("memory must be like 512M or 2G (at least 64M), got {text:?}"))
}

fn check_unique_names(tests: &[Test]) -> Result<(), SuiteError> {
    let mut seen = BTreeSet::new();
    for test in tests {
        if !seen.insert(test.name.as_str()) {
            return Err(SuiteError::Invalid {
                path: test.file.clone(),
                test: test.name.clone(),
                message: "another test has the same name; names identify results".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Command, ExpectedSplat};
    use serde_json::json;

    const SUITE: &str = r#"
[defaults]
kernels = ["6.1"]
timeout = 30
env = { LANG = "C" }
profiles = ["debug"]
rwdirs = ["results"]

[[test]]
name = "probe-enotsup"
command = ["./probe", "--op", "1"]
kernels = ["6.1.0-56-cloud-amd64", "6.1.192"]
memory = "1G"
env = { PROBE = "1" }
append = ["loglevel=7"]
disks = ["images/scratch.img", "base.img,ro", "64M"]
rwdirs = ["out", "/abs/dir=/guest/dir"]
profiles = ["zfs-scratch", "profiles/probe.toml"]
expect.exit = 0
expect.console = ["Linux version", { regex = "probe: op [0-9]+" }]
expect.console_in_order = true
expect.console_absent = ["BUG:"]
expect.events = [{ kind = "probe", data = { errno_name = "ENOTSUP" } }]
expect.ktap = "stdout"

[[test]]
name = "tsc-panic"
command = "echo c > /proc/sysrq-trigger"
cold = true
expect.splats = [{ kind = "panic", contains = "sysrq" }]
expect.golden = "golden/tsc.log"
expect.substitutions = [{ regex = "cpu[0-9]+", replace = "cpuN" }]
"#;

    fn parsed() -> Suite {
        parse(SUITE, Path::new("/suites/probe.toml")).unwrap()
    }

    #[test]
    fn kunit_read_from_the_console_always_boots() {
        let suite = parse(
            "[[test]]\nname = \"kunit\"\ncommand = [\"true\"]\nexpect.ktap = \"console\"\n\n\
             [[test]]\nname = \"kselftest\"\ncommand = [\"./run\"]\nexpect.ktap = \"stdout\"\n",
            Path::new("/suites/kunit.toml"),
        )
        .unwrap();
        assert!(
            suite.tests[0].cold,
            "KUnit at boot is on the console of a boot"
        );
        assert!(
            !suite.tests[1].cold,
            "a command's own KTAP is there after a restore too"
        );
    }

    #[test]
    fn tests_get_the_file_defaults_and_keep_their_own_values() {
        let suite = parsed();
        let probe = &suite.tests[0];
        assert_eq!(probe.argv, ["./probe", "--op", "1"]);
        assert_eq!(probe.kernels, ["6.1.0-56-cloud-amd64", "6.1.192"]);
        assert_eq!(probe.timeout, Some(30.0));
        assert_eq!(probe.memory_mib, Some(1024));
        assert_eq!(probe.append, ["loglevel=7"]);
        assert_eq!(
            probe.disks,
            [
                DiskSpec::Image {
                    path: "/suites/images/scratch.img".into(),
                    read_only: false
                },
                DiskSpec::Image {
                    path: "/suites/base.img".into(),
                    read_only: true
                },
                DiskSpec::Scratch { bytes: 64 << 20 },
            ]
        );
        let rwdir = |host: &str, guest: Option<&str>| RwDir {
            host: host.into(),
            guest: guest.map(PathBuf::from),
        };
        assert_eq!(
            probe.rwdirs,
            [
                rwdir("/suites/results", None),
                rwdir("/suites/out", None),
                rwdir("/abs/dir", Some("/guest/dir")),
            ],
            "the defaults' first, then the test's own; relative to the suite file"
        );
        assert_eq!(
            probe.profiles,
            ["debug", "zfs-scratch", "/suites/profiles/probe.toml"],
            "the defaults' first, then the test's own; paths relative to the suite file"
        );
        assert_eq!(probe.env.get("LANG").map(String::as_str), Some("C"));
        assert_eq!(probe.env.get("PROBE").map(String::as_str), Some("1"));
        assert_eq!(
            probe.expect.events,
            [json!({"kind": "probe", "data": {"errno_name": "ENOTSUP"}})]
        );
        assert!(probe.expect.console_in_order);
        assert_eq!(probe.expect.ktap, Some(crate::KtapSource::Stdout));
        let panic = &suite.tests[1];
        assert_eq!(panic.kernels, ["6.1"], "the default");
        assert_eq!(panic.profiles, ["debug"], "the default");
        assert_eq!(
            panic.rwdirs,
            [rwdir("/suites/results", None)],
            "the default"
        );
        assert!(panic.cold && !probe.cold);
        assert_eq!(panic.argv, ["sh", "-c", "echo c > /proc/sysrq-trigger"]);
        assert_eq!(
            panic.expect.splats,
            [ExpectedSplat {
                kind: Some("panic".into()),
                contains: Some("sysrq".into())
            }]
        );
        assert_eq!(
            panic.expect.golden.as_deref(),
            Some(Path::new("/suites/golden/tsc.log")),
            "relative to the suite file"
        );
    }

    fn error_of(text: &str) -> String {
        parse(text, Path::new("s.toml")).unwrap_err().to_string()
    }

    #[test]
    fn a_misspelt_expectation_is_an_error_not_a_silent_pass() {
        let error = error_of("[[test]]\nname = \"a\"\ncommand = [\"true\"]\nexpect.exti = 0\n");
        assert!(error.contains("exti"), "{error}");
        assert!(error.starts_with("s.toml"), "{error}");
    }

    #[test]
    fn bad_values_name_the_test_and_the_fix() {
        for (body, wanted) in [
            ("command = []", "the command is empty"),
            (
                "command = [\"true\"]\ntimeout = -1",
                "timeout must be a positive",
            ),
            (
                "command = [\"true\"]\nmemory = \"lots\"",
                "memory must be like 512M",
            ),
            ("command = [\"true\"]\ncpus = 0", "cpus must be at least 1"),
            (
                "command = [\"true\"]\nexpect.console = [{ regex = \"(\" }]",
                "bad regex",
            ),
            (
                "command = [\"true\"]\nexpect.splats = [{ kind = \"oopsie\" }]",
                "unknown splat kind",
            ),
            (
                "command = [\"true\"]\nexpect.events = [1]",
                "must be a table",
            ),
            (
                "command = [\"true\"]\ndisks = [\"1G,ro\"]",
                "cannot be read-only",
            ),
            (
                "command = [\"true\"]\nprofiles = [\"debug\", \"\"]",
                "a profile name is empty",
            ),
            (
                "command = [\"true\"]\nrwdirs = [\"out=guest\"]",
                "`guest` must be absolute",
            ),
            (
                "command = [\"true\"]\nrwdirs = [\"\"]",
                "give a host directory",
            ),
        ] {
            let error = error_of(&format!("[[test]]\nname = \"t1\"\n{body}\n"));
            assert!(error.contains("test \"t1\""), "{error}");
            assert!(error.contains(wanted), "{body}: {error}");
        }
    }

    #[test]
    fn an_empty_profile_in_the_defaults_is_an_error_naming_the_test() {
        let error = error_of(
            "[defaults]\nprofiles = [\" \"]\n[[test]]\nname = \"t1\"\ncommand = \"true\"\n",
        );
        assert!(error.contains("test \"t1\""), "{error}");
        assert!(error.contains("a profile name is empty"), "{error}");
    }

    #[test]
    fn profile_paths_in_a_relative_suite_file_become_absolute_and_names_stay_names() {
        let suite = parse(
            "[[test]]\nname = \"t\"\ncommand = \"true\"\n\
             profiles = [\"zfs-scratch\", \"local.toml\", \"../shared/p\"]\n",
            Path::new("suites/s.toml"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            suite.tests[0].profiles,
            [
                "zfs-scratch".to_string(),
                cwd.join("suites/local.toml").to_string_lossy().into_owned(),
                cwd.join("suites/../shared/p")
                    .to_string_lossy()
                    .into_owned(),
            ]
        );
    }

    #[test]
    fn a_test_without_profiles_anywhere_has_none() {
        let suite = parse(
            "[[test]]\nname = \"t\"\ncommand = \"true\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert!(suite.tests[0].profiles.is_empty());
    }

    #[test]
    fn duplicate_names_are_refused_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let test = "[[test]]\nname = \"same\"\ncommand = \"true\"\n";
        std::fs::write(dir.path().join("a.toml"), test).unwrap();
        std::fs::write(dir.path().join("b.toml"), test).unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("same name"), "{error}");
    }

    #[test]
    fn a_directory_loads_its_toml_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "[[test]]\nname = \"b\"\ncommand = \"true\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "[[test]]\nname = \"a\"\ncommand = \"true\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a suite").unwrap();
        let names: Vec<String> = load(dir.path())
            .unwrap()
            .tests
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(load(empty.path()), Err(SuiteError::Empty(_))));
    }

    #[test]
    fn a_shell_string_runs_through_sh() {
        assert_eq!(
            Command::Shell("a && b".into()).argv(),
            ["sh", "-c", "a && b"]
        );
    }
}
