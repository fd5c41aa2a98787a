//! The cached initramfs: vmlane's init, `/dev/console`, and the modules in load order.

use crate::cpio::CpioWriter;
use crate::modules::{read_module, Module};
use crate::PayloadError;
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The cache key: the init itself, and each module's name, path, size and mtime, so an
/// unchanged run reuses the file without reading any module.
pub fn key(init: &[u8], modules: &[Module]) -> Result<String, PayloadError> {
    let mut hash = Sha256::new();
    hash.update(b"vmlane-initramfs-v1\0");
    hash.update(init);
    for module in modules {
        let meta = module
            .path
            .metadata()
            .map_err(PayloadError::io("stat module", &module.path))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        hash.update(module.name.as_bytes());
        hash.update(b"\0");
        hash.update(module.path.as_os_str().as_encoded_bytes());
        hash.update(b"\0");
        hash.update(meta.len().to_le_bytes());
        hash.update(mtime.map_or(0, |d| d.as_nanos()).to_le_bytes());
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Returns the initramfs for these inputs, writing it first if it is not cached yet.
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
    // A temp file renamed into place: concurrent runs never see half an archive.
    let temp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(PayloadError::io("create a temp file in", &dir))?;
    let mut out = BufWriter::new(temp);
    write_archive(&mut out, init, modules)?;
    let temp = out.into_inner().map_err(|e| PayloadError::Io {
        action: "write",
        path: path.clone(),
        source: e.into_error(),
    })?;
    temp.persist(&path).map_err(|e| PayloadError::Io {
        action: "store",
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}

fn write_archive(
    out: &mut impl Write,
    init: &[u8],
    modules: &[Module],
) -> Result<(), PayloadError> {
    let fail = |source| PayloadError::Io {
        action: "write the initramfs",
        path: PathBuf::new(),
        source,
    };
    let mut cpio = CpioWriter::new(out);
    for dir in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "vmlane",
        "vmlane/modules",
    ] {
        cpio.dir(dir, 0o755).map_err(fail)?;
    }
    cpio.char_device("dev/console", 0o600, 5, 1).map_err(fail)?;
    cpio.file("init", 0o755, init).map_err(fail)?;
    let width = modules.len().to_string().len().max(2);
    let mut list = String::new();
    for (i, module) in modules.iter().enumerate() {
        let file = format!("{i:0width$}-{}.ko", module.name);
        cpio.file(
            &format!("vmlane/modules/{file}"),
            0o644,
            &read_module(&module.path)?,
        )
        .map_err(fail)?;
        list.push_str(&file);
        list.push('\n');
    }
    cpio.file("vmlane/modules.list", 0o644, list.as_bytes())
        .map_err(fail)?;
    cpio.finish().map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::tests::parse;
    use crate::modules::tests::fake_tree;
    use crate::modules::ModuleIndex;

    #[test]
    fn archive_holds_init_console_and_modules_in_order() {
        let tree = fake_tree(&[("kernel/a.ko", "b"), ("kernel/b.ko.xz", "")], &[]);
        let modules = ModuleIndex::open(tree.path())
            .unwrap()
            .closure(&["a"])
            .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let path = build_cached(cache.path(), b"INIT", &modules).unwrap();
        let entries = parse(&std::fs::read(&path).unwrap());
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
                "vmlane/modules.list"
            ]
        );
        assert_eq!(entries[7].2, (5, 1));
        assert_eq!(entries[8].3, b"INIT");
        assert!(
            entries[9].3.starts_with(b"\x7fELF"),
            "modules are stored decompressed"
        );
        assert_eq!(entries[11].3, b"00-b.ko\n01-a.ko\n");
    }

    #[test]
    fn unchanged_inputs_reuse_the_file_and_changed_ones_do_not() {
        let tree = fake_tree(&[("kernel/a.ko", "")], &[]);
        let modules = ModuleIndex::open(tree.path())
            .unwrap()
            .closure(&["a"])
            .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let first = build_cached(cache.path(), b"INIT", &modules).unwrap();
        let written = first.metadata().unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            build_cached(cache.path(), b"INIT", &modules).unwrap(),
            first
        );
        assert_eq!(
            first.metadata().unwrap().modified().unwrap(),
            written,
            "not rewritten"
        );

        std::fs::write(&modules[0].path, crate::modules::tests::fake_module("x,y")).unwrap();
        assert_ne!(
            build_cached(cache.path(), b"INIT", &modules).unwrap(),
            first
        );
        assert_ne!(
            build_cached(cache.path(), b"OTHER", &modules).unwrap(),
            first
        );
    }

    #[test]
    fn no_modules_gives_an_empty_list() {
        let cache = tempfile::tempdir().unwrap();
        let entries =
            parse(&std::fs::read(build_cached(cache.path(), b"I", &[]).unwrap()).unwrap());
        assert_eq!(entries.last().unwrap().0, "vmlane/modules.list");
        assert!(entries.last().unwrap().3.is_empty());
    }
}
