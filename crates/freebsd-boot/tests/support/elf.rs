//! Synthetic kernels for the tests: small ELF files with the parts the stub looks at.
#![allow(dead_code)]

/// Where FreeBSD amd64 kernels are linked: physical addresses plus this.
pub const KERNBASE: u64 = 0xffff_ffff_8000_0000;

pub struct Segment {
    pub paddr: u64,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

pub struct TestElf {
    pub machine: u16,
    pub e_type: u16,
    pub big_endian: bool,
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// `.symtab` and `.strtab` contents.
    pub symbols: Option<(Vec<u8>, Vec<u8>)>,
    pub pvh_note: bool,
}

impl TestElf {
    /// A kernel as FreeBSD links one: `code` at 2 MiB, entered at its first byte.
    pub fn kernel(code: &[u8]) -> TestElf {
        TestElf {
            machine: 62,
            e_type: 2,
            big_endian: false,
            entry: KERNBASE + 0x20_0000,
            segments: vec![Segment {
                paddr: 0x20_0000,
                vaddr: KERNBASE + 0x20_0000,
                data: code.to_vec(),
                memsz: code.len() as u64,
            }],
            symbols: None,
            pvh_note: false,
        }
    }

    /// Adds a segment at `paddr`, linked at KERNBASE + `paddr`.
    pub fn segment(mut self, paddr: u64, data: &[u8], memsz: u64) -> TestElf {
        self.segments.push(Segment {
            paddr,
            vaddr: KERNBASE + paddr,
            data: data.to_vec(),
            memsz,
        });
        self
    }

    /// Three symbols' worth of `.symtab` and a string table whose length is not a multiple
    /// of 8, so the padding after it shows.
    pub fn with_symbols(mut self) -> TestElf {
        let symtab: Vec<u8> = (0..72u8).collect();
        let strtab = b"\0kdb_enter\0vpanic\0".to_vec();
        self.symbols = Some((symtab, strtab));
        self
    }

    pub fn with_pvh_note(mut self) -> TestElf {
        self.pvh_note = true;
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let phnum = self.segments.len() + usize::from(self.pvh_note);
        out.resize(64 + 56 * phnum, 0);
        let mut phdrs = Vec::new();
        for s in &self.segments {
            align(&mut out, 16);
            let offset = out.len() as u64;
            out.extend_from_slice(&s.data);
            phdrs.push((1u32, offset, s.vaddr, s.paddr, s.data.len() as u64, s.memsz));
        }
        if self.pvh_note {
            align(&mut out, 4);
            let offset = out.len() as u64;
            for word in [4u32, 4, 18] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(b"Xen\0");
            out.extend_from_slice(&0x20_0000u32.to_le_bytes());
            phdrs.push((4, offset, 0, 0, 20, 20));
        }
        for (i, (p_type, offset, vaddr, paddr, filesz, memsz)) in phdrs.into_iter().enumerate() {
            let ph = &mut out[64 + 56 * i..64 + 56 * (i + 1)];
            ph[0..4].copy_from_slice(&p_type.to_le_bytes());
            ph[4..8].copy_from_slice(&7u32.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&8u64.to_le_bytes());
        }

        let (mut shoff, mut shnum, mut shstrndx) = (0u64, 0u16, 0u16);
        if let Some((symtab, strtab)) = &self.symbols {
            align(&mut out, 8);
            let sym_off = out.len() as u64;
            out.extend_from_slice(symtab);
            let str_off = out.len() as u64;
            out.extend_from_slice(strtab);
            let names_off = out.len() as u64;
            let names = b"\0.symtab\0.strtab\0.shstrtab\0";
            out.extend_from_slice(names);
            align(&mut out, 8);
            shoff = out.len() as u64;
            // name, type, offset, size, link
            let sections = [
                (0u32, 0u32, 0u64, 0u64, 0u32),
                (1, 2, sym_off, symtab.len() as u64, 2),
                (9, 3, str_off, strtab.len() as u64, 0),
                (17, 3, names_off, names.len() as u64, 0),
            ];
            for (name, sh_type, offset, size, link) in sections {
                let mut sh = [0u8; 64];
                sh[0..4].copy_from_slice(&name.to_le_bytes());
                sh[4..8].copy_from_slice(&sh_type.to_le_bytes());
                sh[24..32].copy_from_slice(&offset.to_le_bytes());
                sh[32..40].copy_from_slice(&size.to_le_bytes());
                sh[40..44].copy_from_slice(&link.to_le_bytes());
                if sh_type == 2 {
                    sh[56..64].copy_from_slice(&24u64.to_le_bytes());
                }
                out.extend_from_slice(&sh);
            }
            shnum = 4;
            shstrndx = 3;
        }

        let h = &mut out[..64];
        h[0..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = if self.big_endian { 2 } else { 1 };
        h[6] = 1;
        h[7] = 9; // FreeBSD
        h[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        h[18..20].copy_from_slice(&self.machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&self.entry.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[40..48].copy_from_slice(&shoff.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        h[60..62].copy_from_slice(&shnum.to_le_bytes());
        h[62..64].copy_from_slice(&shstrndx.to_le_bytes());
        out
    }
}

/// The header of a 32-bit i386 executable.
pub fn elf32() -> Vec<u8> {
    let mut h = vec![0u8; 52];
    h[0..4].copy_from_slice(b"\x7fELF");
    h[4] = 1;
    h[5] = 1;
    h[6] = 1;
    h[16..18].copy_from_slice(&2u16.to_le_bytes());
    h[18..20].copy_from_slice(&3u16.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..28].copy_from_slice(&0x10_0000u32.to_le_bytes());
    h[40..42].copy_from_slice(&52u16.to_le_bytes());
    h
}

fn align(out: &mut Vec<u8>, to: usize) {
    out.resize(out.len().next_multiple_of(to), 0);
}
