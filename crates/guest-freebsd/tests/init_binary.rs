//! The built init must be something a FreeBSD/amd64 kernel will start as PID 1 with no help:
//! a branded, static ELF64 executable. No FreeBSD kernel runs in CI, so its shape is all that
//! can be checked here.

use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian;

/// The init, or `None` when this machine cannot build it and the test should be skipped.
fn init_or_skip() -> Option<&'static [u8]> {
    match vmlane_guest_freebsd::init_binary() {
        Ok(init) => Some(init),
        Err(why) if std::env::var("VMLANE_E2E_REQUIRED").as_deref() == Ok("1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

#[test]
fn init_is_a_static_freebsd_amd64_executable() {
    let Some(init) = init_or_skip() else { return };
    assert!(init.len() < 64 * 1024, "init is {} bytes", init.len());

    let header = FileHeader64::<LittleEndian>::parse(init).expect("an ELF64 file");
    let endian = header.endian().expect("known byte order");
    let ident = header.e_ident();
    assert_eq!(ident.class, elf::ELFCLASS64);
    assert_eq!(ident.data, elf::ELFDATA2LSB);
    assert_eq!(
        ident.os_abi,
        elf::ELFOSABI_FREEBSD,
        "EI_OSABI brands it FreeBSD"
    );
    assert_eq!(header.e_machine(endian), elf::EM_X86_64);
    assert_eq!(
        header.e_type(endian),
        elf::ET_EXEC,
        "not PIE, not a shared object"
    );

    let segments = header
        .program_headers(endian, init)
        .expect("program headers");
    for segment in segments {
        let kind = segment.p_type(endian);
        assert_ne!(kind, elf::PT_INTERP, "a static init has no interpreter");
        assert_ne!(
            kind,
            elf::PT_DYNAMIC,
            "a static init has no dynamic section"
        );
    }

    let entry = header.e_entry(endian);
    let entry_segment = segments.iter().find(|s| {
        let start = s.p_vaddr(endian);
        s.p_type(endian) == elf::PT_LOAD && (start..start + s.p_memsz(endian)).contains(&entry)
    });
    let entry_segment = entry_segment.expect("the entry point lies in a PT_LOAD");
    assert_ne!(
        entry_segment.p_flags(endian) & elf::PF_X,
        0,
        "the entry point's segment is executable"
    );
    assert!(
        entry_segment.p_offset(endian) + entry_segment.p_filesz(endian) <= init.len() as u64,
        "the entry segment's bytes are in the file"
    );
}

#[test]
fn init_carries_the_freebsd_abi_note() {
    let Some(init) = init_or_skip() else { return };
    let header = FileHeader64::<LittleEndian>::parse(init).expect("an ELF64 file");
    let endian = header.endian().expect("known byte order");
    let segments = header
        .program_headers(endian, init)
        .expect("program headers");

    let mut osrel = None;
    for segment in segments {
        let Some(mut notes) = segment.notes(endian, init).expect("valid notes") else {
            continue;
        };
        while let Some(note) = notes.next().expect("valid note") {
            if note.name() == b"FreeBSD" && note.n_type(endian) == 1 {
                let desc: [u8; 4] = note.desc().try_into().expect("a 4-byte osrel");
                osrel = Some(u32::from_le_bytes(desc));
            }
        }
    }
    // 13.0: old enough for every kernel vmlane boots, so the "osrel too high" check passes.
    assert_eq!(osrel, Some(1_300_000), "NT_FREEBSD_ABI_TAG note");
}
