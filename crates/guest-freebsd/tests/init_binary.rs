//! The built init must be something a FreeBSD/amd64 kernel will start as PID 1 with no help, and
//! the relay something a FreeBSD image runs without a libc: branded, static ELF64 executables. No
//! FreeBSD kernel runs in CI, so their shape is all that can be checked here.

use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian;

/// The init and the relay, or none when this machine cannot build them and the tests should
/// be skipped.
fn programs_or_skip() -> Vec<(&'static str, &'static [u8])> {
    let built = vmlane_guest_freebsd::init_binary().and_then(|init| {
        vmlane_guest_freebsd::relay_binary().map(|relay| vec![("init", init), ("relay", relay)])
    });
    match built {
        Ok(programs) => programs,
        Err(why) if std::env::var("VMLANE_E2E_REQUIRED").as_deref() == Ok("1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            Vec::new()
        }
    }
}

#[test]
fn init_and_relay_are_static_freebsd_amd64_executables() {
    for (name, program) in programs_or_skip() {
        println!("{name}: {} bytes", program.len());
        static_freebsd_executable(name, program);
    }
}

fn static_freebsd_executable(name: &str, program: &[u8]) {
    assert!(
        program.len() < 64 * 1024,
        "{name} is {} bytes",
        program.len()
    );

    let header = FileHeader64::<LittleEndian>::parse(program).expect("an ELF64 file");
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
        .program_headers(endian, program)
        .expect("program headers");
    for segment in segments {
        let kind = segment.p_type(endian);
        assert_ne!(kind, elf::PT_INTERP, "static: no interpreter");
        assert_ne!(kind, elf::PT_DYNAMIC, "static: no dynamic section");
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
        entry_segment.p_offset(endian) + entry_segment.p_filesz(endian) <= program.len() as u64,
        "the entry segment's bytes are in the file"
    );
}

#[test]
fn init_and_relay_carry_the_freebsd_abi_note() {
    // 13.0: old enough for every kernel vmlane boots, so the "osrel too high" check passes.
    for (name, program) in programs_or_skip() {
        assert_eq!(
            abi_note(program),
            Some(1_300_000),
            "{name}: NT_FREEBSD_ABI_TAG note"
        );
    }
}

/// The osrel of the NT_FREEBSD_ABI_TAG note, if there is one.
fn abi_note(program: &[u8]) -> Option<u32> {
    let header = FileHeader64::<LittleEndian>::parse(program).expect("an ELF64 file");
    let endian = header.endian().expect("known byte order");
    let segments = header
        .program_headers(endian, program)
        .expect("program headers");

    let mut osrel = None;
    for segment in segments {
        let Some(mut notes) = segment.notes(endian, program).expect("valid notes") else {
            continue;
        };
        while let Some(note) = notes.next().expect("valid note") {
            if note.name() == b"FreeBSD" && note.n_type(endian) == 1 {
                let desc: [u8; 4] = note.desc().try_into().expect("a 4-byte osrel");
                osrel = Some(u32::from_le_bytes(desc));
            }
        }
    }
    osrel
}
