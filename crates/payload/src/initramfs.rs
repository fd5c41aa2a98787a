//! The initramfs each run boots with: vmlane's init, `/dev/console`, and the needed modules
//! in load order, cached under a key of its inputs so an unchanged run reuses the file.

use crate::cpio::CpioWriter;
use crate::modules::{read_module, Module};
use crate::PayloadError;
use sha2::{Digest, Sha256};
use std::io::{self, BufWriter};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Changes whenever the archive layout does, so older cached files are not reused.
const LAYOUT: &[u8] = b"vmlane-initramfs-v1";

/// Directories created first, so every later entry has its parent.
const DIRS: [&str; 7] = [
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "vmlane",
    "vmlane/modules",
];

/// The cache key, in hex: a SHA-256 over the init bytes and each module's name, path, size
/// and mtime in order. Modules are only stat'ed, so a cache hit reads none of them.
pub fn key(init: &[u8], modules: &[Module]) -> Result<String, PayloadError> {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two different inputs run together into the same stream.
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(LAYOUT);
    field(init);
    for module in modules {
        let meta = module
            .path
            .metadata()
            .map_err(PayloadError::io("stat module", &module.path))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        field(module.name.as_bytes());
        field(module.path.as_os_str().as_encoded_bytes());
        field(&meta.len().to_le_bytes());
        field(&mtime.to_le_bytes());
    }
    Ok(hash
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Returns `cache_dir/initramfs/<key>.cpio`, writing it first if it is not there yet.
/// The archive is written to a temp file in the same directory and renamed into place, so a
/// concurrent run sees either no file or a whole one.
pub fn build_cached(
    cache_dir: &Path,
    init: &[u8],
    modules: &[Module],
) -> Result<PathBuf, PayloadError> {
    let dir = cache_dir.join("initramfs");
    let path = dir.join(format!("{}.cpio", key(init, modules)?));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(PayloadError::io("create", &dir))?;
    let temp = tempfile::Builder::new()
        .prefix(".initramfs-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(PayloadError::io("create a temp file in", &dir))?;
    write_archive(BufWriter::new(temp.as_file()), init, modules, &path)?;
    // tempfile creates files private to the user; the cache holds nothing secret.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(PayloadError::io("set permissions on", &path))?;
    temp.persist(&path).map_err(|error| PayloadError::Io {
        action: "move the finished initramfs to",
        path: path.clone(),
        source: error.error,
    })?;
    Ok(path)
}

/// Writes the whole archive, destined for `path`; module files are read (and decompressed)
/// one at a time so only one is in memory.
fn write_archive(
    out: impl io::Write,
    init: &[u8],
    modules: &[Module],
    path: &Path,
) -> Result<(), PayloadError> {
    let failed = |source| PayloadError::Io {
        action: "write the initramfs",
        path: path.to_path_buf(),
        source,
    };
    let mut cpio = CpioWriter::new(out);
    for dir in DIRS {
        cpio.dir(dir, 0o755).map_err(failed)?;
    }
    cpio.char_device("dev/console", 0o600, 5, 1)
        .map_err(failed)?;
    cpio.file("init", 0o755, init).map_err(failed)?;
    let mut list = String::new();
    for (position, module) in modules.iter().enumerate() {
        let file = module_file_name(position, modules.len(), &module.name);
        let elf = read_module(&module.path)?;
        cpio.file(&format!("vmlane/modules/{file}"), 0o644, &elf)
            .map_err(failed)?;
        list.push_str(&file);
        list.push('\n');
    }
    cpio.file("vmlane/modules.list", 0o644, list.as_bytes())
        .map_err(failed)?;
    cpio.finish().map_err(failed)?;
    Ok(())
}

/// `NN-name.ko`, with as many digits as the last position needs (at least two), so the
/// names also sort in load order.
fn module_file_name(position: usize, count: usize, name: &str) -> String {
    let width = count.saturating_sub(1).to_string().len().max(2);
    format!("{position:0width$}-{name}.ko")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::tests::parse;
    use crate::modules::tests::{fake_module, fake_tree};
    use crate::modules::ModuleIndex;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn modules_of(tree: &Path, wanted: &[&str]) -> Vec<Module> {
        ModuleIndex::open(tree).unwrap().closure(wanted).unwrap()
    }

    #[test]
    fn archive_holds_dirs_console_init_and_modules_in_load_order() {
        let tree = fake_tree(&[("kernel/a.ko", "b"), ("kernel/b.ko.xz", "")], &[]);
        let modules = modules_of(tree.path(), &["a"]);
        let cache = tempfile::tempdir().unwrap();
        let path = build_cached(cache.path(), b"INIT", &modules).unwrap();
        assert_eq!(path.parent().unwrap(), cache.path().join("initramfs"));
        let entries = parse(&fs::read(&path).unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "proc",
                "sys",
                "tmp",
                "run",
                "vmlane",
                "vmlane/modules",
                "dev/console",
                "init",
                "vmlane/modules/00-b.ko",
                "vmlane/modules/01-a.ko",
                "vmlane/modules.list",
            ]
        );
        assert_eq!((entries[7].1, entries[7].2), (0o020600, (5, 1)));
        assert_eq!(
            (entries[8].1, entries[8].3.as_slice()),
            (0o100755, &b"INIT"[..])
        );
        assert_eq!(entries[9].3, fake_module(""), "stored decompressed");
        assert_eq!(entries[10].3, fake_module("b"));
        assert_eq!(entries[11].3, b"00-b.ko\n01-a.ko\n");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [path.file_name().unwrap()], "no temp files left");
    }

    #[test]
    fn unchanged_inputs_reuse_the_file_without_rewriting_it() {
        let tree = fake_tree(&[("kernel/a.ko", "")], &[]);
        let modules = modules_of(tree.path(), &["a"]);
        let cache = tempfile::tempdir().unwrap();
        let first = build_cached(cache.path(), b"INIT", &modules).unwrap();
        let before = first.metadata().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            build_cached(cache.path(), b"INIT", &modules).unwrap(),
            first
        );
        let after = first.metadata().unwrap();
        assert_eq!(after.ino(), before.ino(), "not replaced");
        assert_eq!(
            after.modified().unwrap(),
            before.modified().unwrap(),
            "not rewritten"
        );
        assert_ne!(
            build_cached(cache.path(), b"OTHER", &modules).unwrap(),
            first
        );
    }

    #[test]
    fn module_size_and_mtime_each_change_the_key() {
        let tree = fake_tree(&[("kernel/a.ko", "")], &[]);
        let modules = modules_of(tree.path(), &["a"]);
        let file = &modules[0].path;
        let mtime = file.metadata().unwrap().modified().unwrap();
        let original = key(b"INIT", &modules).unwrap();
        assert_eq!(key(b"INIT", &modules).unwrap(), original);

        fs::write(file, fake_module("longer")).unwrap();
        fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let resized = key(b"INIT", &modules).unwrap();
        assert_ne!(resized, original, "size alone changes the key");

        let later = mtime + std::time::Duration::from_secs(1);
        fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_ne!(
            key(b"INIT", &modules).unwrap(),
            resized,
            "mtime alone changes the key"
        );
    }

    #[test]
    fn module_order_and_names_are_part_of_the_key() {
        let tree = fake_tree(&[("kernel/a.ko", ""), ("kernel/b.ko", "")], &[]);
        let modules = modules_of(tree.path(), &["a", "b"]);
        let reversed: Vec<Module> = modules.iter().rev().cloned().collect();
        assert_ne!(key(b"", &modules).unwrap(), key(b"", &reversed).unwrap());
        let mut renamed = modules.clone();
        renamed[0].name = "z".into();
        assert_ne!(key(b"", &modules).unwrap(), key(b"", &renamed).unwrap());
    }

    #[test]
    fn no_modules_gives_an_empty_list() {
        let cache = tempfile::tempdir().unwrap();
        let path = build_cached(cache.path(), b"I", &[]).unwrap();
        let entries = parse(&fs::read(path).unwrap());
        let last = entries.last().unwrap();
        assert_eq!(last.0, "vmlane/modules.list");
        assert!(last.3.is_empty());
        assert!(!entries.iter().any(|e| e.0.ends_with(".ko")));
    }

    #[test]
    fn unreadable_module_is_an_error_naming_it_and_caches_nothing() {
        let tree = fake_tree(&[("kernel/a.ko.xz", "")], &[]);
        let modules = modules_of(tree.path(), &["a"]);
        fs::write(&modules[0].path, b"not xz").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let error = build_cached(cache.path(), b"I", &modules).unwrap_err();
        assert!(error.to_string().contains("a.ko.xz"), "{error}");
        let dir = cache.path().join("initramfs");
        assert_eq!(
            fs::read_dir(dir).unwrap().count(),
            0,
            "no file, no temp file"
        );

        let gone = vec![Module {
            name: "gone".into(),
            path: tree.path().join("kernel/gone.ko"),
        }];
        let error = build_cached(cache.path(), b"I", &gone).unwrap_err();
        assert!(error.to_string().contains("gone.ko"), "{error}");
    }

    #[test]
    fn module_file_names_sort_in_load_order() {
        assert_eq!(module_file_name(0, 1, "virtio"), "00-virtio.ko");
        assert_eq!(module_file_name(9, 100, "a"), "09-a.ko");
        assert_eq!(module_file_name(9, 101, "a"), "009-a.ko");
        assert_eq!(module_file_name(100, 101, "a"), "100-a.ko");
    }
}
