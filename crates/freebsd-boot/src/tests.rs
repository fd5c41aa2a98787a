use super::*;

#[path = "../tests/support/elf.rs"]
mod elf_builder;

use elf_builder::{elf32, TestElf, KERNBASE};

const NOP: &[u8] = &[0x90; 32];

fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn kernel_file(dir: &tempfile::TempDir, elf: &TestElf) -> PathBuf {
    file(dir, "kernel", &elf.build())
}

#[track_caller]
fn check(elf: &TestElf) -> Result<KernelInfo, BootError> {
    let dir = tempfile::tempdir().unwrap();
    check_kernel(&kernel_file(&dir, elf))
}

#[track_caller]
fn problem(elf: &TestElf) -> String {
    match check(elf) {
        Err(BootError::BadKernel { problem, .. }) => problem,
        other => panic!("not BadKernel: {other:?}"),
    }
}

#[test]
fn a_kernel_is_described() {
    let elf = TestElf::kernel(NOP)
        .segment(0x30_0000, b"data", 0x2000)
        .with_symbols()
        .with_pvh_note();
    assert_eq!(
        check(&elf).unwrap(),
        KernelInfo {
            entry: KERNBASE + 0x20_0000,
            lowest_paddr: 0x20_0000,
            highest_paddr: 0x30_2000,
            has_symbols: true,
            has_pvh_note: true,
        }
    );
    let bare = check(&TestElf::kernel(NOP)).unwrap();
    assert!(!bare.has_symbols && !bare.has_pvh_note);
}

#[test]
fn what_is_not_a_freebsd_amd64_kernel_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = file(&dir, "text", b"hello\n");
    assert!(matches!(check_kernel(&text), Err(BootError::NotElf { .. })));
    let empty = file(&dir, "empty", b"");
    assert!(matches!(
        check_kernel(&empty),
        Err(BootError::NotElf { .. })
    ));
    let i386 = file(&dir, "i386", &elf32());
    let err = check_kernel(&i386).unwrap_err();
    assert!(matches!(err, BootError::Elf32 { .. }));
    assert!(err
        .to_string()
        .ends_with("is a 32-bit ELF; FreeBSD amd64 kernels are ELF64"));

    let mut elf = TestElf::kernel(NOP);
    elf.machine = 183;
    assert!(matches!(
        check(&elf),
        Err(BootError::NotX86_64 { machine: 183, .. })
    ));
    let mut elf = TestElf::kernel(NOP);
    elf.e_type = 3;
    assert!(matches!(
        check(&elf),
        Err(BootError::NotExecutable { e_type: 3, .. })
    ));
    let mut elf = TestElf::kernel(NOP);
    elf.big_endian = true;
    assert!(problem(&elf).contains("big-endian"));
    let mut elf = TestElf::kernel(NOP);
    elf.segments.clear();
    assert!(matches!(check(&elf), Err(BootError::NoLoadSegments { .. })));
}

#[test]
fn segments_the_stub_cannot_place_are_refused() {
    let mut low = TestElf::kernel(NOP);
    low.segments[0].paddr = 0x10_0000;
    low.segments[0].vaddr = KERNBASE + 0x10_0000;
    low.entry = low.segments[0].vaddr;
    assert!(problem(&low).contains("loads at 0x100000, below 2 MiB"));

    let high = TestElf::kernel(NOP).segment(0x3ff0_0000, b"", 0x20_0000);
    assert!(problem(&high).contains("past the first 1 GiB"));

    let mut moved = TestElf::kernel(NOP);
    moved.segments[0].vaddr = KERNBASE + 0x40_0000;
    moved.entry = moved.segments[0].vaddr;
    assert!(problem(&moved).contains("is linked at 0xffffffff80400000 but loads at 0x200000"));

    let mut outside = TestElf::kernel(NOP);
    outside.entry = KERNBASE + 0x50_0000;
    assert!(problem(&outside).contains("entry point 0xffffffff80500000 lies outside"));

    let mut bss = TestElf::kernel(NOP);
    bss.segments[0].memsz = 4;
    assert!(problem(&bss).contains("larger in the file than in memory"));
}

#[test]
fn the_stub_is_built_or_says_why_not() {
    match stub_binary() {
        Ok(stub) => {
            assert!(stub.starts_with(b"\x7fELF"));
            // The whole image, bss included, below the kernel's first segment.
            let header = elf::FileHeader64::<LE>::parse(stub).unwrap();
            for ph in header.program_headers(LE, stub).unwrap() {
                if ph.p_type(LE) == elf::PT_LOAD {
                    assert!(ph.p_paddr(LE) >= layout::STUB_BASE);
                    assert!(ph.p_paddr(LE) + ph.p_memsz(LE) <= layout::KERNEL_MIN);
                }
            }
        }
        Err(why) => assert!(why.contains("clang-19 lld-19"), "{why}"),
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn a_container_holds_the_kernel_first_then_the_modules_page_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let kernel_bytes = TestElf::kernel(NOP).with_symbols().build();
    let kernel = file(&dir, "kernel", &kernel_bytes);
    let root: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let root_path = file(&dir, "root.img", &root);
    let out = dir.path().join("boot.img");
    let modules = [BootModule {
        name: "/boot/root.img",
        kind: "md_image",
        path: &root_path,
    }];
    write_container(&kernel, &modules, &out).unwrap();

    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"VMLBOOT1");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 0);
    let entry = |i: usize| {
        let e = &bytes[16 + 112 * i..16 + 112 * (i + 1)];
        let name = e[16..80].split(|&b| b == 0).next().unwrap().to_vec();
        let kind = e[80..112].split(|&b| b == 0).next().unwrap().to_vec();
        assert!(e[16 + name.len()..80].iter().all(|&b| b == 0));
        assert!(e[80 + kind.len()..112].iter().all(|&b| b == 0));
        (u64_at(e, 0) as usize, u64_at(e, 8) as usize, name, kind)
    };
    let (offset, size, name, kind) = entry(0);
    assert_eq!((offset, size), (4096, kernel_bytes.len()));
    assert_eq!(
        (&name[..], &kind[..]),
        (&b"/boot/kernel/kernel"[..], &b"elf kernel"[..])
    );
    assert_eq!(&bytes[offset..offset + size], &kernel_bytes[..]);
    let (offset, size, name, kind) = entry(1);
    assert_eq!(offset, (4096 + kernel_bytes.len()).next_multiple_of(4096));
    assert_eq!(size, root.len());
    assert_eq!(
        (&name[..], &kind[..]),
        (&b"/boot/root.img"[..], &b"md_image"[..])
    );
    assert_eq!(&bytes[offset..], &root[..]);
}

#[test]
fn a_container_refuses_what_the_stub_could_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = kernel_file(&dir, &TestElf::kernel(NOP));
    let data = file(&dir, "data", b"x");
    let out = dir.path().join("boot.img");
    let long = "n".repeat(64);
    for (name, kind, why) in [
        (long.as_str(), "md_image", "name must be 1 to 63 bytes"),
        ("", "md_image", "name must be 1 to 63 bytes"),
        ("/a\0b", "md_image", "name must be 1 to 63 bytes"),
        ("/a", "", "kind must be 1 to 31 bytes"),
        ("/a", "elf kernel", "only the kernel"),
        ("/boot/kernel/kernel", "md_image", "same name"),
    ] {
        let module = BootModule {
            name,
            kind,
            path: &data,
        };
        let err = write_container(&kernel, &[module], &out).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
    let twice = [BootModule {
        name: "/a",
        kind: "md_image",
        path: &data,
    }; 2];
    assert!(write_container(&kernel, &twice, &out)
        .unwrap_err()
        .to_string()
        .contains("same name"));
    let many = vec![twice[0]; 32];
    assert!(write_container(&kernel, &many, &out)
        .unwrap_err()
        .to_string()
        .contains("at most 31 modules"));

    let not_elf = file(&dir, "not-elf", b"#!/bin/sh\n");
    assert!(matches!(
        write_container(&not_elf, &[], &out),
        Err(BootError::NotElf { .. })
    ));
    let missing = BootModule {
        name: "/a",
        kind: "md_image",
        path: &dir.path().join("missing"),
    };
    assert!(matches!(
        write_container(&kernel, &[missing], &out),
        Err(BootError::Read { .. })
    ));
}

#[test]
fn memory_needed_counts_the_layout_and_the_container_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let elf = TestElf::kernel(NOP)
        .segment(0x20_1000, b"data", 0x2000)
        .with_symbols();
    let kernel_bytes = elf.build();
    let kernel = file(&dir, "kernel", &kernel_bytes);
    let root = file(&dir, "root.img", &[7; 5000]);
    let modules = [BootModule {
        name: "/boot/root.img",
        kind: "md_image",
        path: &root,
    }];

    // Segments end at 0x203000; then the 72-byte symbol table and the 18-byte string table,
    // each after its size and padded to 8; the module on the next page; then the metadata
    // and environment at their largest.
    let esym: u64 = 0x20_3000 + 8 + 72 + 8 + 24;
    let module_end = esym.next_multiple_of(4096) + 5000;
    let modulep = module_end.next_multiple_of(4096);
    let envp = (modulep + layout::METADATA_MAX).next_multiple_of(4096);
    let kernend = (envp + layout::ENV_MAX).next_multiple_of(4096);
    let container = (4096 + kernel_bytes.len() as u64).next_multiple_of(4096) + 5000;
    assert_eq!(
        memory_needed(&kernel, &modules).unwrap(),
        kernend + container.next_multiple_of(4096) + (1 << 20)
    );

    // Without modules, the container is the header page and the kernel.
    let without = memory_needed(&kernel, &[]).unwrap();
    let kernend = ((esym + layout::METADATA_MAX).next_multiple_of(4096) + layout::ENV_MAX)
        .next_multiple_of(4096);
    assert_eq!(
        without,
        kernend + (4096 + kernel_bytes.len() as u64).next_multiple_of(4096) + (1 << 20)
    );
}

#[test]
fn memory_needed_refuses_a_layout_past_1_gib() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = kernel_file(&dir, &TestElf::kernel(NOP));
    let big = dir.path().join("big.img");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let modules = [BootModule {
        name: "/boot/root.img",
        kind: "md_image",
        path: &big,
    }];
    let err = memory_needed(&kernel, &modules).unwrap_err();
    assert!(matches!(err, BootError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("past the first 1 GiB"), "{err}");
}

/// A real kernel, when `VMLANE_FREEBSD_KERNEL` names one.
#[test]
fn a_real_kernel_passes() {
    let Some(path) = std::env::var_os("VMLANE_FREEBSD_KERNEL") else {
        println!("skipped: VMLANE_FREEBSD_KERNEL names no FreeBSD kernel");
        return;
    };
    let info = check_kernel(Path::new(&path)).unwrap();
    assert_eq!(info.lowest_paddr, 0x20_0000);
    assert!(info.entry >= KERNBASE + 0x20_0000);
    assert!(info.has_symbols);
    let needed = memory_needed(Path::new(&path), &[]).unwrap();
    assert!(
        needed > info.highest_paddr && needed < 256 << 20,
        "{needed}"
    );
}
