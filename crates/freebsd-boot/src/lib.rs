//! Boots FreeBSD amd64 kernels under QEMU without a paravirtual clock.
//!
//! A FreeBSD kernel entered at its PVH entry needs KVM's or Xen's clock, which QEMU's TCG
//! lacks. Entered the way FreeBSD's own loader enters it, it uses the i8254 instead. The boot
//! stub built from `stub/` does that: QEMU starts it at its PVH entry (`-kernel`), with the
//! kernel ELF, or a container of the kernel and further modules, as module 0 (`-initrd`).
//! On an error the stub prints one line starting `vmlane-boot: ` on the serial port and ends
//! the VM. This side checks the kernel on the host, writes containers, and says how much
//! memory a VM needs for the stub's layout.
#![deny(missing_docs)]

// Shared with the stub, which uses the constants this side does not.
#[allow(dead_code)]
mod layout;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::LittleEndian as LE;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The name FreeBSD's loader gives the kernel, and the stub too.
pub const KERNEL_NAME: &str = "/boot/kernel/kernel";
/// The module type of a FreeBSD kernel.
pub const KERNEL_TYPE: &str = "elf kernel";
/// The first bytes of a container.
pub const CONTAINER_MAGIC: &[u8; 8] = b"VMLBOOT1";

const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Aligns the embedded stub so ELF readers can parse its headers in place.
#[repr(C, align(8))]
struct Aligned<Bytes: ?Sized>(Bytes);

/// The built stub, or an empty placeholder when `build.rs` could not build it.
static STUB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/vmlane-freebsd-boot"
)));

/// The boot stub, or why it could not be built on this machine. The bytes are 8-byte
/// aligned, so ELF headers can be read from them in place.
pub fn stub_binary() -> Result<&'static [u8], &'static str> {
    match option_env!("VMLANE_FREEBSD_BOOT_MISSING") {
        Some(why) => Err(why),
        None => Ok(&STUB.0),
    }
}

/// A module loaded next to the kernel, as FreeBSD's loader loads them (e.g. an `md_image` root).
#[derive(Debug, Clone, Copy)]
pub struct BootModule<'a> {
    /// What the kernel knows it by, e.g. `/boot/root.img`: shorter than 64 bytes.
    pub name: &'a str,
    /// Its module type, e.g. `md_image`: shorter than 32 bytes.
    pub kind: &'a str,
    /// The file holding it.
    pub path: &'a Path,
}

/// What the host learnt from a kernel's ELF headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelInfo {
    /// The entry point, a virtual address.
    pub entry: u64,
    /// The lowest physical address a segment loads at.
    pub lowest_paddr: u64,
    /// The end of the highest loaded segment, physical.
    pub highest_paddr: u64,
    /// Whether it has a symbol table for the stub to hand over (named backtrace frames).
    pub has_symbols: bool,
    /// Whether it also has a PVH entry of its own (it is not used).
    pub has_pvh_note: bool,
}

/// Why a kernel or module cannot be booted, or a file not read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The container could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The kernel is not an ELF file.
    #[error("{} is not an ELF file", path.display())]
    NotElf {
        /// The kernel.
        path: PathBuf,
    },
    /// The kernel is a 32-bit ELF.
    #[error("{} is a 32-bit ELF; FreeBSD amd64 kernels are ELF64", path.display())]
    Elf32 {
        /// The kernel.
        path: PathBuf,
    },
    /// The kernel is for another architecture.
    #[error("{} is not an x86-64 ELF (e_machine {machine})", path.display())]
    NotX86_64 {
        /// The kernel.
        path: PathBuf,
        /// Its `e_machine`.
        machine: u16,
    },
    /// The kernel is not an executable.
    #[error(
        "{} is not an executable ELF (e_type {e_type}); FreeBSD kernels are ET_EXEC",
        path.display()
    )]
    NotExecutable {
        /// The kernel.
        path: PathBuf,
        /// Its `e_type`.
        e_type: u16,
    },
    /// The kernel has nothing to load.
    #[error("{} has no loadable segments", path.display())]
    NoLoadSegments {
        /// The kernel.
        path: PathBuf,
    },
    /// The kernel's headers are broken or ask for something the stub cannot do.
    #[error("{}: {problem}", path.display())]
    BadKernel {
        /// The kernel.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A module's name or kind cannot go into a container.
    #[error("boot module {name:?}: {problem}")]
    BadModule {
        /// The module's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The layout would not fit in what the boot page tables map.
    #[error(
        "the kernel and its modules would end at {} MiB, past the first 1 GiB that the kernel \
         can reach when it starts",
        end.div_ceil(1 << 20)
    )]
    TooLarge {
        /// Where the layout would end, physical.
        end: u64,
    },
}

/// Runs the stub's checks on the host, so a bad kernel is refused before a VM starts.
pub fn check_kernel(kernel: &Path) -> Result<KernelInfo, BootError> {
    Ok(parse_kernel(kernel, &read(kernel)?)?.info)
}

/// Writes a container holding the kernel and `extra` modules (e.g. name "/boot/root.img",
/// kind "md_image"), for QEMU's `-initrd`: the stub loads each module after the kernel.
///
/// Little endian: `"VMLBOOT1"`, u32 count, u32 reserved; then per module u64 offset, u64 size,
/// its name (64 bytes) and type (32 bytes), NUL-padded; then the data, page aligned. The
/// kernel comes first.
pub fn write_container(kernel: &Path, extra: &[BootModule], out: &Path) -> Result<(), BootError> {
    check_kernel(kernel)?;
    check_modules(extra)?;
    let mut sizes = vec![file_size(kernel)?];
    for module in extra {
        sizes.push(file_size(module.path)?);
    }
    let (offsets, _) = container_layout(&sizes);
    let write_err = |source| BootError::Write {
        path: out.to_owned(),
        source,
    };
    let mut w = BufWriter::new(File::create(out).map_err(write_err)?);
    let mut header = Vec::with_capacity(offsets[0] as usize);
    header.extend_from_slice(CONTAINER_MAGIC);
    header.extend_from_slice(&(sizes.len() as u32).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    let names =
        std::iter::once((KERNEL_NAME, KERNEL_TYPE)).chain(extra.iter().map(|m| (m.name, m.kind)));
    for ((name, kind), (offset, size)) in names.zip(offsets.iter().zip(&sizes)) {
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&padded(name, layout::CONTAINER_NAME_LEN));
        header.extend_from_slice(&padded(kind, layout::CONTAINER_TYPE_LEN));
    }
    w.write_all(&header).map_err(write_err)?;
    let mut at = header.len() as u64;
    let paths = std::iter::once(kernel).chain(extra.iter().map(|m| m.path));
    for ((path, &offset), &size) in paths.zip(&offsets).zip(&sizes) {
        io::copy(&mut io::repeat(0).take(offset - at), &mut w).map_err(write_err)?;
        let file = File::open(path).map_err(|source| BootError::Read {
            path: path.to_owned(),
            source,
        })?;
        let copied = io::copy(&mut file.take(size), &mut w).map_err(write_err)?;
        if copied != size {
            return Err(BootError::Read {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was copied",
                ),
            });
        }
        at = offset + size;
    }
    w.flush().map_err(write_err)
}

/// Bytes of memory the stub needs to lay out this kernel and modules (segments, symbols,
/// modules, metadata and environment, page rounded) plus the container QEMU holds above them
/// at the top of memory: so the host can refuse a VM that is too small before starting it.
/// An upper bound: it counts the largest environment and metadata the stub builds.
pub fn memory_needed(kernel: &Path, extra: &[BootModule]) -> Result<u64, BootError> {
    let parsed = parse_kernel(kernel, &read(kernel)?)?;
    check_modules(extra)?;
    let mut sizes = vec![file_size(kernel)?];
    for module in extra {
        sizes.push(file_size(module.path)?);
    }
    let mut addr = parsed.kernel_end();
    for &size in &sizes[1..] {
        addr = page_up(addr) + size;
        if addr > layout::MAPPED_LIMIT {
            return Err(BootError::TooLarge { end: addr });
        }
    }
    let modulep = page_up(addr);
    let envp = page_up(modulep + layout::METADATA_MAX);
    let kernend = page_up(envp + layout::ENV_MAX);
    if kernend > layout::MAPPED_LIMIT {
        return Err(BootError::TooLarge { end: kernend });
    }
    let (_, container) = container_layout(&sizes);
    Ok(kernend + page_up(container) + layout::TOP_RESERVE)
}

fn read(path: &Path) -> Result<Vec<u8>, BootError> {
    std::fs::read(path).map_err(|source| BootError::Read {
        path: path.to_owned(),
        source,
    })
}

fn file_size(path: &Path) -> Result<u64, BootError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| BootError::Read {
            path: path.to_owned(),
            source,
        })
}

fn page_up(v: u64) -> u64 {
    v.next_multiple_of(layout::PAGE_SIZE)
}

fn padded(s: &str, len: u64) -> Vec<u8> {
    let mut field = s.as_bytes().to_vec();
    field.resize(len as usize, 0);
    field
}

/// Each module's offset in a container, and the container's size.
fn container_layout(sizes: &[u64]) -> (Vec<u64>, u64) {
    let table = layout::CONTAINER_HEADER_SIZE + sizes.len() as u64 * layout::CONTAINER_ENTRY_SIZE;
    let mut at = table;
    let mut offsets = Vec::with_capacity(sizes.len());
    for &size in sizes {
        at = page_up(at);
        offsets.push(at);
        at += size;
    }
    (offsets, at)
}

/// What the stub needs of each extra module: names and kinds that fit their fields, no
/// second kernel, each name once, and no more modules than the stub takes.
fn check_modules(extra: &[BootModule]) -> Result<(), BootError> {
    if extra.len() as u64 + 1 > layout::MODULES_MAX {
        return Err(BootError::BadModule {
            name: extra.last().map(|m| m.name).unwrap_or_default().to_owned(),
            problem: format!(
                "the stub takes at most {} modules besides the kernel",
                layout::MODULES_MAX - 1
            ),
        });
    }
    for (i, module) in extra.iter().enumerate() {
        let bad = |problem: String| BootError::BadModule {
            name: module.name.to_owned(),
            problem,
        };
        for (what, value, len) in [
            ("name", module.name, layout::CONTAINER_NAME_LEN),
            ("kind", module.kind, layout::CONTAINER_TYPE_LEN),
        ] {
            if value.is_empty() || value.contains('\0') || value.len() as u64 >= len {
                return Err(bad(format!(
                    "its {what} must be 1 to {} bytes without NUL",
                    len - 1
                )));
            }
        }
        if module.kind == KERNEL_TYPE || module.kind == "elf64 kernel" {
            return Err(bad("only the kernel itself may be a kernel".into()));
        }
        if module.name == KERNEL_NAME || extra[..i].iter().any(|m| m.name == module.name) {
            return Err(bad("another module has the same name".into()));
        }
    }
    Ok(())
}

/// What the layout needs of a kernel besides `KernelInfo`.
struct ParsedKernel {
    info: KernelInfo,
    /// The sizes of the symbol and string tables, when it has them.
    symbols: Option<(u64, u64)>,
}

impl ParsedKernel {
    /// Past the segments and the symbols, as the stub places them.
    fn kernel_end(&self) -> u64 {
        let mut addr = self.info.highest_paddr.next_multiple_of(8);
        if let Some((symtab, strtab)) = self.symbols {
            addr = (addr + 8 + symtab).next_multiple_of(8);
            addr = (addr + 8 + strtab).next_multiple_of(8);
        }
        addr
    }
}

/// The stub's checks, in its order and with its messages.
fn parse_kernel(path: &Path, data: &[u8]) -> Result<ParsedKernel, BootError> {
    let bad = |problem: String| BootError::BadKernel {
        path: path.to_owned(),
        problem,
    };
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        return Err(BootError::NotElf {
            path: path.to_owned(),
        });
    }
    if data.len() < 6 {
        return Err(bad("its ELF header is cut short".into()));
    }
    match data[4] {
        elf::ELFCLASS64 => {}
        elf::ELFCLASS32 => {
            return Err(BootError::Elf32 {
                path: path.to_owned(),
            })
        }
        class => return Err(bad(format!("it has an unknown ELF class {class}"))),
    }
    match data[5] {
        elf::ELFDATA2LSB => {}
        elf::ELFDATA2MSB => {
            return Err(bad(
                "it is a big-endian ELF; FreeBSD amd64 kernels are little-endian".into(),
            ))
        }
        encoding => {
            return Err(bad(format!(
                "it has an unknown ELF data encoding {encoding}"
            )))
        }
    }
    if data.len() < 64 {
        return Err(bad("its ELF header is cut short".into()));
    }
    let header = elf::FileHeader64::<LE>::parse(data)
        .map_err(|e| bad(format!("its ELF header is unreadable: {e}")))?;
    let e = LE;
    let machine = header.e_machine(e);
    if machine != elf::EM_X86_64 {
        return Err(BootError::NotX86_64 {
            path: path.to_owned(),
            machine,
        });
    }
    let e_type = header.e_type(e);
    if e_type != elf::ET_EXEC {
        return Err(BootError::NotExecutable {
            path: path.to_owned(),
            e_type,
        });
    }

    let phnum = u64::from(header.e_phnum(e));
    let phentsize = header.e_phentsize(e);
    if phnum > 0 && phentsize != 56 {
        return Err(bad(format!(
            "its program headers have an unexpected size ({phentsize} bytes)"
        )));
    }
    let in_file =
        |offset: u64, len: u64| offset <= data.len() as u64 && len <= data.len() as u64 - offset;
    if !in_file(header.e_phoff(e), phnum * 56) {
        return Err(bad("its program headers lie outside the file".into()));
    }
    let segments = header
        .program_headers(e, data)
        .map_err(|err| bad(format!("its program headers are unreadable: {err}")))?;
    let mut loads: Vec<(u64, u64, u64, u64)> = Vec::new(); // paddr, offset, filesz, memsz
    let mut has_pvh_note = false;
    for (i, ph) in segments.iter().enumerate() {
        if ph.p_type(e) == elf::PT_NOTE {
            if let Ok(Some(mut notes)) = ph.notes(e, data) {
                while let Ok(Some(note)) = notes.next() {
                    has_pvh_note |=
                        note.name() == b"Xen" && note.n_type(e) == XEN_ELFNOTE_PHYS32_ENTRY;
                }
            }
        }
        let (offset, vaddr, paddr) = (ph.p_offset(e), ph.p_vaddr(e), ph.p_paddr(e));
        let (filesz, memsz) = (ph.p_filesz(e), ph.p_memsz(e));
        if ph.p_type(e) != elf::PT_LOAD || memsz == 0 {
            continue;
        }
        let segment = |problem: String| bad(format!("its program header {i} {problem}"));
        if filesz > memsz {
            return Err(segment("is larger in the file than in memory".into()));
        }
        if !in_file(offset, filesz) {
            return Err(segment("lies outside the file".into()));
        }
        if paddr < layout::KERNEL_MIN {
            return Err(segment(format!(
                "loads at {paddr:#x}, below 2 MiB, where the boot stub lives"
            )));
        }
        if paddr >= layout::MAPPED_LIMIT || memsz > layout::MAPPED_LIMIT - paddr {
            return Err(segment(format!(
                "loads at {paddr:#x}, past the first 1 GiB that the boot page tables map"
            )));
        }
        if vaddr & (layout::MAPPED_LIMIT - 1) != paddr {
            return Err(segment(format!(
                "is linked at {vaddr:#x} but loads at {paddr:#x}"
            )));
        }
        if loads.len() as u64 == layout::SEGMENTS_MAX {
            return Err(bad(format!(
                "it has more than {} loadable segments",
                layout::SEGMENTS_MAX
            )));
        }
        loads.push((paddr, offset, filesz, memsz));
    }
    if loads.is_empty() {
        return Err(BootError::NoLoadSegments {
            path: path.to_owned(),
        });
    }
    let entry = header.e_entry(e);
    let low = entry & (layout::MAPPED_LIMIT - 1);
    if !loads
        .iter()
        .any(|&(paddr, _, filesz, _)| paddr <= low && low < paddr + filesz)
    {
        return Err(bad(format!(
            "its entry point {entry:#x} lies outside its loaded segments"
        )));
    }

    // The symbols as the loader finds them; broken section headers only cost the symbols.
    let mut symbols = None;
    let shoff = header.e_shoff(e);
    let shnum = u64::from(header.e_shnum(e));
    if shoff != 0 && shnum != 0 && header.e_shentsize(e) == 64 && in_file(shoff, shnum * 64) {
        if let Ok(sections) = header.section_headers(e, data) {
            for sh in sections {
                let (off, len) = (sh.sh_offset(e), sh.sh_size(e));
                let loaded = loads
                    .iter()
                    .any(|&(_, o, filesz, _)| off >= o && off + len <= o + filesz);
                if sh.sh_type(e) != elf::SHT_SYMTAB || len == 0 || !in_file(off, len) || loaded {
                    continue;
                }
                let Some(strtab) = sections.get(sh.sh_link(e) as usize) else {
                    continue;
                };
                if strtab.sh_type(e) == elf::SHT_STRTAB
                    && in_file(strtab.sh_offset(e), strtab.sh_size(e))
                {
                    symbols = Some((len, strtab.sh_size(e)));
                }
            }
        }
    }

    Ok(ParsedKernel {
        info: KernelInfo {
            entry,
            lowest_paddr: loads.iter().map(|l| l.0).min().unwrap_or_default(),
            highest_paddr: loads.iter().map(|l| l.0 + l.3).max().unwrap_or_default(),
            has_symbols: symbols.is_some(),
            has_pvh_note,
        },
        symbols,
    })
}

#[cfg(test)]
mod tests;
