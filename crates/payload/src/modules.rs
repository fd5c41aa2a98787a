//! Which kernel modules exist, which are built in, and what each depends on, for a
//! `lib/modules/<release>` directory or a kernel build tree.

use crate::PayloadError;
use object::{Object, ObjectSection};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Whether the kernel has a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleStatus {
    /// Compiled into the kernel image.
    BuiltIn,
    /// A loadable module at this path.
    Module(PathBuf),
    /// Neither.
    Absent,
}

/// A module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its normalised name (`-` written as `_`).
    pub name: String,
    /// Its file, possibly compressed.
    pub path: PathBuf,
}

/// The modules of one kernel.
#[derive(Debug)]
pub struct ModuleIndex {
    dir: PathBuf,
    files: HashMap<String, PathBuf>,
    builtin: HashSet<String>,
    /// From modules.dep when present: name → dependency names.
    depmod: Option<HashMap<String, Vec<String>>>,
}

const EXTENSIONS: &[&str] = &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

impl ModuleIndex {
    /// Indexes a modules directory or a build tree. Only directory entries are read here;
    /// module files are opened when their dependencies are needed.
    pub fn open(dir: &Path) -> Result<ModuleIndex, PayloadError> {
        let mut files = HashMap::new();
        match std::fs::read_to_string(dir.join("modules.order")) {
            // A build tree lists its modules; a lib/modules tree is walked.
            Ok(order) if !dir.join("kernel").is_dir() => {
                for line in order.lines() {
                    let rel = line.trim().trim_end_matches(".o");
                    let path = dir.join(format!("{rel}.ko"));
                    if let Some(name) = module_name(&path) {
                        files.insert(name, path);
                    }
                }
            }
            _ => walk(dir, &mut files)?,
        }
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .map(|text| {
                text.lines()
                    .filter_map(|l| module_name(Path::new(l.trim())))
                    .collect()
            })
            .unwrap_or_default();
        let depmod = std::fs::read_to_string(dir.join("modules.dep"))
            .ok()
            .map(|text| parse_modules_dep(&text));
        Ok(ModuleIndex {
            dir: dir.to_path_buf(),
            files,
            builtin,
            depmod,
        })
    }

    /// Whether the kernel has `name` built in, as a module, or not at all.
    pub fn status(&self, name: &str) -> ModuleStatus {
        let name = normalise(name);
        if self.builtin.contains(&name) {
            ModuleStatus::BuiltIn
        } else if let Some(path) = self.files.get(&name) {
            ModuleStatus::Module(path.clone())
        } else {
            ModuleStatus::Absent
        }
    }

    /// Every module needed to load `wanted`, dependencies first, each once, built-ins left out.
    pub fn closure(&self, wanted: &[&str]) -> Result<Vec<Module>, PayloadError> {
        let mut order = Vec::new();
        let mut done = HashSet::new();
        for name in wanted {
            self.visit(&normalise(name), &mut done, &mut HashSet::new(), &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        done: &mut HashSet<String>,
        in_progress: &mut HashSet<String>,
        order: &mut Vec<Module>,
    ) -> Result<(), PayloadError> {
        if done.contains(name) || !in_progress.insert(name.to_string()) {
            return Ok(());
        }
        match self.status(name) {
            ModuleStatus::BuiltIn => {}
            ModuleStatus::Absent => {
                return Err(PayloadError::MissingModule {
                    name: name.to_string(),
                    dir: self.dir.clone(),
                })
            }
            ModuleStatus::Module(path) => {
                for dependency in self.dependencies(name, &path)? {
                    self.visit(&dependency, done, in_progress, order)?;
                }
                order.push(Module {
                    name: name.to_string(),
                    path,
                });
            }
        }
        done.insert(name.to_string());
        Ok(())
    }

    fn dependencies(&self, name: &str, path: &Path) -> Result<Vec<String>, PayloadError> {
        if let Some(deps) = self.depmod.as_ref().and_then(|d| d.get(name)) {
            return Ok(deps.clone());
        }
        let elf = read_module(path)?;
        modinfo_depends(&elf).map_err(|reason| PayloadError::BadModule {
            path: path.to_path_buf(),
            reason,
        })
    }
}

fn walk(dir: &Path, files: &mut HashMap<String, PathBuf>) -> Result<(), PayloadError> {
    let entries =
        std::fs::read_dir(dir).map_err(PayloadError::io("read the modules directory", dir))?;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            // `build` and `source` point back into a source tree in installed kernels.
            if entry.file_name() != "build" && entry.file_name() != "source" {
                walk(&path, files)?;
            }
        } else if let Some(name) = module_name(&path) {
            files.entry(name).or_insert(path);
        }
    }
    Ok(())
}

/// `kernel/fs/9p/9p.ko.xz` → `9p`; anything not a module → `None`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    EXTENSIONS
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .map(normalise)
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

fn parse_modules_dep(text: &str) -> HashMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            let deps = deps
                .split_whitespace()
                .filter_map(|d| module_name(Path::new(d)))
                .collect();
            Some((module_name(Path::new(module))?, deps))
        })
        .collect()
}

/// The `depends=` field of a module's `.modinfo` section.
fn modinfo_depends(elf: &[u8]) -> Result<Vec<String>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module ({e})"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| format!("bad .modinfo ({e})"))?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| list.split(|&b| b == b','))
        .filter(|d| !d.is_empty())
        .map(|d| normalise(&String::from_utf8_lossy(d)))
        .collect())
}

/// A module's plain ELF bytes, decompressed according to its extension.
pub fn read_module(path: &Path) -> Result<Vec<u8>, PayloadError> {
    let raw = std::fs::read(path).map_err(PayloadError::io("read module", path))?;
    let name = path.to_string_lossy();
    let bad = |reason: String| PayloadError::BadModule {
        path: path.to_path_buf(),
        reason,
    };
    if name.ends_with(".xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out)
            .map_err(|e| bad(format!("xz: {e}")))?;
        Ok(out)
    } else if name.ends_with(".zst") {
        let mut out = Vec::new();
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(raw.as_slice())
            .map_err(|e| bad(format!("zstd: {e}")))?;
        std::io::Read::read_to_end(&mut decoder, &mut out)
            .map_err(|e| bad(format!("zstd: {e}")))?;
        Ok(out)
    } else if name.ends_with(".gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(raw.as_slice()), &mut out)
            .map_err(|e| bad(format!("gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// A relocatable ELF64 with a `.modinfo` section, like a real `.ko`.
    pub fn fake_module(depends: &str) -> Vec<u8> {
        let modinfo = format!("license=GPL\0depends={depends}\0name=x\0");
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let modinfo_off = 64u64;
        let shstr_off = modinfo_off + modinfo.len() as u64;
        let sh_off = (shstr_off + shstrtab.len() as u64).div_ceil(8) * 8;
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[6] = 1;
        elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        elf[18..20].copy_from_slice(&62u16.to_le_bytes());
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[40..48].copy_from_slice(&sh_off.to_le_bytes());
        elf[52..54].copy_from_slice(&64u16.to_le_bytes());
        elf[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        elf[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
        elf[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
        elf.extend_from_slice(modinfo.as_bytes());
        elf.extend_from_slice(shstrtab);
        elf.resize(sh_off as usize, 0);
        let section = |name: u32, kind: u32, offset: u64, size: u64| {
            let mut sh = vec![0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[24..32].copy_from_slice(&offset.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            sh[48..56].copy_from_slice(&1u64.to_le_bytes());
            sh
        };
        elf.extend_from_slice(&[0u8; 64]);
        elf.extend_from_slice(&section(1, 1, modinfo_off, modinfo.len() as u64));
        elf.extend_from_slice(&section(10, 3, shstr_off, shstrtab.len() as u64));
        elf
    }

    /// A lib/modules/<release> tree: (relative path, depends).
    pub fn fake_tree(modules: &[(&str, &str)], builtin: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, depends) in modules {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            let elf = fake_module(depends);
            if rel.ends_with(".gz") {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut encoder, &elf).unwrap();
                fs::write(&path, encoder.finish().unwrap()).unwrap();
            } else if rel.ends_with(".xz") {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut elf.as_slice(), &mut out).unwrap();
                fs::write(&path, out).unwrap();
            } else {
                fs::write(&path, elf).unwrap();
            }
        }
        fs::write(dir.path().join("modules.builtin"), builtin.join("\n")).unwrap();
        dir
    }

    fn names(modules: &[Module]) -> Vec<&str> {
        modules.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn closure_puts_dependencies_first_once_and_skips_builtins() {
        let tree = fake_tree(
            &[
                ("kernel/drivers/virtio/virtio_ring.ko", ""),
                ("kernel/drivers/virtio/virtio.ko", "virtio_ring"),
                (
                    "kernel/drivers/virtio/virtio_pci.ko",
                    "virtio,virtio_ring,virtio_pci_modern_dev",
                ),
                ("kernel/drivers/virtio/virtio_pci_modern_dev.ko", ""),
                (
                    "kernel/drivers/char/virtio_console.ko",
                    "virtio,virtio_ring",
                ),
                ("kernel/fs/netfs/netfs.ko", ""),
                ("kernel/fs/9p/9p.ko.xz", "9pnet,netfs,fscache"),
                ("kernel/net/9p/9pnet.ko.gz", ""),
            ],
            &["kernel/fs/fscache/fscache.ko"],
        );
        let index = ModuleIndex::open(tree.path()).unwrap();
        let order = index
            .closure(&["virtio_pci", "virtio-console", "9p"])
            .unwrap();
        assert_eq!(
            names(&order),
            [
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci",
                "virtio_console",
                "9pnet",
                "netfs",
                "9p"
            ]
        );
        assert_eq!(index.status("fscache"), ModuleStatus::BuiltIn);
    }

    #[test]
    fn absent_module_is_an_error_naming_it_and_the_directory() {
        let tree = fake_tree(&[("kernel/fs/fuse/virtiofs.ko", "")], &[]);
        let index = ModuleIndex::open(tree.path()).unwrap();
        let error = index.closure(&["9p"]).unwrap_err().to_string();
        assert!(error.contains("9p"), "{error}");
        assert!(
            error.contains(&tree.path().display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn modules_dep_is_used_when_present() {
        let tree = fake_tree(&[("kernel/a.ko", ""), ("kernel/b.ko", "")], &[]);
        fs::write(
            tree.path().join("modules.dep"),
            "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n",
        )
        .unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(names(&index.closure(&["a"]).unwrap()), ["b", "a"]);
    }

    #[test]
    fn dependency_cycles_do_not_loop() {
        let tree = fake_tree(&[("kernel/a.ko", "b"), ("kernel/b.ko", "a")], &[]);
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(index.closure(&["a"]).unwrap().len(), 2);
    }

    #[test]
    fn compressed_modules_decompress_to_the_elf() {
        let tree = fake_tree(&[("kernel/x.ko.xz", "y"), ("kernel/y.ko.gz", "")], &[]);
        for name in ["kernel/x.ko.xz", "kernel/y.ko.gz"] {
            let elf = read_module(&tree.path().join(name)).unwrap();
            assert!(elf.starts_with(b"\x7fELF"), "{name}");
        }
    }

    #[test]
    fn garbage_module_is_a_clear_error() {
        let tree = fake_tree(&[], &[]);
        fs::write(tree.path().join("bad.ko"), b"not an elf").unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        let error = index.closure(&["bad"]).unwrap_err().to_string();
        assert!(error.contains("bad.ko"), "{error}");
    }

    #[test]
    fn build_tree_modules_come_from_modules_order() {
        let tree = fake_tree(&[("fs/overlayfs/overlay.ko", "")], &[]);
        fs::write(
            tree.path().join("modules.order"),
            "fs/overlayfs/overlay.o\n",
        )
        .unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert!(matches!(index.status("overlay"), ModuleStatus::Module(_)));
    }
}
