//! `vmlane image lint` and the lint inside `vmlane image build`, end to end: the finding lines
//! on stdout, the exit codes (0 clean, 1 findings, 125 unreadable input), the warnings a build
//! prints and `--strict` turning them into a refusal.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A FreeBSD-shaped root tree with everything its rc scripts call: `(path, contents)`, a
/// path ending in `/` being a directory.
const TREE: &[(&str, &str)] = &[
    ("etc/rc", "#!/bin/sh\nPATH=/sbin:/bin:/usr/sbin:/usr/bin\n. /etc/rc.subr\nload_rc_config\n_boot=`date +%s`\nexit 0\n"),
    ("etc/rc.subr", "load_rc_config() { . /etc/defaults/rc.conf; }\nrun_rc_command() { eval $start_cmd; }\n"),
    ("etc/defaults/rc.conf", "devd_enable=\"NO\"\nsshd_enable=\"NO\"\n"),
    ("etc/fstab", "/dev/vtbd0 / ufs rw 1 1\ndevfs /dev devfs rw 0 0\n"),
    ("etc/ttys", "console none unknown off secure\n"),
    ("etc/master.passwd", "root::0:0::0:0:root:/root:/bin/sh\n"),
    ("etc/group", "wheel:*:0:root\n"),
    ("etc/login.conf", "default:\\\n\t:path=/sbin /bin:\n"),
    ("etc/rc.d/cleartmp", CLEARTMP),
    ("dev/", ""),
    ("tmp/", ""),
    ("proc/", ""),
    ("bin/sh", "sh"),
    ("bin/cat", "cat"),
    ("bin/date", "date"),
    ("bin/rm", "rm"),
    ("bin/dd", "dd"),
    ("sbin/reboot", "reboot"),
    ("sbin/fsck", "fsck"),
    ("sbin/fsck_ffs", "fsck_ffs"),
    ("usr/bin/head", "head"),
    ("usr/bin/mktemp", "mktemp"),
];

const CLEARTMP: &str = r#"#!/bin/sh
# PROVIDE: cleartmp
. /etc/rc.subr
name="cleartmp"
start_cmd="${name}_start"
cleartmp_start()
{
	local tmp
	tmp="$(mktemp -d /tmp/cleartmp.XXXXXX)"
	cat <<EOF >/dev/null
not-a-command here
EOF
	rm -rf "$tmp"
}
load_rc_config $name
run_rc_command "$1"
"#;

fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for (path, contents) in TREE {
        match path.strip_suffix('/') {
            Some(sub) => fs::create_dir_all(root.join(sub)).unwrap(),
            None => write(&root, path, contents),
        }
    }
    root
}

fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn vmlane(args: &[&str], input: &Path, cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(args)
        .arg(input)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("VMLANE_CACHE_DIR")
        .output()
        .unwrap()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("image-lint-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

#[test]
fn lint_prints_one_finding_a_line_and_exits_0_1_or_125() {
    let dir = scratch();
    let root = tree(dir.path());
    let cache = dir.path().join("cache");

    let clean = vmlane(&["image", "lint"], &root, &cache);
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert_eq!(clean.status.code(), Some(0), "{stderr}");
    assert!(
        clean.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    fs::remove_file(root.join("usr/bin/mktemp")).unwrap();
    fs::remove_file(root.join("etc/ttys")).unwrap();
    write(
        &root,
        "etc/fstab",
        "/dev/vtbd0 / ufs rw 1 1\ndevfs /dev devfs rw 0 2\n",
    );
    let found = vmlane(&["image", "lint"], &root, &cache);
    assert_eq!(
        found.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    assert_eq!(
        lines(&found.stdout),
        [
            "etc/fstab: devfs on /dev has fsck pass 2; devfs has no fsck, so it must be 0",
            "etc/rc.d/cleartmp: calls mktemp, which the image lacks",
            "etc/ttys: missing; init reads the terminals to run getty on from it",
        ]
    );
    assert!(
        String::from_utf8_lossy(&found.stderr).contains("3 finding(s)"),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );

    let missing = vmlane(&["image", "lint"], &dir.path().join("missing"), &cache);
    assert_eq!(missing.status.code(), Some(125));
    assert!(missing.stdout.is_empty());
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, vec![b'x'; 70_000]).unwrap();
    let foreign = vmlane(&["image", "lint"], &notes, &cache);
    assert_eq!(foreign.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&foreign.stderr);
    assert!(stderr.contains("neither a directory"), "{stderr}");
}

/// The host's makefs, or `None` (and a note) when it is missing and not required.
fn has_makefs() -> bool {
    let found = Path::new("/usr/sbin/makefs").exists()
        || std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|dir| dir.join("makefs").is_file());
    if !found {
        if std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1") {
            panic!("VMLANE_E2E_REQUIRED=1 but makefs is not installed (run scripts/setup)");
        }
        println!("skipped: image builds need makefs (run scripts/setup)");
    }
    found
}

#[test]
fn image_build_warns_about_findings_and_strict_refuses() {
    if !has_makefs() {
        return;
    }
    let dir = scratch();
    let root = tree(dir.path());
    fs::remove_file(root.join("usr/bin/mktemp")).unwrap();
    fs::remove_file(root.join("bin/dd")).unwrap();
    let cache = dir.path().join("cache");
    let build = ["image", "build", "--os", "freebsd", "--from"];
    let built = vmlane(&build, &root, &cache);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert_eq!(built.status.code(), Some(0), "{stderr}");
    // Linted as staged: vmlane's fstab and boot hook in, the source's fstab gone.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("vmlane: warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            "etc/rc.d/cleartmp: calls mktemp, which the image lacks",
            "etc/rc.d/vmlane: calls dd, which the image lacks",
            "etc/rc.d/vmlane_late: calls dd, which the image lacks",
        ],
        "{stderr}"
    );
    let image = lines(&built.stdout).remove(0);

    // The image, read in place, has what its staged tree had.
    let linted = vmlane(&["image", "lint"], Path::new(&image), &cache);
    assert_eq!(linted.status.code(), Some(1));
    assert_eq!(lines(&linted.stdout), warnings);

    // Cached: the same warnings; strict: a refusal naming them.
    let again = vmlane(&build, &root, &cache);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already built"), "{stderr}");
    assert!(
        stderr.contains("vmlane: warning: etc/rc.d/vmlane: calls dd"),
        "{stderr}"
    );
    let strict = vmlane(
        &["image", "build", "--strict", "--os", "freebsd", "--from"],
        &root,
        &cache,
    );
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("etc/rc.d/cleartmp: calls mktemp"),
        "{stderr}"
    );
    assert!(strict.stdout.is_empty());

    write(&root, "bin/dd", "dd");
    write(&root, "usr/bin/mktemp", "mktemp");
    let clean = vmlane(
        &["image", "build", "--strict", "--os", "freebsd", "--from"],
        &root,
        &cache,
    );
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert_eq!(clean.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// The programs the first-boot accounts script runs.
const ACCOUNT_TOOLS: &[&str] = &[
    "usr/sbin/pw",
    "usr/sbin/pwd_mkdb",
    "usr/bin/cap_mkdb",
    "usr/bin/install",
    "usr/sbin/chown",
    "bin/chmod",
];

#[test]
fn the_first_boot_accounts_script_is_linted_like_any_rc_script() {
    if !has_makefs() {
        return;
    }
    let dir = scratch();
    let root = tree(dir.path());
    for tool in ACCOUNT_TOOLS {
        write(&root, tool, "tool");
    }
    let key = dir.path().join("alice.pub");
    fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2sga2V5IGZvciB0ZXN0cyBvbmx5 alice@test\n",
    )
    .unwrap();
    let user = format!("alice:{}", key.display());
    let cache = dir.path().join("cache");
    let build = |root: &Path| {
        let built = vmlane(
            &[
                "image", "build", "--os", "freebsd", "--user", &user, "--user", "bob", "--from",
            ],
            root,
            &cache,
        );
        let stderr = String::from_utf8_lossy(&built.stderr);
        assert_eq!(built.status.code(), Some(0), "{stderr}");
        PathBuf::from(lines(&built.stdout).remove(0))
    };
    let accounts_findings = |image: &Path| -> Vec<String> {
        let linted = vmlane(&["image", "lint"], image, &cache);
        lines(&linted.stdout)
            .into_iter()
            .filter(|l| l.starts_with("etc/rc.d/vmlane_accounts"))
            .collect()
    };

    let image = build(&root);
    assert_eq!(accounts_findings(&image), Vec::<String>::new());

    fs::remove_file(root.join("usr/sbin/pw")).unwrap();
    fs::remove_file(root.join("usr/bin/cap_mkdb")).unwrap();
    let image = build(&root);
    assert_eq!(
        accounts_findings(&image),
        [
            "etc/rc.d/vmlane_accounts: calls cap_mkdb, which the image lacks",
            "etc/rc.d/vmlane_accounts: calls pw, which the image lacks",
        ]
    );
}
