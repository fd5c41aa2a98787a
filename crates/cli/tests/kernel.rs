//! `vmlane kernel`: the kernel scripts/setup built is cached, listed, and found again at once.

mod common;

use common::text;
use std::process::Command;

fn vmlane(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(args)
        .output()
        .expect("start vmlane")
}

#[test]
fn an_unchanged_rebuild_is_a_cache_hit_and_the_kernel_is_listed() {
    let kernels = common::kernels();
    let Some(built) = kernels.iter().find(|k| k.label == "vmlane-built") else {
        eprintln!("skipped: no vmlane-built kernel (scripts/setup builds one)");
        return;
    };
    let name = built
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let output = vmlane(&["kernel", "build", "--debian"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), name);
    assert!(
        text(&output.stderr).contains("already built"),
        "{}",
        text(&output.stderr)
    );

    let list = vmlane(&["kernel", "list"]);
    assert_eq!(list.status.code(), Some(0));
    let listing = text(&list.stdout);
    let line = listing
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not in:\n{listing}"));
    assert!(line.contains("vmlane minimal"), "{line}");
    assert!(listing.contains("packaged (modules)"), "{listing}");
}

#[test]
fn removing_an_unknown_kernel_is_an_error() {
    let output = vmlane(&["kernel", "rm", "no-such-kernel"]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        text(&output.stderr).contains("no kernel named no-such-kernel"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn building_from_a_directory_that_is_not_a_kernel_tree_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let output = vmlane(&["kernel", "build", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        text(&output.stderr).contains("is not a Linux source tree"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn an_option_the_tree_does_not_define_is_refused_before_building() {
    if !common::kernels().iter().any(|k| k.label == "vmlane-built") {
        eprintln!("skipped: no Debian linux-source built by scripts/setup");
        return;
    }
    let output = vmlane(&[
        "kernel",
        "build",
        "--debian",
        "-e",
        "CONFIG_NO_SUCH_OPTION_42",
    ]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no such config option"), "{stderr}");
    assert!(stderr.contains("CONFIG_NO_SUCH_OPTION_42"), "{stderr}");
    assert!(
        !stderr.contains("make tinyconfig"),
        "nothing was built: {stderr}"
    );
}

#[test]
fn a_listing_cut_off_by_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["kernel", "list"][..], &["man"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start vmlane");
        // The reader goes away before vmlane writes, as `| head -0` would.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {stderr}",
            output.status
        );
    }
}

#[test]
fn fetching_the_kernel_setup_fetched_finds_it_in_the_cache() {
    let kernels = common::kernels();
    let Some(cloud) = kernels.iter().find(|k| k.label == "debian-cloud") else {
        eprintln!("skipped: no Debian cloud kernel (scripts/setup fetches one)");
        return;
    };
    let output = vmlane(&["kernel", "fetch", "--arch", "amd64", "--flavour", "cloud"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let name = text(&output.stdout).trim().to_string();
    assert_eq!(name, cloud.dir.file_name().unwrap().to_string_lossy());
    assert!(
        text(&output.stderr).contains("already in the cache"),
        "{}",
        text(&output.stderr)
    );
    assert!(cloud.dir.join(format!("boot/vmlinux-{name}")).is_file());
    assert!(cloud.dir.join(format!("lib/modules/{name}")).is_dir());
}

#[test]
fn fetching_a_kernel_debian_does_not_build_names_the_way_to_one() {
    let output = vmlane(&["kernel", "fetch", "--arch", "ppc64"]);
    assert_eq!(output.status.code(), Some(125));
    let said = text(&output.stderr);
    assert!(said.contains("Debian has no ppc64"), "{said}");
    assert!(said.contains("vmlane kernel build --arch ppc64"), "{said}");
    assert!(text(&output.stdout).is_empty());
}

/// Ctrl-C as a terminal sends it, to vmlane and the apt-get it runs, mid-download: apt stops,
/// and vmlane removes the half-downloaded package before it exits as interrupted.
#[test]
fn ctrl_c_during_a_fetch_leaves_nothing_half_downloaded_in_the_cache() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&bin).unwrap();
    // apt as vmlane's fetch uses it: the metapackage names a kernel, and the download
    // writes part of the package, says so, and takes its time.
    let fakes = [
        (
            "apt-cache",
            "#!/bin/sh\necho linux-image-amd64\necho '  Depends: linux-image-6.1.0-99-amd64'\n",
        ),
        (
            "apt-get",
            "#!/bin/sh\ncase \" $* \" in *' download '*) : > half.deb; echo started >&2; exec sleep 60;; esac\n",
        ),
    ];
    for (name, script) in fakes {
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let child = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["kernel", "fetch", "--arch", "amd64"])
        .env("VMLANE_CACHE_DIR", &cache)
        .env("PATH", path)
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let scratch = cache.join(".fetch-6.1.0-99-amd64.partial");
    let started = std::time::Instant::now();
    while !scratch.join("half.deb").exists() {
        assert!(
            started.elapsed().as_secs() < 30,
            "the download never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The whole process group, as the terminal's Ctrl-C reaches it.
    let group = -(child.id() as i32);
    // SAFETY: kill() with a process group this test started.
    assert_eq!(unsafe { libc::kill(group, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by signal 2"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("apt-"))
        .collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}
