//! The lint on small FreeBSD-shaped trees built in temporary directories: a clean one, and
//! each check's findings when something is taken away. The ELF files are real FreeBSD ones,
//! linked at test time with clang and lld.

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

/// The files (and, ending in `/`, directories) a tree needs to lint clean: rc, rc.subr, the defaults, the accounts and
/// terminals, an fstab with fsck for its UFS root, and the programs the scripts below call.
const CLEAN: &[(&str, &str)] = &[
    ("etc/rc", RC),
    ("etc/rc.subr", RC_SUBR),
    (
        "etc/defaults/rc.conf",
        "devd_enable=\"YES\"\nsshd_enable=\"NO\"\nldconfig_paths=\"/usr/local/lib\"\n",
    ),
    ("etc/rc.conf", "hostname=\"vm\"\n"),
    (
        "etc/fstab",
        "/dev/vtbd0\t/\tufs\trw\t1\t1\ndevfs\t/dev\tdevfs\trw\t0\t0\ntmpfs\t/tmp\ttmpfs\trw\t0\t0\n",
    ),
    ("etc/ttys", "console none unknown off secure\n"),
    ("etc/master.passwd", "root::0:0::0:0:root:/root:/bin/sh\n"),
    ("etc/group", "wheel:*:0:root\n"),
    ("etc/login.conf", "default:\\\n\t:path=/sbin /bin:\n"),
    ("etc/devd.conf", "options { };\n"),
    ("etc/rc.d/cleartmp", CLEARTMP),
    ("etc/rc.d/devd", DEVD),
    ("etc/rc.d/sshd", SSHD),
    ("etc/rc.d/pccard", NOSTART),
    ("dev/", ""),
    ("tmp/", ""),
    ("bin/sh", "sh"),
    ("bin/cat", "cat"),
    ("bin/rm", "rm"),
    ("bin/date", "date"),
    ("sbin/rcorder", "rcorder"),
    ("sbin/sysctl", "sysctl"),
    ("sbin/devd", "devd"),
    ("sbin/fsck", "fsck"),
    ("sbin/fsck_ffs", "fsck_ffs"),
    ("usr/bin/mktemp", "mktemp"),
    ("usr/bin/find", "find"),
];

/// rc in FreeBSD's style: its own PATH, programs by path and by name, a function.
const RC: &str = r#"#!/bin/sh
HOME=/
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME PATH
_boot=`date +%s`
. /etc/rc.subr
load_rc_config
files=`rcorder /etc/rc.d/* 2>/dev/null`
for _rc_elem in ${files}; do
	run_rc_script ${_rc_elem} ${_boot}
done
if [ -x /sbin/optional ]; then /sbin/optional; fi
exit 0
"#;

/// A stand-in rc.subr: the functions scripts call, one of which runs a program.
const RC_SUBR: &str = r#"
load_rc_config() { . /etc/defaults/rc.conf; }
checkyesno() { case "$1" in [Yy][Ee][Ss]) return 0 ;; *) return 1 ;; esac; }
run_rc_command() {
	case "$1" in
	start) eval $start_cmd ;;
	esac
	_stamp=$(/sbin/sysctl -n kern.boottime)
}
run_rc_script() { /bin/sh "$1" start; }
"#;

/// No rcvar: always runs. Its commands are in a function, a substitution, a here-document
/// (not run) and behind a condition (not counted).
const CLEARTMP: &str = r#"#!/bin/sh
# PROVIDE: cleartmp
. /etc/rc.subr

name="cleartmp"
start_cmd="${name}_start"
stop_cmd=":"

cleartmp_start()
{
	local tmp
	tmp="$(mktemp -d /tmp/cleartmp.XXXXXX)"
	cat > /dev/null <<EOF
wipe-everything now
EOF
	find -x /tmp/. ! -name . -prune -exec rm -rf -- {} +
	cleartmp_helper
	if checkyesno clear_tmp_X; then
		only-sometimes
	fi
	rm -rf "$tmp"
}

cleartmp_helper()
{
	:
}

load_rc_config $name
run_rc_command "$1"
"#;

/// Enabled in the defaults; its program comes from `command=`.
const DEVD: &str = r#"#!/bin/sh
# PROVIDE: devd
# KEYWORD: nojail shutdown
. /etc/rc.subr

name="devd"
desc="Device state change daemon"
rcvar="devd_enable"
command="/sbin/${name}"

load_rc_config $name
run_rc_command "$1"
"#;

/// Disabled: whatever it calls is not looked at.
const SSHD: &str = r#"#!/bin/sh
. /etc/rc.subr
name="sshd"
rcvar="sshd_enable"
command="/usr/sbin/${name}"
sshd_keygen() { ssh-keygen -A; }
start_precmd="sshd_keygen"
load_rc_config $name
run_rc_command "$1"
"#;

/// Started by hand only.
const NOSTART: &str = r#"#!/bin/sh
# KEYWORD: nojail nostart
. /etc/rc.subr
name="pccard"
start_cmd="pccard_start"
pccard_start() { pccardd -f /etc/pccard.conf; }
run_rc_command "$1"
"#;

/// A tree under a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn clean() -> Tree {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
        };
        for (path, contents) in CLEAN {
            match path.strip_suffix('/') {
                Some(dir) => fs::create_dir_all(tree.root().join(dir)).unwrap(),
                None => tree.write(path, contents.as_bytes()),
            }
        }
        tree
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn write(&self, path: &str, contents: &[u8]) {
        let path = self.root().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn remove(&self, path: &str) {
        fs::remove_file(self.root().join(path)).unwrap();
    }

    fn link(&self, path: &str, target: impl AsRef<std::path::Path>) {
        let path = self.root().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        symlink(target, path).unwrap();
    }

    fn lint(&self) -> Vec<String> {
        lint_tree(&self.root())
            .iter()
            .map(|f| f.to_string())
            .collect()
    }
}

#[test]
fn a_clean_tree_has_no_findings() {
    let tree = Tree::clean();
    assert_eq!(tree.lint(), Vec::<String>::new());
}

#[test]
fn enabled_scripts_are_scanned_for_the_commands_the_image_lacks() {
    let tree = Tree::clean();
    tree.remove("usr/bin/mktemp");
    tree.remove("sbin/devd");
    tree.remove("bin/date");
    tree.remove("sbin/sysctl");
    assert_eq!(
        tree.lint(),
        [
            "etc/rc: calls date, which the image lacks",
            "etc/rc.d/cleartmp: calls mktemp, which the image lacks",
            "etc/rc.d/devd: runs /sbin/devd (its command), which the image lacks",
            "etc/rc.subr: calls /sbin/sysctl, which the image lacks",
        ]
    );
}

#[test]
fn a_disabled_script_is_not_scanned_until_rc_conf_enables_it() {
    let tree = Tree::clean();
    tree.write("etc/rc.conf", b"sshd_enable=\"YES\"\ndevd_enable=\"NO\"\n");
    tree.remove("sbin/devd");
    tree.remove("etc/devd.conf");
    assert_eq!(
        tree.lint(),
        [
            "etc/rc.d/sshd: calls ssh-keygen, which the image lacks",
            "etc/rc.d/sshd: runs /usr/sbin/sshd (its command), which the image lacks",
            "etc/services: missing; inetd and sshd (enabled) look up their ports in it",
            "etc/ssh/sshd_config: missing; sshd (sshd_enable) will not start without it",
        ]
    );
}

#[test]
fn fsck_pass_numbers_need_an_fsck_and_pseudo_filesystems_none() {
    let tree = Tree::clean();
    tree.write(
        "etc/fstab",
        b"# Device Mountpoint FStype Options Dump Pass#\n\
          /dev/vtbd0 / ufs rw 1 1\n\
          devfs /dev devfs rw 0 2\n\
          /dev/vtbd1 /data msdosfs rw 0 2\n\
          fdesc /dev/fd fdescfs rw 0 0\n\
          /dev/vtbd2 /mnt ufs rw,noauto 0 0\n",
    );
    tree.remove("sbin/fsck_ffs");
    assert_eq!(
        tree.lint(),
        [
            "etc/fstab: devfs on /dev has fsck pass 2; devfs has no fsck, so it must be 0",
            "etc/fstab: mount point /data (for /dev/vtbd1) is not a directory in the image",
            "etc/fstab: msdosfs on /data has fsck pass 2, but the image lacks /sbin/fsck_msdosfs",
            "etc/fstab: ufs on / has fsck pass 1, but the image lacks /sbin/fsck_ufs and /sbin/fsck_ffs",
        ]
    );
    tree.write("etc/fstab", b"tmpfs /tmp tmpfs rw 0 0\n");
    assert_eq!(
        tree.lint(),
        ["etc/fstab: no entry for /, where the loader finds the root file system"]
    );
}

#[test]
fn the_files_rc_reads_are_named_with_why() {
    let tree = Tree::clean();
    for path in [
        "etc/ttys",
        "etc/master.passwd",
        "etc/devd.conf",
        "etc/defaults/rc.conf",
    ] {
        tree.remove(path);
    }
    tree.write("etc/pwd.db", b"db");
    tree.write("etc/rc.conf", b"devd_enable=\"YES\"\n");
    assert_eq!(
        tree.lint(),
        [
            "etc/defaults/rc.conf: missing; load_rc_config reads every setting's default from it",
            "etc/devd.conf: missing; devd (devd_enable) reads its rules from it",
            "etc/ttys: missing; init reads the terminals to run getty on from it",
        ]
    );
}

#[test]
fn a_missing_interpreter_is_one_finding_naming_its_scripts() {
    let tree = Tree::clean();
    tree.write(
        "usr/local/etc/rc.d/agent",
        b"#!/usr/local/bin/python3\nprint()\n",
    );
    assert_eq!(
        tree.lint(),
        ["usr/local/bin/python3: missing; the interpreter of usr/local/etc/rc.d/agent"]
    );
    tree.remove("bin/sh");
    let lint = tree.lint();
    assert!(
        lint.contains(&"bin/sh: missing; the interpreter of 4 rc.d scripts (etc/rc.d/cleartmp, etc/rc.d/devd, etc/rc.d/pccard, ...)".to_string()),
        "{lint:#?}"
    );
}

/// clang-19 and ld.lld for FreeBSD: `None` (and a note) when missing and not required.
fn freebsd_linker() -> Option<(PathBuf, Option<PathBuf>)> {
    let find = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    let lld = find("ld.lld-19").or_else(|| find("ld.lld"));
    match find("clang-19") {
        Some(clang) if lld.is_some() || find("lld-19").is_some() => Some((clang, lld)),
        _ if std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but clang-19 and lld are not installed (scripts/setup installs them)")
        }
        _ => {
            println!("skipped: the ELF checks need clang-19 and lld (scripts/setup installs them)");
            None
        }
    }
}

/// FreeBSD ELF files, linked here: stub libraries `libgeom.so.5` and `libloop.so.1`, and a
/// program needing both, with FreeBSD's run-time linker as its interpreter.
struct Elves {
    _dir: tempfile::TempDir,
    libgeom: PathBuf,
    libloop: PathBuf,
    program: PathBuf,
}

fn link_elves() -> Option<Elves> {
    let (clang, lld) = freebsd_linker()?;
    let dir = tempfile::tempdir().unwrap();
    let cc = |args: &[&str]| {
        let mut command = Command::new(&clang);
        command
            .args([
                "--target=x86_64-unknown-freebsd15.0",
                "-nostdlib",
                "-fuse-ld=lld",
                "-fPIC",
            ])
            .current_dir(dir.path());
        if let Some(lld) = &lld {
            command.arg(format!("--ld-path={}", lld.display()));
        }
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    fs::write(
        dir.path().join("geom.c"),
        "int geom_probe(void) { return 5; }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("loop.c"),
        "int loop_probe(void) { return 1; }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("prog.c"),
        "int geom_probe(void); int loop_probe(void);\n\
         void _start(void) { geom_probe(); loop_probe(); for (;;) {} }\n",
    )
    .unwrap();
    cc(&[
        "-shared",
        "-Wl,-soname,libgeom.so.5",
        "-o",
        "libgeom.so.5",
        "geom.c",
    ]);
    cc(&[
        "-shared",
        "-Wl,-soname,libloop.so.1",
        "-o",
        "libloop.so.1",
        "loop.c",
    ]);
    cc(&[
        "-Wl,--dynamic-linker=/libexec/ld-elf.so.1",
        "-o",
        "prog",
        "prog.c",
        "-L.",
        "-l:libgeom.so.5",
        "-l:libloop.so.1",
    ]);
    Some(Elves {
        libgeom: dir.path().join("libgeom.so.5"),
        libloop: dir.path().join("libloop.so.1"),
        program: dir.path().join("prog"),
        _dir: dir,
    })
}

/// The clean tree with the program in /bin, its libraries in /lib and /usr/local/lib (an
/// ldconfig_paths directory, through a symlink), and a run-time linker.
fn tree_with_elves(elves: &Elves) -> Tree {
    let tree = Tree::clean();
    tree.write("bin/geomprobe", &fs::read(&elves.program).unwrap());
    tree.write("lib/libgeom.so.5", &fs::read(&elves.libgeom).unwrap());
    tree.write(
        "usr/local/lib/libloop.so.1.0",
        &fs::read(&elves.libloop).unwrap(),
    );
    tree.link("usr/local/lib/libloop.so.1", "libloop.so.1.0");
    // ld-elf.so.1 itself is a shared object without needs; a library stands in for it.
    tree.write("libexec/ld-elf.so.1", &fs::read(&elves.libgeom).unwrap());
    tree
}

#[test]
fn dynamic_programs_find_their_libraries_and_run_time_linker() {
    let Some(elves) = link_elves() else { return };
    let tree = tree_with_elves(&elves);
    assert_eq!(tree.lint(), Vec::<String>::new());

    tree.remove("lib/libgeom.so.5");
    tree.remove("libexec/ld-elf.so.1");
    assert_eq!(
        tree.lint(),
        [
            "bin/geomprobe: needs libgeom.so.5, which is in none of /lib /usr/lib /usr/local/lib",
            "bin/geomprobe: needs the run-time linker /libexec/ld-elf.so.1, which the image lacks",
        ]
    );
    // Out of the library path, it is not found either.
    tree.write("opt/lib/libgeom.so.5", &fs::read(&elves.libgeom).unwrap());
    assert_eq!(tree.lint().len(), 2);
}

#[test]
fn links_out_of_the_tree_and_loops_lead_nowhere() {
    let Some(elves) = link_elves() else { return };
    let tree = tree_with_elves(&elves);
    // The host's copy exists, but the image's kernel would look under the image's root.
    tree.link("lib/libgeom.so.5", &elves.libgeom);
    tree.link("usr/local/lib/libloop.so.1", "libloop.so.1");
    tree.link("usr/lib/libloop.so.1", "../local/lib/libloop.so.1");
    assert_eq!(
        tree.lint(),
        [
            "bin/geomprobe: needs libgeom.so.5, which is in none of /lib /usr/lib /usr/local/lib",
            "bin/geomprobe: needs libloop.so.1, but /usr/lib/libloop.so.1 is a symlink loop",
        ]
    );
}

#[test]
fn a_base_txz_and_a_built_image_lint_as_their_tree_does() {
    let tree = Tree::clean();
    // vmlane's boot hook calls these.
    for program in ["bin/dd", "usr/bin/head", "sbin/reboot"] {
        tree.write(program, b"x");
    }
    tree.remove("sbin/devd");
    let expected = ["etc/rc.d/devd: runs /sbin/devd (its command), which the image lacks"];
    assert_eq!(tree.lint(), expected);

    let txz = tree.dir.path().join("base.txz");
    let tar = Command::new("tar")
        .arg("-cJf")
        .arg(&txz)
        .arg("-C")
        .arg(tree.root())
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let scratch = tree.dir.path().join("scratch");
    let from_txz: Vec<String> = lint(&txz, &scratch)
        .unwrap()
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(from_txz, expected);
    assert_eq!(
        fs::read_dir(&scratch).unwrap().count(),
        0,
        "unpacked tree left"
    );

    let Ok(makefs) = crate::Makefs::find() else {
        println!("skipped: the image half needs makefs");
        return;
    };
    let request = crate::FreeBsdImage {
        source: tree.root(),
        kernel: None,
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let cache = tree.dir.path().join("cache");
    let built = crate::build_freebsd_image(&request, &makefs, &cache).unwrap();
    let staged: Vec<String> = built.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(staged, expected, "the build lints its staged tree");
    let from_image: Vec<String> = lint(&built.path, &scratch)
        .unwrap()
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(from_image, expected);

    // A cache hit reports the same; a strict build refuses, before or after caching.
    let again = crate::build_freebsd_image(&request, &makefs, &cache).unwrap();
    assert!(again.cached);
    assert_eq!(again.findings, built.findings);
    let strict = crate::FreeBsdImage {
        strict: true,
        ..request
    };
    let error = crate::build_freebsd_image(&strict, &makefs, &cache).unwrap_err();
    assert!(matches!(error, crate::ImageError::Lint { .. }), "{error}");
    assert!(error.to_string().contains(expected[0]), "{error}");
    // Uncached, with a makefs that would fail: the lint stops the build first.
    let never = crate::Makefs::at("/bin/false");
    let fresh = tree.dir.path().join("fresh-cache");
    let error = crate::build_freebsd_image(&strict, &never, &fresh).unwrap_err();
    assert!(matches!(error, crate::ImageError::Lint { .. }), "{error}");
}

#[test]
fn unreadable_and_foreign_inputs_are_errors_not_findings() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let missing = lint(&dir.path().join("missing"), &scratch).unwrap_err();
    assert!(matches!(missing, LintError::Read { .. }), "{missing}");
    let text = dir.path().join("notes.txt");
    fs::write(&text, vec![b'x'; 100_000]).unwrap();
    let foreign = lint(&text, &scratch).unwrap_err();
    assert!(matches!(foreign, LintError::Kind { .. }), "{foreign}");
    assert!(
        foreign.to_string().contains("neither a directory"),
        "{foreign}"
    );
    let broken_xz = dir.path().join("base.txz");
    fs::write(&broken_xz, b"\xfd7zXZ\0not really").unwrap();
    let unpack = lint(&broken_xz, &scratch).unwrap_err();
    assert!(matches!(unpack, LintError::Unpack(_)), "{unpack}");
}

/// A UFS image with bytes overwritten all over: every lint ends, with findings or an error.
#[test]
fn a_damaged_image_never_panics() {
    let Ok(makefs) = crate::Makefs::find() else {
        println!("skipped: needs makefs");
        return;
    };
    let tree = Tree::clean();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("clean.img");
    crate::minimal_image_with(&makefs, b"init", b"run", &[], &image).unwrap();
    let undamaged = lint(&image, &tree.root()).unwrap();
    assert!(
        undamaged.iter().any(|f| f.path == "etc/rc"),
        "read through UFS: {undamaged:?}"
    );
    let bytes = fs::read(&image).unwrap();
    let damaged = dir.path().join("damaged.img");
    let mut read = 0;
    let mut seed = 0x2545_f491_u64;
    for round in 0..64 {
        let mut copy = bytes.clone();
        for _ in 0..(1 + round % 16) * 8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % copy.len();
            copy[at] = (seed >> 32) as u8;
        }
        // The superblock and the first inodes, where damage matters most.
        if round % 2 == 0 {
            let at = 65536 + (seed as usize % 2048);
            copy[at] ^= 0xff;
        }
        fs::write(&damaged, &copy).unwrap();
        read += usize::from(lint(&damaged, &tree.root()).is_ok());
    }
    // Most damage is past the superblock: those images are read, as far as they go.
    assert!(read > 16, "{read} of 64 read");
}

#[test]
fn rc_enabled_reads_rc_conf_as_checkyesno_does() {
    let tree = Tree::clean();
    let enabled = |name| super::rc_enabled(&tree.root(), name).unwrap();
    assert_eq!(enabled("sshd_enable"), Some(false), "unset is off");
    tree.write(
        "etc/rc.conf",
        b"sshd_enable=\"yes\"\ndevd_enable=\"$(pick)\"\n",
    );
    assert_eq!(enabled("sshd_enable"), Some(true));
    assert_eq!(enabled("devd_enable"), None, "not worked out");
}
