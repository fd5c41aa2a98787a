//! Which kernel modules exist, which are built in, and the load order a set of them needs, for
//! an installed `lib/modules/<release>` directory or a kernel build tree.
//!
//! Opening an index reads directory entries and small text files only; a module file is read
//! when its dependencies are first needed, since a distribution kernel has thousands of them.

mod modinfo;
mod read;

pub use read::read_module;

use crate::PayloadError;
use read::Compression;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

/// Whether, and how, a kernel has a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleStatus {
    /// Compiled into the kernel image: nothing to load.
    BuiltIn,
    /// A loadable module at this path, possibly compressed.
    Module(PathBuf),
    /// Neither built in nor a module.
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
    /// modules.dep, when depmod has run: name to dependency names, saving a read per module.
    depmod: Option<HashMap<String, Vec<String>>>,
}

impl ModuleIndex {
    /// Indexes `dir`: a `lib/modules/<release>` directory (walked for `.ko` files) or a build
    /// tree root, recognised by its `Makefile` (whose `modules.order` lists the modules).
    pub fn open(dir: &Path) -> Result<ModuleIndex, PayloadError> {
        let files = if dir.join("Makefile").is_file() {
            build_tree_modules(dir)?
        } else {
            installed_modules(dir)?
        };
        let builtin = read_optional(&dir.join("modules.builtin"))?
            .map(|text| {
                text.lines()
                    .filter_map(|line| module_name(Path::new(line.trim())))
                    .collect()
            })
            .unwrap_or_default();
        let depmod = read_optional(&dir.join("modules.dep"))?.map(|text| parse_modules_dep(&text));
        Ok(ModuleIndex {
            dir: dir.to_path_buf(),
            files,
            builtin,
            depmod,
        })
    }

    /// An index of known contents, read from no directory: what planning tests use as a
    /// made-up kernel's modules.
    pub fn from_parts(dir: &Path, builtin: &[&str], modules: &[(&str, &Path)]) -> ModuleIndex {
        ModuleIndex {
            dir: dir.to_path_buf(),
            files: modules
                .iter()
                .map(|(name, path)| (normalise(name), path.to_path_buf()))
                .collect(),
            builtin: builtin.iter().map(|name| normalise(name)).collect(),
            depmod: None,
        }
    }

    /// The directory this index was opened on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the kernel has `name` (either spelling, `-` or `_`) built in, as a module, or
    /// not at all.
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

    /// Every loadable module needed for `wanted`, dependencies before dependents, each once,
    /// built-ins left out. A module the kernel lacks is an error naming it and the directory.
    pub fn closure(&self, wanted: &[&str]) -> Result<Vec<Module>, PayloadError> {
        let mut walk = Walk {
            index: self,
            placed: HashSet::new(),
            open: HashSet::new(),
            stack: Vec::new(),
            order: Vec::new(),
        };
        for name in wanted {
            walk.add(&normalise(name))?;
        }
        Ok(walk.order)
    }

    fn dependencies(&self, name: &str, path: &Path) -> Result<Vec<String>, PayloadError> {
        match self.depmod.as_ref().and_then(|deps| deps.get(name)) {
            Some(deps) => Ok(deps.clone()),
            None => modinfo::depends(path),
        }
    }
}

/// A depth-first walk kept on the heap, so no dependency chain can exhaust the thread's stack.
struct Walk<'a> {
    index: &'a ModuleIndex,
    /// Modules already in `order`, or built in.
    placed: HashSet<String>,
    /// Modules on `stack`; meeting one again means a cycle, which is cut there.
    open: HashSet<String>,
    stack: Vec<Pending>,
    order: Vec<Module>,
}

/// A module whose dependencies are still being placed.
struct Pending {
    module: Module,
    dependencies: Vec<String>,
    next: usize,
}

impl Walk<'_> {
    /// Places `root` and everything it needs.
    fn add(&mut self, root: &str) -> Result<(), PayloadError> {
        self.enter(root)?;
        while let Some(top) = self.stack.last_mut() {
            if let Some(dependency) = top.dependencies.get(top.next).cloned() {
                top.next += 1;
                self.enter(&dependency)?;
            } else if let Some(done) = self.stack.pop() {
                self.open.remove(&done.module.name);
                self.placed.insert(done.module.name.clone());
                self.order.push(done.module);
            }
        }
        Ok(())
    }

    fn enter(&mut self, name: &str) -> Result<(), PayloadError> {
        if self.placed.contains(name) || self.open.contains(name) {
            return Ok(());
        }
        match self.index.status(name) {
            ModuleStatus::BuiltIn => {
                self.placed.insert(name.to_string());
            }
            ModuleStatus::Absent => {
                return Err(PayloadError::MissingModule {
                    name: name.to_string(),
                    dir: self.index.dir.clone(),
                });
            }
            ModuleStatus::Module(path) => {
                let dependencies = self.index.dependencies(name, &path)?;
                self.open.insert(name.to_string());
                self.stack.push(Pending {
                    module: Module {
                        name: name.to_string(),
                        path,
                    },
                    dependencies,
                    next: 0,
                });
            }
        }
        Ok(())
    }
}

/// Walks an installed modules directory by directory entries alone (no stat, no reads).
/// When a name occurs twice, `updates/` wins as with depmod, then the lexically first path.
fn installed_modules(root: &Path) -> Result<HashMap<String, PathBuf>, PayloadError> {
    let mut files: HashMap<String, PathBuf> = HashMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(PayloadError::io("read the modules directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(PayloadError::io("read the modules directory", &dir))?;
            // Symlinks (`build`, `source`) point into source trees and are not followed.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if let Some(name) = module_name(&path) {
                match files.get(&name) {
                    Some(kept) if preference(root, kept) <= preference(root, &path) => {}
                    _ => {
                        files.insert(name, path);
                    }
                }
            }
        }
    }
    Ok(files)
}

/// Orders duplicate module files: `updates/` first, then by path.
fn preference<'p>(root: &Path, path: &'p Path) -> (bool, &'p Path) {
    let relative = path.strip_prefix(root).unwrap_or(path);
    (!relative.starts_with("updates"), path)
}

/// Reads a build tree's `modules.order`, whose lines name each module's `.o` or `.ko` relative
/// to the tree; a listed module whose file is missing (not built yet) is left out.
fn build_tree_modules(root: &Path) -> Result<HashMap<String, PathBuf>, PayloadError> {
    let mut files = HashMap::new();
    let Some(order) = read_optional(&root.join("modules.order"))? else {
        return Ok(files);
    };
    for line in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let stem = line
            .strip_suffix(".o")
            .or_else(|| line.strip_suffix(".ko"))
            .unwrap_or(line);
        let found = Compression::SUFFIXES
            .iter()
            .map(|(suffix, _)| root.join(format!("{stem}{suffix}")))
            .find(|path| path.is_file());
        if let Some(path) = found {
            if let Some(name) = module_name(&path) {
                files.entry(name).or_insert(path);
            }
        }
    }
    Ok(files)
}

/// A text file that may legitimately be missing; any other failure is an error.
fn read_optional(path: &Path) -> Result<Option<String>, PayloadError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PayloadError::io("read", path)(error)),
    }
}

/// `kernel/fs/9p/9p.ko.xz` → `9p`; a file that is not a module → `None`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    Compression::SUFFIXES
        .iter()
        .find_map(|(suffix, _)| file.strip_suffix(suffix))
        .filter(|name| !name.is_empty())
        .map(normalise)
}

/// Module names treat `-` and `_` alike; the kernel itself uses `_`.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// modules.dep lines are `kernel/a.ko: kernel/b.ko kernel/c.ko`, paths relative to the
/// directory; only the names matter here.
fn parse_modules_dep(text: &str) -> HashMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            let deps = deps
                .split_whitespace()
                .filter_map(|dep| module_name(Path::new(dep)))
                .collect();
            Some((module_name(Path::new(module.trim()))?, deps))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// A relocatable ELF64 with a `.modinfo` section, laid out like a real `.ko`.
    pub fn fake_module(depends: &str) -> Vec<u8> {
        let modinfo = format!("license=GPL\0depends={depends}\0name=x\0");
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let modinfo_at = 64u64;
        let shstrtab_at = modinfo_at + modinfo.len() as u64;
        let headers_at = (shstrtab_at + shstrtab.len() as u64).next_multiple_of(8);
        let mut elf = vec![0u8; 64];
        elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01"); // 64-bit, little-endian, version 1
        elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[40..48].copy_from_slice(&headers_at.to_le_bytes());
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        elf[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
        elf[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
        elf.extend_from_slice(modinfo.as_bytes());
        elf.extend_from_slice(shstrtab);
        elf.resize(headers_at as usize, 0);
        let section = |name: u32, kind: u32, offset: u64, size: u64| {
            let mut header = [0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[4..8].copy_from_slice(&kind.to_le_bytes());
            header[24..32].copy_from_slice(&offset.to_le_bytes());
            header[32..40].copy_from_slice(&size.to_le_bytes());
            header[48..56].copy_from_slice(&1u64.to_le_bytes());
            header
        };
        elf.extend_from_slice(&[0u8; 64]);
        elf.extend_from_slice(&section(1, 1, modinfo_at, modinfo.len() as u64));
        elf.extend_from_slice(&section(10, 3, shstrtab_at, shstrtab.len() as u64));
        elf
    }

    /// Writes `elf` to `path`, compressed as its extension says.
    pub fn write_compressed(path: &Path, elf: &[u8]) {
        let bytes = match Compression::of(path) {
            Compression::None => elf.to_vec(),
            Compression::Xz => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut &elf[..], &mut out).unwrap();
                out
            }
            Compression::Zstd => {
                ruzstd::encoding::compress_to_vec(elf, ruzstd::encoding::CompressionLevel::Fastest)
            }
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                io::Write::write_all(&mut encoder, elf).unwrap();
                encoder.finish().unwrap()
            }
        };
        fs::write(path, bytes).unwrap();
    }

    /// A `lib/modules/<release>` tree of (relative path, depends) and built-in paths.
    pub fn fake_tree(modules: &[(&str, &str)], builtin: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (relative, depends) in modules {
            let path = dir.path().join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_compressed(&path, &fake_module(depends));
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
                ("kernel/drivers/virtio/virtio_pci_modern_dev.ko.zst", ""),
                (
                    "kernel/drivers/virtio/virtio_pci.ko",
                    "virtio,virtio_ring,virtio_pci_modern_dev",
                ),
                (
                    "kernel/drivers/char/virtio_console.ko",
                    "virtio,virtio_ring",
                ),
                ("kernel/fs/netfs/netfs.ko", ""),
                ("kernel/fs/9p/9p.ko.xz", "9pnet,netfs,fscache"),
                ("kernel/net/9p/9pnet.ko.gz", ""),
                ("kernel/net/9p/9pnet_virtio.ko", "9pnet,virtio,virtio_ring"),
            ],
            &[
                "kernel/fs/fscache/fscache.ko",
                "kernel/fs/overlayfs/overlay.ko",
            ],
        );
        let index = ModuleIndex::open(tree.path()).unwrap();
        let order = index
            .closure(&[
                "virtio_pci",
                "virtio-console",
                "9pnet_virtio",
                "9p",
                "overlay",
            ])
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
                "9pnet_virtio",
                "netfs",
                "9p",
            ]
        );
        assert!(order[2].path.ends_with("virtio_pci_modern_dev.ko.zst"));
        assert_eq!(index.status("fscache"), ModuleStatus::BuiltIn);
        assert_eq!(
            index.status("9p"),
            ModuleStatus::Module(order[8].path.clone())
        );
        assert_eq!(index.status("nope"), ModuleStatus::Absent);
    }

    #[test]
    fn absent_module_is_an_error_naming_it_and_the_directory() {
        let tree = fake_tree(&[("kernel/fs/fuse/virtiofs.ko", "")], &[]);
        let index = ModuleIndex::open(tree.path()).unwrap();
        let error = index.closure(&["virtiofs", "9p"]).unwrap_err();
        assert!(
            matches!(&error, PayloadError::MissingModule { name, dir } if name == "9p" && dir == tree.path()),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("9p"), "{message}");
        assert!(
            message.contains(&tree.path().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn absent_dependency_is_an_error_naming_the_dependency() {
        let tree = fake_tree(&[("kernel/a.ko", "gone")], &[]);
        let index = ModuleIndex::open(tree.path()).unwrap();
        let error = index.closure(&["a"]).unwrap_err().to_string();
        assert!(error.contains("module gone "), "{error}");
    }

    #[test]
    fn modules_dep_is_used_instead_of_modinfo_when_present() {
        let tree = fake_tree(&[("kernel/a.ko", ""), ("kernel/b.ko", "")], &[]);
        fs::write(tree.path().join("kernel/b.ko"), b"unreadable, never read").unwrap();
        fs::write(
            tree.path().join("modules.dep"),
            "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n",
        )
        .unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(names(&index.closure(&["a"]).unwrap()), ["b", "a"]);
    }

    #[test]
    fn modules_missing_from_modules_dep_fall_back_to_modinfo() {
        let tree = fake_tree(&[("kernel/a.ko", "b"), ("kernel/b.ko", "")], &[]);
        fs::write(tree.path().join("modules.dep"), "kernel/b.ko:\n").unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(names(&index.closure(&["a"]).unwrap()), ["b", "a"]);
    }

    #[test]
    fn dependency_cycles_end_instead_of_looping() {
        let tree = fake_tree(&[("kernel/a.ko", "b"), ("kernel/b.ko", "a")], &[]);
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(names(&index.closure(&["a"]).unwrap()), ["b", "a"]);
    }

    #[test]
    fn long_dependency_chains_do_not_recurse() {
        let dir = tempfile::tempdir().unwrap();
        let chain = 3000;
        let mut text = String::new();
        for i in 0..chain {
            fs::write(dir.path().join(format!("m{i}.ko")), b"").unwrap();
            text.push_str(&format!("m{i}.ko: m{}.ko\n", i + 1));
        }
        fs::write(dir.path().join(format!("m{chain}.ko")), b"").unwrap();
        text.push_str(&format!("m{chain}.ko:\n"));
        fs::write(dir.path().join("modules.dep"), text).unwrap();
        let index = ModuleIndex::open(dir.path()).unwrap();
        let order = index.closure(&["m0"]).unwrap();
        assert_eq!(order.len(), chain + 1);
        assert_eq!(order[0].name, format!("m{chain}"));
    }

    #[test]
    fn names_are_normalised_everywhere() {
        let tree = fake_tree(
            &[
                ("kernel/snd-dummy.ko", "snd-pcm"),
                ("kernel/snd_pcm.ko", ""),
            ],
            &["kernel/crc-t10dif.ko"],
        );
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(index.status("crc_t10dif"), ModuleStatus::BuiltIn);
        assert_eq!(
            names(&index.closure(&["snd-dummy"]).unwrap()),
            ["snd_pcm", "snd_dummy"]
        );
    }

    #[test]
    fn updates_directory_wins_over_kernel() {
        let tree = fake_tree(&[("kernel/fs/x.ko", ""), ("updates/x.ko.xz", "")], &[]);
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(
            index.status("x"),
            ModuleStatus::Module(tree.path().join("updates/x.ko.xz"))
        );
    }

    #[test]
    fn garbage_module_is_an_error_naming_its_file() {
        let tree = fake_tree(&[], &[]);
        fs::write(tree.path().join("bad.ko"), b"not an elf").unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        let error = index.closure(&["bad"]).unwrap_err().to_string();
        assert!(error.contains("bad.ko"), "{error}");
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_it() {
        let error = ModuleIndex::open(Path::new("/nonexistent/lib/modules/1.0")).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/lib/modules/1.0"),
            "{error}"
        );
    }

    #[test]
    fn build_tree_modules_come_from_modules_order() {
        let tree = fake_tree(
            &[
                ("fs/overlayfs/overlay.ko", ""),
                ("fs/netfs/netfs.ko", ""),
                ("drivers/stray/stray.ko", ""),
            ],
            &["fs/fuse/virtiofs.ko"],
        );
        fs::write(tree.path().join("Makefile"), "# build tree\n").unwrap();
        fs::write(
            tree.path().join("modules.order"),
            "fs/overlayfs/overlay.o\nfs/netfs/netfs.ko\nnet/unbuilt/unbuilt.o\n",
        )
        .unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert_eq!(
            index.status("overlay"),
            ModuleStatus::Module(tree.path().join("fs/overlayfs/overlay.ko"))
        );
        assert!(matches!(index.status("netfs"), ModuleStatus::Module(_)));
        assert_eq!(index.status("virtiofs"), ModuleStatus::BuiltIn);
        assert_eq!(index.status("unbuilt"), ModuleStatus::Absent);
        assert_eq!(
            index.status("stray"),
            ModuleStatus::Absent,
            "not in modules.order"
        );
    }

    #[test]
    fn build_tree_without_modules_has_none() {
        let tree = fake_tree(&[], &["fs/overlayfs/overlay.ko"]);
        fs::write(tree.path().join("Makefile"), "").unwrap();
        let index = ModuleIndex::open(tree.path()).unwrap();
        assert!(index.closure(&["overlay"]).unwrap().is_empty());
    }
}
