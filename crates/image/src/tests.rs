//! Images written with the real makefs and read back with the UFS reader.

use crate::full::build;
use crate::ufs_read::{Ufs, IFDIR, IFLNK, IFREG};
use crate::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The host's makefs, or `None` (and a note) when it is missing and not required.
fn makefs() -> Option<Makefs> {
    match Makefs::find() {
        Ok(makefs) => Some(makefs),
        Err(error) if std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but {error}")
        }
        Err(error) => {
            println!("skipped: {error}");
            None
        }
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Bytes that differ block to block, so a misplaced block shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            ((i / 7) as u8)
                .wrapping_mul(31)
                .wrapping_add(seed ^ (i >> 15) as u8)
        })
        .collect()
}

/// An x86-64 ELF header branded with the FreeBSD OS ABI, then `body`: what vmlane's kernel
/// detection takes for a FreeBSD kernel.
fn fake_freebsd_kernel(body: &[u8]) -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little endian
    elf[6] = 1;
    elf[7] = 9; // ELFOSABI_FREEBSD
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(body);
    elf
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A small stand-in for a FreeBSD root tree: what the hook needs, an rc.conf, loader.conf
/// and fstab of its own, a stock kernel, a hard link and a symlink.
fn fake_root(dir: &Path) -> PathBuf {
    let root = dir.join("freebsd-root");
    write(&root.join("bin/sh"), b"sh", 0o555);
    write(&root.join("bin/test"), b"test", 0o555);
    fs::hard_link(root.join("bin/test"), root.join("bin/[")).unwrap();
    write(&root.join("etc/rc.subr"), b"# rc.subr\n", 0o444);
    write(&root.join("etc/rc.conf"), b"sshd_enable=\"YES\"\n", 0o644);
    write(
        &root.join("etc/fstab"),
        b"/dev/ada0p2 / ufs rw 1 1\n",
        0o644,
    );
    write(&root.join("boot/loader.conf"), b"zfs_load=\"NO\"", 0o644);
    write(
        &root.join("boot/kernel/kernel"),
        &fake_freebsd_kernel(b"stock"),
        0o555,
    );
    write(&root.join("boot/kernel/if_em.ko"), b"module", 0o555);
    std::os::unix::fs::symlink("../bin/sh", root.join("etc/sh-link")).unwrap();
    fs::create_dir_all(root.join("var/empty")).unwrap();
    root
}

/// Everything about a tree, to check that building from it changed nothing.
fn fingerprint(root: &Path) -> String {
    let mut key = crate::key::Key::new();
    crate::stage::Source::Dir(root.to_path_buf())
        .add_to(&mut key, true)
        .unwrap();
    key.finish()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_full_image_has_vmlanes_files_and_the_custom_kernel_beside_the_stock_one() {
    let Some(makefs) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let before = fingerprint(&root);
    // Large enough for single indirect blocks with 32K blocks.
    let kernel_bytes = fake_freebsd_kernel(&pattern(1_500_000, 3));
    let kernel = dir.path().join("kernel");
    fs::write(&kernel, &kernel_bytes).unwrap();
    let request = FreeBsdImage {
        source: root.clone(),
        kernel: Some(CustomKernel {
            path: kernel,
            name: "vmlane".into(),
        }),
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let cache = dir.path().join("cache");
    let started = Instant::now();
    let built = build_freebsd_image(&request, &makefs, &cache).unwrap();
    println!(
        "full image ({} MB) written in {:?}",
        fs::metadata(&built.path).unwrap().len() >> 20,
        started.elapsed()
    );
    assert!(!built.cached);
    assert!(built.path.starts_with(images_dir(&cache)));
    assert_eq!(fingerprint(&root), before, "the source tree was changed");

    let fs = Ufs::open(&built.path);
    let fstab = text(fs.file("/etc/fstab"));
    assert_eq!(fstab, crate::fstab());
    for line in fstab.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let pass: u32 = fields[5].parse().unwrap();
        assert_eq!(pass != 0, fields[2] == "ufs", "{line}");
    }
    assert!(fstab.contains("/dev/vtbd0\t/\tufs\trw\t1\t1\n"));

    let rc_conf = text(fs.file("/etc/rc.conf"));
    assert!(rc_conf.starts_with("sshd_enable=\"YES\"\n"), "{rc_conf}");
    for line in [
        "vmlane_enable=\"YES\"",
        "hostname=\"vmlane\"",
        "sendmail_enable=\"NONE\"",
    ] {
        assert!(
            rc_conf.lines().any(|l| l.starts_with(line)),
            "{line}: {rc_conf}"
        );
    }

    for (path, script) in [
        ("/etc/rc.d/vmlane", rc_script()),
        ("/etc/rc.d/vmlane_late", rc_late_script()),
    ] {
        let hook = fs.lookup(path).unwrap();
        assert_eq!(hook.kind(), IFREG);
        assert_eq!(hook.perm(), 0o555);
        assert_eq!(text(fs.read(&hook)), script);
    }
    // The relay the hook runs commands through on a VM with a channel.
    let relay = fs.lookup("/usr/libexec/vmlane-relay").unwrap();
    assert_eq!((relay.kind(), relay.perm()), (IFREG, 0o555));
    assert!(fs.read(&relay) == vmlane_guest_freebsd::relay_binary().unwrap());
    // Root's whoever built it: as root by staging, otherwise by the mtree spec.
    for path in [
        "/",
        "/etc/rc.d/vmlane",
        "/usr/libexec/vmlane-relay",
        "/bin/sh",
        "/boot/vmlane/kernel",
    ] {
        let inode = fs.lookup(path).unwrap();
        assert_eq!((inode.uid, inode.gid), (0, 0), "{path}");
    }

    let loader = text(fs.file("/boot/loader.conf"));
    assert!(loader.starts_with("zfs_load=\"NO\"\n"), "{loader}");
    for line in [
        "kernel=\"vmlane\"",
        "module_path=\"/boot/kernel;/boot/modules;/boot/vmlane\"",
        "boot_serial=\"YES\"",
        "console=\"comconsole\"",
    ] {
        assert!(loader.lines().any(|l| l == line), "{line}: {loader}");
    }

    let custom = fs.lookup("/boot/vmlane/kernel").unwrap();
    assert_eq!(custom.perm(), 0o555);
    assert_eq!(fs.read(&custom), kernel_bytes);
    assert_eq!(fs.names("/boot/vmlane"), ["kernel"], "no modules");
    assert_eq!(
        fs.file("/boot/kernel/kernel"),
        fake_freebsd_kernel(b"stock")
    );
    assert_eq!(fs.names("/boot/kernel"), ["if_em.ko", "kernel"]);

    let test = fs.lookup("/bin/test").unwrap();
    assert_eq!(test.ino, fs.lookup("/bin/[").unwrap().ino, "hard link kept");
    assert_eq!(test.nlink, 2);
    let link = fs.lookup("/etc/sh-link").unwrap();
    assert_eq!(link.kind(), IFLNK);
    assert_eq!(fs.read(&link), b"../bin/sh");
    assert_eq!(fs.lookup("/var/empty").unwrap().kind(), IFDIR);
}

#[test]
fn a_second_build_comes_from_the_cache_and_a_changed_source_does_not() {
    let Some(real) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let log = dir.path().join("makefs.log");
    let wrapper = dir.path().join("makefs");
    write(
        &wrapper,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.program().display()
        )
        .as_bytes(),
        0o755,
    );
    let makefs = Makefs::at(&wrapper);
    let cache = dir.path().join("cache");
    let request = FreeBsdImage {
        source: root.clone(),
        kernel: None,
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let runs = || fs::read_to_string(&log).unwrap_or_default().lines().count();

    let first = build_freebsd_image(&request, &makefs, &cache).unwrap();
    assert!(!first.cached);
    // One probe of which UFS version this makefs writes, once per Makefs; one image.
    assert_eq!(runs(), 2);
    let modified = fs::metadata(&first.path).unwrap().modified().unwrap();
    let second = build_freebsd_image(&request, &makefs, &cache).unwrap();
    assert_eq!((second.cached, runs()), (true, 2), "makefs ran again");
    assert_eq!(second.path, first.path);
    assert_eq!(second.version, first.version);
    assert_eq!(
        fs::metadata(&second.path).unwrap().modified().unwrap(),
        modified
    );

    fs::write(root.join("etc/rc.conf"), "sshd_enable=\"NO\"\n").unwrap();
    let third = build_freebsd_image(&request, &makefs, &cache).unwrap();
    assert_eq!((third.cached, runs()), (false, 3));
    assert_ne!(third.path, first.path);
    let rc_conf = text(Ufs::open(&third.path).file("/etc/rc.conf"));
    assert!(rc_conf.starts_with("sshd_enable=\"NO\"\n"), "{rc_conf}");

    let sized = FreeBsdImage {
        size: Some(96 << 20),
        ..request.clone()
    };
    let fourth = build_freebsd_image(&sized, &makefs, &cache).unwrap();
    assert!(!fourth.cached);
    assert_eq!(fs::metadata(&fourth.path).unwrap().len(), 96 << 20);
    let leftovers: Vec<_> = fs::read_dir(images_dir(&cache))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn a_base_txz_is_unpacked_with_its_hard_links_and_numeric_owners() {
    let Some(makefs) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let wall = root.join("usr/bin/wall");
    write(&wall, b"wall", 0o555);
    if is_root() {
        // tty is 4 on FreeBSD and 5 on Debian: names must not be mapped.
        std::os::unix::fs::chown(&wall, Some(0), Some(4)).unwrap();
    }
    fs::set_permissions(&wall, fs::Permissions::from_mode(0o2555)).unwrap();
    let txz = dir.path().join("base.txz");
    let status = Command::new("tar")
        .arg("-cJf")
        .arg(&txz)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let listing = Command::new("tar").arg("-tJf").arg(&txz).output().unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("./bin/["));

    let cache = dir.path().join("cache");
    let request = FreeBsdImage {
        source: txz.clone(),
        kernel: None,
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let built = build_freebsd_image(&request, &makefs, &cache).unwrap();
    let fs = Ufs::open(&built.path);
    assert_eq!(
        fs.lookup("/bin/test").unwrap().ino,
        fs.lookup("/bin/[").unwrap().ino
    );
    assert_eq!(fs.file("/bin/sh"), b"sh");
    assert!(text(fs.file("/etc/fstab")).contains("/dev/vtbd0"));
    assert!(text(fs.file("/etc/rc.conf")).contains("vmlane_enable=\"YES\""));
    let loader = text(fs.file("/boot/loader.conf"));
    assert!(!loader.contains("kernel="), "{loader}");
    let wall = fs.lookup("/usr/bin/wall").unwrap();
    assert_eq!(wall.perm(), 0o2555);
    if is_root() {
        assert_eq!((wall.uid, wall.gid), (0, 4));
    }
    assert!(
        build_freebsd_image(&request, &makefs, &cache)
            .unwrap()
            .cached
    );
}

#[test]
fn staged_as_another_user_everything_belongs_to_root() {
    let Some(makefs) = makefs() else { return };
    if !is_root() {
        println!("skipped: needs root to give the source another owner");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    write(&root.join("odd name #1=x"), b"x", 0o644);
    let chown = Command::new("chown")
        .args(["-hR", "1000:1000"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(chown.success());
    let request = FreeBsdImage {
        source: root,
        kernel: None,
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let cache = dir.path().join("cache");
    let as_root = build(&request, &makefs, &cache, true).unwrap();
    let fs = Ufs::open(&as_root.path);
    assert_eq!(
        fs.lookup("/bin/sh").unwrap().uid,
        1000,
        "owners kept as root"
    );

    let as_user = build(&request, &makefs, &cache, false).unwrap();
    assert_ne!(as_user.key, as_root.key);
    let fs = Ufs::open(&as_user.path);
    for path in [
        "/",
        "/bin",
        "/bin/sh",
        "/bin/[",
        "/etc/sh-link",
        "/etc/rc.d/vmlane",
        "/odd name #1=x",
    ] {
        let inode = fs.lookup(path).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!((inode.uid, inode.gid), (0, 0), "{path}");
    }
    assert_eq!(fs.read(&fs.lookup("/etc/sh-link").unwrap()), b"../bin/sh");
    assert_eq!(
        fs.lookup("/bin/[").unwrap().ino,
        fs.lookup("/bin/test").unwrap().ino
    );
}

#[test]
fn bad_inputs_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let cache = dir.path().join("cache");
    // A makefs that must never run: every refusal comes first.
    let makefs = Makefs::at("/bin/false");
    let request = |source: PathBuf, kernel: Option<(PathBuf, &str)>| FreeBsdImage {
        source,
        kernel: kernel.map(|(path, name)| CustomKernel {
            path,
            name: name.into(),
        }),
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let error = |r: FreeBsdImage| build_freebsd_image(&r, &makefs, &cache).unwrap_err();

    let plain = dir.path().join("notes.txt");
    fs::write(&plain, "hello").unwrap();
    let e = error(request(plain.clone(), None));
    assert!(matches!(e, ImageError::SourceKind { .. }), "{e}");
    assert!(e.to_string().contains("notes.txt"), "{e}");

    let missing = dir.path().join("no-such-tree");
    let e = error(request(missing, None));
    assert!(matches!(e, ImageError::Read { .. }), "{e}");
    assert!(e.to_string().contains("no-such-tree"), "{e}");

    let e = error(request(root.clone(), Some((plain.clone(), "vmlane"))));
    assert!(matches!(e, ImageError::NotFreeBsdKernel { .. }), "{e}");
    assert!(e.to_string().contains("notes.txt"), "{e}");

    let linux = dir.path().join("vmlinux");
    let mut elf = fake_freebsd_kernel(&[0u8; 256]);
    elf[7] = 0; // no FreeBSD brand: a Linux-style ELF without a banner
    fs::write(&linux, elf).unwrap();
    let e = error(request(root.clone(), Some((linux, "vmlane"))));
    assert!(matches!(e, ImageError::NotFreeBsdKernel { .. }), "{e}");

    let kernel = dir.path().join("kernel");
    fs::write(&kernel, fake_freebsd_kernel(b"k")).unwrap();
    for name in ["kernel", "", "a/b"] {
        let e = error(request(root.clone(), Some((kernel.clone(), name))));
        assert!(matches!(e, ImageError::KernelName { .. }), "{name:?}: {e}");
    }
    let e = error(request(
        root.clone(),
        Some((dir.path().join("gone"), "vmlane")),
    ));
    assert!(e.to_string().contains("gone"), "{e}");

    // Past the checks, the makefs that fails says so.
    let e = error(request(root.clone(), None));
    assert!(matches!(e, ImageError::Makefs { .. }), "{e}");

    if Makefs::find().is_ok() {
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let e = error(request(empty, None));
        assert!(matches!(e, ImageError::NotARootTree { .. }), "{e}");
        assert!(e.to_string().contains("bin/sh"), "{e}");
    }
}

#[test]
fn a_too_small_size_says_to_give_a_larger_one() {
    let Some(makefs) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    write(&root.join("big"), &pattern(4 << 20, 1), 0o644);
    let request = FreeBsdImage {
        source: root,
        kernel: None,
        size: Some(2 << 20),
        strict: false,
        deploy: Default::default(),
    };
    let cache = dir.path().join("cache");
    let e = build_freebsd_image(&request, &makefs, &cache).unwrap_err();
    assert!(e.to_string().contains("--size"), "{e}");
}

#[test]
fn a_minimal_image_has_init_run_mount_points_and_extra_files() {
    let Some(makefs) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let init = pattern(700_000, 5);
    let probe = dir.path().join("probe");
    fs::write(&probe, pattern(2_000_000, 9)).unwrap();
    let run = b"argv=sh\0-c\0true\0".to_vec();
    let out = dir.path().join("minimal.img");
    let files = [
        ExtraFile {
            path: "/vmlane/bin/probe",
            content: Content::File(&probe),
            mode: 0o555,
        },
        ExtraFile {
            path: "/etc/motd",
            content: Content::Bytes(b"hello\n"),
            mode: 0o644,
        },
    ];
    let started = Instant::now();
    minimal_image_with(&makefs, &init, &run, &files, &out).unwrap();
    let took = started.elapsed();
    let size = fs::metadata(&out).unwrap().len();
    println!(
        "minimal image ({} KiB, 2.7 MB of files) written in {took:?}",
        size >> 10
    );
    let started = Instant::now();
    minimal_image_with(&makefs, b"init", b"run", &[], &out).unwrap();
    println!(
        "minimal image with only init and run ({} KiB) written in {:?}",
        fs::metadata(&out).unwrap().len() >> 10,
        started.elapsed()
    );
    minimal_image_with(&makefs, &init, &run, &files, &out).unwrap();

    let fs = Ufs::open(&out);
    assert_eq!(fs.names("/"), ["dev", "etc", "host", "tmp", "vmlane"]);
    assert_eq!(fs.names("/vmlane"), ["bin", "init", "run"]);
    for mount in MOUNT_POINTS {
        assert_eq!(fs.lookup(mount).unwrap().kind(), IFDIR);
        assert!(fs.names(mount).is_empty(), "{mount}");
    }
    let checks: [(&str, &[u8], u16); 4] = [
        (INIT_PATH, &init, 0o555),
        (RUN_PATH, &run, 0o444),
        ("/vmlane/bin/probe", &fs::read(&probe).unwrap(), 0o555),
        ("/etc/motd", b"hello\n", 0o644),
    ];
    for (path, bytes, mode) in checks {
        let inode = fs.lookup(path).unwrap();
        assert_eq!(inode.perm(), mode, "{path}");
        assert_eq!((inode.uid, inode.gid), (0, 0), "{path}");
        assert_eq!(fs.read(&inode), bytes, "{path}");
    }
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the probe and the image: {left:?}");
}

#[test]
fn a_minimal_image_refuses_bad_paths_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.img");
    let files = [ExtraFile {
        path: "/tmp/probe",
        content: Content::Bytes(b""),
        mode: 0o555,
    }];
    let e = minimal_image_with(&Makefs::at("/bin/false"), b"", b"", &files, &out).unwrap_err();
    assert!(matches!(e, ImageError::GuestPath { .. }), "{e}");
    let missing = dir.path().join("missing-probe");
    let files = [ExtraFile {
        path: "/vmlane/bin/probe",
        content: Content::File(&missing),
        mode: 0o555,
    }];
    let e = minimal_image_with(&Makefs::at("/bin/false"), b"", b"", &files, &out).unwrap_err();
    assert!(e.to_string().contains("missing-probe"), "{e}");
    assert!(!out.exists());
}

#[test]
fn a_metalog_gives_owners_and_setuid_modes_and_stays_out_of_the_image() {
    let Some(makefs) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    // As `installworld -DNO_ROOT` leaves a world: plain modes on the files, the real ones in
    // METALOG, names from the world's own accounts.
    write(&root.join("usr/bin/su"), b"su", 0o555);
    write(&root.join("usr/bin/wall"), b"wall", 0o555);
    write(
        &root.join("etc/master.passwd"),
        b"root:*:0:0::0:0:Charlie &:/root:/bin/sh\n",
        0o600,
    );
    write(
        &root.join("etc/group"),
        b"wheel:*:0:root\ntty:*:4:\n",
        0o644,
    );
    write(
        &root.join("METALOG"),
        b"#mtree 2.0\n./usr/bin/su type=file uname=root gname=wheel mode=04555 flags=schg\n\
          ./usr/bin/wall type=file uname=root gname=tty mode=02555\n\
          ./etc/master.passwd type=file uname=root gname=wheel mode=0600\n",
        0o644,
    );
    let request = FreeBsdImage {
        source: root,
        kernel: None,
        size: None,
        strict: false,
        deploy: Default::default(),
    };
    let cache = dir.path().join("cache");
    for keep_owners in [false, true] {
        let built = build(&request, &makefs, &cache, keep_owners).unwrap();
        let fs = Ufs::open(&built.path);
        let su = fs.lookup("/usr/bin/su").unwrap();
        assert_eq!(
            (su.perm(), su.uid, su.gid),
            (0o4555, 0, 0),
            "su, keep_owners {keep_owners}"
        );
        let wall = fs.lookup("/usr/bin/wall").unwrap();
        assert_eq!(
            (wall.perm(), wall.gid),
            (0o2555, 4),
            "wall, keep_owners {keep_owners}"
        );
        assert!(
            fs.lookup("/METALOG").is_none(),
            "METALOG is not part of the system"
        );
        assert_eq!(
            fs.lookup("/bin/sh").unwrap().perm(),
            0o555,
            "unlisted files keep theirs"
        );
    }
}

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2sga2V5IGZvciB0ZXN0cyBvbmx5 deploy@test";

#[test]
fn a_deployment_image_has_its_keys_sshd_settings_and_first_boot_script() {
    let Some(makefs) = makefs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    write(
        &root.join("etc/ssh/sshd_config"),
        b"PasswordAuthentication yes\n",
        0o644,
    );
    write(
        &root.join("etc/ssh/ssh_host_ed25519_key"),
        b"the source's",
        0o600,
    );
    let key_file = dir.path().join("key.pub");
    fs::write(&key_file, format!("{ED25519}\n")).unwrap();
    let keys = AuthorizedKeys::read(&key_file).unwrap();
    let deploy = Deploy {
        hostname: Some("web1".into()),
        root_keys: Some(keys.clone()),
        users: vec![
            Account::parse(&format!("alice:{}", key_file.display())).unwrap(),
            Account::parse("bob").unwrap(),
        ],
        sshd: true,
        dhcp: Some(DEFAULT_DHCP_INTERFACE.into()),
    };
    let request = FreeBsdImage {
        source: root.clone(),
        kernel: None,
        size: None,
        strict: false,
        deploy,
    };
    let cache = dir.path().join("cache");
    let built = build_freebsd_image(&request, &makefs, &cache).unwrap();
    let fs = Ufs::open(&built.path);

    let rc_conf = text(fs.file("/etc/rc.conf"));
    let last_hostname = rc_conf
        .lines()
        .rfind(|l| l.starts_with("hostname="))
        .unwrap();
    assert_eq!(last_hostname, "hostname=\"web1\"", "the last one wins");
    for line in ["sshd_enable=\"YES\"", "ifconfig_vtnet0=\"DHCP\""] {
        assert!(rc_conf.lines().any(|l| l == line), "{line}: {rc_conf}");
    }

    let ssh = fs.lookup("/root/.ssh").unwrap();
    assert_eq!((ssh.kind(), ssh.perm(), ssh.uid), (IFDIR, 0o700, 0));
    let authorized = fs.lookup("/root/.ssh/authorized_keys").unwrap();
    assert_eq!((authorized.perm(), authorized.uid), (0o600, 0));
    assert_eq!(text(fs.read(&authorized)), format!("{ED25519}\n"));

    let sshd = text(fs.file("/etc/ssh/sshd_config"));
    assert!(sshd.starts_with("# Added by vmlane"), "{sshd}");
    assert!(sshd.ends_with("PasswordAuthentication yes\n"), "{sshd}");
    assert!(sshd.contains("UsePAM no\n"));
    assert_eq!(fs.names("/etc/ssh"), ["sshd_config"], "host keys left out");

    let script = fs.lookup("/etc/rc.d/vmlane_accounts").unwrap();
    assert_eq!(script.perm(), 0o555);
    let script = text(fs.read(&script));
    assert!(script.contains("# KEYWORD: firstboot"));
    assert!(script.contains("pw useradd -n alice -m"));
    assert!(script.contains("pw useradd -n bob -m"));
    assert!(script.contains(ED25519));
    let sentinel = fs.lookup("/firstboot").unwrap();
    assert_eq!(sentinel.kind(), IFREG);

    // Every setting is in the cache key.
    let plain = FreeBsdImage {
        deploy: Deploy::default(),
        ..request.clone()
    };
    let other_key = FreeBsdImage {
        deploy: Deploy {
            root_keys: Some(AuthorizedKeys {
                text: format!("{ED25519} another\n"),
                ..keys
            }),
            ..request.deploy.clone()
        },
        ..request.clone()
    };
    let again = build_freebsd_image(&request, &makefs, &cache).unwrap();
    assert!(again.cached);
    for other in [plain, other_key] {
        let built_other = build_freebsd_image(&other, &makefs, &cache).unwrap();
        assert_ne!(built_other.key, built.key);
    }
}

#[test]
fn bad_deployment_names_are_refused_before_anything_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let request = FreeBsdImage {
        source: dir.path().join("nothing"),
        kernel: None,
        size: None,
        strict: false,
        deploy: Deploy {
            hostname: Some("bad_name".into()),
            ..Deploy::default()
        },
    };
    let makefs = Makefs::at("/nonexistent/makefs");
    let error = build_freebsd_image(&request, &makefs, dir.path()).unwrap_err();
    assert!(matches!(error, ImageError::DeployName { .. }), "{error}");
}
