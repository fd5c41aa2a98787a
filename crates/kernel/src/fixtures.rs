//! Fake kernels and a fake host in temporary directories, for tests.

use crate::search::Search;
use std::fs;
use std::path::PathBuf;

/// Where a [`fake_bzimage`]'s protected-mode code starts: after the boot sector and 4 setup
/// sectors.
pub const BZIMAGE_CODE_START: usize = 5 * 512;
/// How long a [`fake_bzimage`] is, as its boot header says.
pub const BZIMAGE_LEN: usize = 0x1000;

/// A file with a boot protocol 2.15 header whose version string names `release`, and whose
/// header describes the file's real length: 4 setup sectors, `syssize` covering the rest, a
/// payload inside it.
pub fn fake_bzimage(release: &str) -> Vec<u8> {
    let mut image = vec![0u8; BZIMAGE_LEN];
    image[0x1f1] = 4; // setup_sects
    let syssize = ((BZIMAGE_LEN - BZIMAGE_CODE_START) / 16) as u32;
    image[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes()); // protocol 2.15
    image[0x248..0x24c].copy_from_slice(&0x100u32.to_le_bytes()); // payload_offset
    image[0x24c..0x250].copy_from_slice(&0x400u32.to_le_bytes()); // payload_length
    let at = 0x400u16;
    image[0x20e..0x210].copy_from_slice(&(at - 0x200).to_le_bytes());
    let text = format!("{release} (dev@host) #1 SMP\0");
    image[at as usize..at as usize + text.len()].copy_from_slice(text.as_bytes());
    image
}

/// Where a fake vmlinux keeps its Xen note.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// A PVH entry note in a PT_NOTE segment.
    Segment,
    /// A PVH entry note in an SHT_NOTE section only.
    Section,
    /// A Xen note of another type, in a segment: no PVH entry.
    Other,
}

/// ELF notes as a note segment holds them: each `(name, type, descriptor)` with its name
/// NUL-terminated and both padded to 4 bytes.
pub fn encode_notes(notes: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (name, n_type, desc) in notes {
        let name = [*name, b"\0"].concat();
        for word in [name.len() as u32, desc.len() as u32, *n_type] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        for part in [&name[..], desc] {
            bytes.extend_from_slice(part);
            bytes.resize(bytes.len().next_multiple_of(4), 0);
        }
    }
    bytes
}

/// Where [`elf_with_notes`] puts the notes: right after the ELF and program headers.
pub const NOTE_OFFSET: usize = 64 + 56;

/// A little-endian x86-64 ELF header with `os_abi`, one program header of type `p_type`
/// covering `notes`, and the notes themselves.
pub fn elf_with_notes(os_abi: u8, p_type: u32, notes: &[u8]) -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little endian
    elf[6] = 1;
    elf[7] = os_abi;
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let mut phdr = vec![0u8; 56];
    phdr[..4].copy_from_slice(&p_type.to_le_bytes());
    phdr[8..16].copy_from_slice(&(NOTE_OFFSET as u64).to_le_bytes());
    phdr[32..40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    phdr[40..48].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    phdr[48..56].copy_from_slice(&4u64.to_le_bytes());
    elf.extend_from_slice(&phdr);
    elf.extend_from_slice(notes);
    elf
}

/// A minimal x86-64 ELF with a Xen note and a `Linux version` banner.
pub fn fake_vmlinux(release: &str, where_: Note) -> Vec<u8> {
    let n_type: u32 = if where_ == Note::Other { 6 } else { 18 };
    let note = encode_notes(&[(b"Xen", n_type, &0x100_0000u32.to_le_bytes())]);
    let note_offset = NOTE_OFFSET;
    let shstrtab = b"\0.notes\0.shstrtab\0";
    // PT_NOTE, or PT_NULL when the note is to be found through sections only.
    let p_type: u32 = if where_ == Note::Section { 0 } else { 4 };
    let mut elf = elf_with_notes(0, p_type, &note);
    let shstrtab_offset = elf.len();
    elf.extend_from_slice(shstrtab);
    elf.extend_from_slice(&[0u8; 3000]);
    elf.extend_from_slice(
        format!("Linux version {release} (dev@host) (gcc) #1 SMP\n\0").as_bytes(),
    );
    elf.extend_from_slice(&[0u8; 300]);
    elf.resize(elf.len().next_multiple_of(8), 0);

    // Section headers: null, .notes (SHT_NOTE), .shstrtab (SHT_STRTAB).
    let shoff = elf.len();
    let section = |name: u32, kind: u32, offset: usize, size: usize, align: u64| {
        let mut shdr = vec![0u8; 64];
        shdr[..4].copy_from_slice(&name.to_le_bytes());
        shdr[4..8].copy_from_slice(&kind.to_le_bytes());
        shdr[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
        shdr[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        shdr[48..56].copy_from_slice(&align.to_le_bytes());
        shdr
    };
    elf.extend_from_slice(&[0u8; 64]);
    elf.extend_from_slice(&section(1, 7, note_offset, note.len(), 4));
    elf.extend_from_slice(&section(8, 3, shstrtab_offset, shstrtab.len(), 1));
    elf[40..48].copy_from_slice(&(shoff as u64).to_le_bytes()); // e_shoff
    elf[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    elf[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
    elf
}

/// Writes `bytes` to a file called `name` in a new temporary directory.
pub fn write_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// A host in a temporary directory: `cwd/`, `cache/`, `boot/`, `lib/modules/`.
pub struct Host {
    root: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Host {
        let host = Host {
            root: tempfile::tempdir().unwrap(),
        };
        for dir in ["cwd", "cache", "boot", "lib/modules"] {
            fs::create_dir_all(host.path(dir)).unwrap();
        }
        host
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A search that looks only inside this host.
    pub fn search(&self) -> Search {
        Search {
            explicit: None,
            modules: None,
            env_kernel: None,
            cwd: self.path("cwd"),
            cache_dir: self.path("cache"),
            boot_dir: self.path("boot"),
            system_modules: self.path("lib/modules"),
            arch: vmlane_spec::Arch::X86_64,
        }
    }

    /// A kernel laid out in the cache as scripts/setup leaves a Debian one.
    pub fn cache_kernel(&self, name: &str, release: &str, with_vmlinux: bool) {
        let dir = self.path(&format!("cache/kernels/{name}"));
        fs::create_dir_all(dir.join("boot")).unwrap();
        fs::create_dir_all(dir.join("lib/modules").join(release)).unwrap();
        let boot = dir.join("boot");
        fs::write(
            boot.join(format!("vmlinuz-{release}")),
            fake_bzimage(release),
        )
        .unwrap();
        fs::write(boot.join(format!("config-{release}")), "CONFIG_9P_FS=m\n").unwrap();
        if with_vmlinux {
            fs::write(
                boot.join(format!("vmlinux-{release}")),
                fake_vmlinux(release, Note::Segment),
            )
            .unwrap();
        }
    }

    /// `boot/vmlinuz-<release>` and its config.
    pub fn boot_kernel(&self, release: &str) {
        fs::write(
            self.path(&format!("boot/vmlinuz-{release}")),
            fake_bzimage(release),
        )
        .unwrap();
        fs::write(self.path(&format!("boot/config-{release}")), "").unwrap();
    }

    /// A built Linux tree at `rel`, returning its path.
    pub fn build_tree(&self, rel: &str) -> PathBuf {
        let tree = self.path(rel);
        fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        fs::create_dir_all(tree.join("include/config")).unwrap();
        fs::write(
            tree.join("arch/x86/boot/bzImage"),
            fake_bzimage("6.12.0-rc1"),
        )
        .unwrap();
        fs::write(
            tree.join("include/config/kernel.release"),
            "6.12.0-rc1-dirty\n",
        )
        .unwrap();
        fs::write(tree.join(".config"), "CONFIG_VIRTIO_MMIO=y\n").unwrap();
        fs::write(tree.join("modules.order"), "").unwrap();
        tree
    }
}

/// An x86-64 ELF file holding only these sections (`(name, sh_type)`, 16 zero bytes each)
/// and the section name table: enough for checks that read section headers alone.
pub fn elf_with_sections(sections: &[(&str, u32)]) -> Vec<u8> {
    let mut elf = elf_with_notes(0, 0, &[]);
    let mut names = vec![0u8];
    let mut headers = vec![0u8; 64];
    let mut section = |name: &str, kind: u32, offset: usize, size: usize| {
        let mut shdr = vec![0u8; 64];
        shdr[..4].copy_from_slice(&(names.len() as u32).to_le_bytes());
        shdr[4..8].copy_from_slice(&kind.to_le_bytes());
        shdr[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
        shdr[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        names.extend_from_slice(name.as_bytes());
        names.push(0);
        headers.extend_from_slice(&shdr);
    };
    for (name, kind) in sections {
        section(name, *kind, elf.len(), 16);
        elf.extend_from_slice(&[0u8; 16]);
    }
    let names_offset = elf.len();
    section(".shstrtab", 3, names_offset, 0);
    let names_len = names.len();
    headers[64 * sections.len() + 64 + 32..][..8]
        .copy_from_slice(&(names_len as u64).to_le_bytes());
    elf.extend_from_slice(&names);
    elf.resize(elf.len().next_multiple_of(8), 0);
    let shoff = elf.len();
    elf.extend_from_slice(&headers);
    elf[40..48].copy_from_slice(&(shoff as u64).to_le_bytes()); // e_shoff
    elf[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    let count = sections.len() as u16 + 2;
    elf[60..62].copy_from_slice(&count.to_le_bytes()); // e_shnum
    elf[62..64].copy_from_slice(&(count - 1).to_le_bytes()); // e_shstrndx
    elf
}
