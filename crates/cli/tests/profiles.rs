//! `--profile` and `vmlane profile` end to end, on real kernels and real QEMU: vmlane's own
//! kernel where it can (it boots fastest), a Debian one for NUMA (vmlane's has none).

mod common;

use common::{assert_code, kernels, text, Sandbox, TestKernel};
use std::process::{Command, Output};

fn kernel(label: &str) -> Option<TestKernel> {
    kernels().into_iter().find(|k| k.label == label)
}

/// `vmlane run` in the sandbox with a user config directory of its own.
fn run(sandbox: &Sandbox, kernel: &TestKernel, extra: &[&str], argv: &[&str]) -> Output {
    let output = sandbox
        .command(kernel, extra, argv)
        .env("XDG_CONFIG_HOME", sandbox.root.path().join("config"))
        .output()
        .expect("start vmlane");
    sandbox.assert_nothing_left(kernel);
    output
}

fn write_profile(sandbox: &Sandbox, name: &str, text: &str) {
    let dir = sandbox.work().join(".vmlane/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

#[test]
fn zfs_scratch_gives_four_one_gib_disks() {
    let Some(kernel) = kernel("vmlane-built") else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = run(
        &sandbox,
        &kernel,
        &["--profile", "zfs-scratch"],
        &["sh", "-c", "cat /sys/block/vd?/size"],
    );
    assert_code(&kernel, &output, 0);
    assert_eq!(text(&output.stdout), "2097152\n".repeat(4));
}

#[test]
fn debug_mounts_debugfs_and_tracefs_and_panics_on_warn() {
    let Some(kernel) = kernel("vmlane-built") else {
        return;
    };
    let sandbox = Sandbox::new();
    let script = "cat /proc/sys/kernel/panic_on_warn; \
                  mountpoint -q /sys/kernel/debug && echo debugfs; \
                  grep -q ' /sys/kernel/tracing tracefs ' /proc/mounts && echo tracefs";
    let output = run(
        &sandbox,
        &kernel,
        &["--profile", "debug"],
        &["sh", "-c", script],
    );
    assert_code(&kernel, &output, 0);
    assert_eq!(text(&output.stdout), "1\ndebugfs\ntracefs\n");
}

#[test]
fn setup_runs_on_both_sides_files_are_placed_and_the_exit_code_passes() {
    let Some(kernel) = kernel("vmlane-built") else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.work().join("data")).unwrap();
    std::fs::write(sandbox.work().join("data/greeting"), "hello\n").unwrap();
    write_profile(
        &sandbox,
        "setup",
        r#"
host_setup = ["echo from-host > \"$VMLANE_SCRATCH/marker\""]
guest_setup = ["echo setup-ran", "test -f /etc/placed/greeting"]
files = [{ from = "../../data/greeting", to = "/etc/placed/greeting" }]
env = { FROM_PROFILE = "p", OVERRIDDEN = "p" }
"#,
    );
    let output = run(
        &sandbox,
        &kernel,
        &["--profile", "setup", "-e", "OVERRIDDEN=flag"],
        &[
            "sh",
            "-c",
            "cat /etc/placed/greeting \"$VMLANE_SCRATCH/marker\"; echo $FROM_PROFILE $OVERRIDDEN; exit 7",
        ],
    );
    assert_code(&kernel, &output, 7);
    assert_eq!(
        text(&output.stdout),
        "setup-ran\nhello\nfrom-host\np flag\n"
    );

    write_profile(&sandbox, "fails", "guest_setup = [\"false\"]\n");
    let output = run(
        &sandbox,
        &kernel,
        &["--profile", "fails"],
        &["echo", "never"],
    );
    assert_code(&kernel, &output, 125);
    assert!(text(&output.stdout).is_empty());
    assert!(
        text(&output.stderr).contains("guest setup failed: false"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn bad_profiles_fail_before_boot() {
    let Some(kernel) = kernel("vmlane-built") else {
        return;
    };
    let sandbox = Sandbox::new();
    let expect_error = |extra: &[&str], wanted: &str| {
        let output = run(&sandbox, &kernel, extra, &["echo", "never"]);
        assert_code(&kernel, &output, 125);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(wanted), "{stderr}");
        assert!(!stderr.contains("Linux version"), "{stderr}");
    };
    expect_error(
        &["--profile", "nothing"],
        "no profile named `nothing`; looked for",
    );
    write_profile(&sandbox, "typo", "cpus = 1\n\nmemroy = \"1G\"\n");
    expect_error(
        &["--profile", "typo"],
        ".vmlane/profiles/typo.toml:3: unknown field `memroy`",
    );
    write_profile(
        &sandbox,
        "missing",
        "files = [{ from = \"nope\", to = \"/x\" }]\n",
    );
    expect_error(&["--profile", "missing"], "nope does not exist");
    write_profile(&sandbox, "hostfail", "host_setup = [\"exit 4\"]\n");
    expect_error(
        &["--profile", "hostfail"],
        "host setup command `exit 4` failed",
    );
    write_profile(&sandbox, "module", "modules = [\"no_such_module\"]\n");
    expect_error(&["--profile", "module"], "no module `no_such_module`");
}

#[test]
fn numa2_gives_the_guest_two_nodes() {
    let Some(kernel) = kernel("debian-cloud") else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = run(
        &sandbox,
        &kernel,
        &["--profile", "numa2"],
        &["sh", "-c", "ls -d /sys/devices/system/node/node*; nproc"],
    );
    assert_code(&kernel, &output, 0);
    assert_eq!(
        text(&output.stdout),
        "/sys/devices/system/node/node0\n/sys/devices/system/node/node1\n2\n"
    );
    assert!(
        !text(&output.stderr).contains("reported"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn profile_list_and_show() {
    let sandbox = Sandbox::new();
    write_profile(&sandbox, "mine", "description = \"my own\"\ncpus = 2\n");
    let vmlane = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .args(args)
            .current_dir(sandbox.work())
            .env("XDG_CONFIG_HOME", sandbox.root.path().join("config"))
            .output()
            .unwrap()
    };
    let output = vmlane(&["profile", "list"]);
    assert!(output.status.success());
    let listing = text(&output.stdout);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{listing}"))
            .to_string()
    };
    assert!(line("mine").contains(".vmlane/profiles/mine.toml"));
    assert!(line("mine").ends_with("my own"));
    for shipped in ["debug", "numa2", "zfs-scratch"] {
        assert!(line(shipped).contains("shipped"), "{listing}");
    }
    let output = vmlane(&["profile", "show", "debug", "mine"]);
    assert!(output.status.success());
    let shown = text(&output.stdout);
    assert!(shown.contains("cpus = 2\n"), "{shown}");
    assert!(shown.contains("append = [\"panic_on_warn=1\"]"), "{shown}");
    assert!(shown.contains("description = \"my own\""), "{shown}");
    let output = vmlane(&["profile", "show", "nothing"]);
    assert_eq!(output.status.code(), Some(125));
}
