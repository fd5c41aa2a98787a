//! The stub under QEMU: its errors, and the handover a kernel sees, read back by a tiny kernel
//! that sends the memory the stub laid out over the serial port. Without clang, lld or QEMU
//! these skip, unless `VMLANE_E2E_REQUIRED=1` says they must run.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::elf::{elf32, TestElf};
use vmlane_freebsd_boot::{memory_needed, write_container, BootModule};

const QEMU: &str = "qemu-system-x86_64";
/// Far more than any of these boots takes; only a stub that hangs hits it.
const TIMEOUT: Duration = Duration::from_secs(60);

fn skip(why: &str) {
    let required = std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1");
    assert!(!required, "VMLANE_E2E_REQUIRED=1, but {why}");
    println!("skipped: {why}");
}

/// What came of one boot.
struct Boot {
    /// The serial console, as bytes: the dump kernel sends binary.
    output: Vec<u8>,
    /// How QEMU ended, if it did so by itself.
    status: Option<ExitStatus>,
    stderr: String,
}

impl Boot {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    #[track_caller]
    fn assert_exited(&self) {
        assert!(
            self.status.is_some_and(|s| s.success()),
            "QEMU did not exit by itself with status 0 ({:?}):\n{}\n--- stderr:\n{}",
            self.status,
            self.text(),
            self.stderr
        );
    }

    /// The one line the stub prints on an error.
    #[track_caller]
    fn assert_error(&self, line: &str) {
        self.assert_exited();
        assert_eq!(self.text(), format!("{line}\n"), "stderr:\n{}", self.stderr);
    }
}

/// QEMU's machine for kernels that find their devices without ACPI.
const MICROVM: &str = "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=on";

/// Boots the stub with `initrd` as module 0 on a microvm of `memory`, plus `args`, until QEMU
/// exits or the timeout. `None` once the test has been skipped.
fn boot(initrd: &Path, append: &str, memory: &str, args: &[&str]) -> Option<Boot> {
    boot_on(MICROVM, initrd, append, memory, args, None)
}

/// `boot` on `machine`; when the console shows `reply.0`, `reply.1` is typed on it, once.
fn boot_on(
    machine: &str,
    initrd: &Path,
    append: &str,
    memory: &str,
    args: &[&str],
    mut reply: Option<(&str, &[u8])>,
) -> Option<Boot> {
    let stub = match vmlane_freebsd_boot::stub_binary() {
        Ok(stub) => stub,
        Err(why) => {
            skip(why);
            return None;
        }
    };
    if Command::new(QEMU).arg("--version").output().is_err() {
        skip(&format!("{QEMU} is not installed"));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let stub_path = dir.path().join("stub");
    std::fs::write(&stub_path, stub).unwrap();
    let mut child = Command::new(QEMU)
        .args(["-M", machine])
        .args(["-accel", "tcg", "-cpu", "max", "-m", memory])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-serial", "stdio"])
        .args(args)
        .arg("-kernel")
        .arg(&stub_path)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut stdout = child.stdout.take().unwrap();
    let (chunks, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if chunks.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + TIMEOUT;
    let mut output = Vec::new();
    let mut closed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(chunk) => {
                output.extend_from_slice(&chunk);
                if let Some((prompt, answer)) = reply {
                    if String::from_utf8_lossy(&output).contains(prompt) {
                        let mut stdin = child.stdin.as_ref().unwrap();
                        let _ = stdin.write_all(answer);
                        reply = None;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                closed = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    let mut status = None;
    while closed && status.is_none() && Instant::now() < deadline {
        status = child.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    // A no-op once QEMU has exited by itself.
    let _ = child.kill();
    let _ = child.wait();
    Some(Boot {
        output,
        status,
        stderr: stderr.join().unwrap(),
    })
}

fn boot_bytes(initrd: &[u8], append: &str) -> Option<Boot> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("initrd");
    std::fs::write(&path, initrd).unwrap();
    boot(&path, append, "128M", &[])
}

#[test]
fn a_file_that_is_not_an_elf_is_named_and_the_vm_ends() {
    let Some(boot) = boot_bytes(b"#!/bin/sh\necho hello\n", "") else {
        return;
    };
    boot.assert_error("vmlane-boot: module 0 is not an ELF file");
}

#[test]
fn a_32_bit_elf_is_named_and_the_vm_ends() {
    let Some(boot) = boot_bytes(&elf32(), "") else {
        return;
    };
    boot.assert_error("vmlane-boot: the kernel is a 32-bit ELF; FreeBSD amd64 kernels are ELF64");
}

#[test]
fn an_arm64_kernel_is_named_and_the_vm_ends() {
    let mut elf = TestElf::kernel(&[0x90; 16]);
    elf.machine = 183;
    let Some(boot) = boot_bytes(&elf.build(), "") else {
        return;
    };
    boot.assert_error("vmlane-boot: the kernel is not an x86-64 ELF (e_machine 183)");
}

#[test]
fn a_container_without_the_kernel_first_is_named() {
    let mut bytes = b"VMLBOOT1".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&4096u64.to_le_bytes());
    bytes.extend_from_slice(&16u64.to_le_bytes());
    let mut name = b"/boot/root.img".to_vec();
    name.resize(64, 0);
    let mut kind = b"md_image".to_vec();
    kind.resize(32, 0);
    bytes.extend_from_slice(&name);
    bytes.extend_from_slice(&kind);
    bytes.resize(4096 + 16, 0);
    let Some(boot) = boot_bytes(&bytes, "") else {
        return;
    };
    boot.assert_error(
        "vmlane-boot: the boot container's first entry has the type \"md_image\"; it must be \
         the kernel, of type \"elf kernel\"",
    );
}

#[test]
fn a_container_entry_past_its_end_is_named() {
    let mut bytes = b"VMLBOOT1".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&4096u64.to_le_bytes());
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bytes.resize(4096, 0);
    let Some(boot) = boot_bytes(&bytes, "") else {
        return;
    };
    boot.assert_error(
        "vmlane-boot: the boot container is damaged: entry 0 lies outside the container",
    );
}

/// The stub's own count of what a kernel needs agrees with the host's, which is an upper bound.
#[test]
fn a_kernel_too_big_for_the_vm_is_refused_with_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB of bss in a 32 MiB VM.
    let elf = TestElf::kernel(&[0x90; 16]).segment(0x30_0000, b"", 64 << 20);
    let kernel = dir.path().join("kernel");
    std::fs::write(&kernel, elf.build()).unwrap();
    let Some(boot) = boot(&kernel, "", "32M", &[]) else {
        return;
    };
    let text = boot.text();
    let mib: u64 = text
        .strip_prefix("vmlane-boot: not enough memory: the kernel and its modules need ")
        .and_then(|rest| rest.strip_suffix(" MiB\n"))
        .unwrap_or_else(|| panic!("unexpected output: {text:?}"))
        .parse()
        .unwrap();
    boot.assert_exited();
    let host = memory_needed(&kernel, &[]).unwrap();
    assert!(
        mib > 64 && mib << 20 <= host.next_multiple_of(1 << 20),
        "{mib} MiB, host {host}"
    );
}

/// The kernel: at its entry, in long mode at its linked address, it sends the memory from
/// its load address to kernend, then the three words at the stack pointer, over COM1; then it
/// ends the VM with a triple fault.
const DUMP_KERNEL: &[u8] = &[
    0xbe, 0x00, 0x00, 0x20, 0x00, // mov esi, 0x200000
    0x8b, 0x4c, 0x24, 0x08, // mov ecx, [rsp+8]: kernend
    0x29, 0xf1, // sub ecx, esi
    0xe8, 0x16, 0x00, 0x00, 0x00, // call send
    0x48, 0x89, 0xe6, // mov rsi, rsp
    0xb9, 0x0c, 0x00, 0x00, 0x00, // mov ecx, 12
    0xe8, 0x09, 0x00, 0x00, 0x00, // call send
    0x31, 0xc0, // xor eax, eax
    0x50, 0x50, // push rax; push rax
    0x0f, 0x01, 0x1c, 0x24, // lidt [rsp]: an empty IDT
    0xcc, // int3
    // send: ecx bytes from rsi, each when the UART has room
    0x66, 0xba, 0xfd, 0x03, // mov dx, 0x3fd
    0xec, // in al, dx
    0xa8, 0x20, // test al, 0x20
    0x74, 0xfb, // jz in
    0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
    0xac, // lodsb
    0xee, // out dx, al
    0xff, 0xc9, // dec ecx
    0x75, 0xed, // jnz send
    0xc3, // ret
];

const RB_SINGLE: u32 = 0x2;
const RB_VERBOSE: u32 = 0x800;
const RB_SERIAL: u32 = 0x1000;
const RB_PAUSE: u32 = 0x10_0000;

fn u32_at(bytes: &[u8], at: u64) -> u32 {
    let at = at as usize;
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// One module's metadata records, by type.
type Records = BTreeMap<u32, Vec<u8>>;

/// The metadata at `at`, as the kernel's preload code walks it: u32 type, u32 size, data
/// padded to 8, until an all-zero header; a new MODINFO_NAME starts the next module.
fn parse_metadata(mem: &[u8], mut at: u64) -> Vec<Records> {
    let mut modules: Vec<Records> = Vec::new();
    loop {
        let (kind, size) = (u32_at(mem, at), u32_at(mem, at + 4));
        if kind == 0 && size == 0 {
            return modules;
        }
        let data = mem[(at + 8) as usize..(at + 8) as usize + size as usize].to_vec();
        if kind == 1 {
            modules.push(Records::new());
        }
        let module = modules
            .last_mut()
            .expect("a record before the first MODINFO_NAME");
        assert!(
            module.insert(kind, data).is_none(),
            "record {kind:#x} twice"
        );
        at += 8 + u64::from(size).next_multiple_of(8);
    }
}

fn word(records: &Records, kind: u32) -> u64 {
    let data = records
        .get(&kind)
        .unwrap_or_else(|| panic!("no record {kind:#x}"));
    assert_eq!(data.len(), 8, "record {kind:#x}");
    u64::from_le_bytes(data[..].try_into().unwrap())
}

#[test]
fn the_kernel_gets_what_freebsds_loader_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"initialised data";
    let elf = TestElf::kernel(DUMP_KERNEL)
        .segment(0x20_1000, data, 0x1000)
        .with_symbols();
    let (symtab, strtab) = elf.symbols.clone().unwrap();
    let kernel = dir.path().join("kernel");
    std::fs::write(&kernel, elf.build()).unwrap();
    let root: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let root_path = dir.path().join("root.img");
    std::fs::write(&root_path, &root).unwrap();
    let container = dir.path().join("boot.img");
    let modules = [BootModule {
        name: "/boot/root.img",
        kind: "md_image",
        path: &root_path,
    }];
    write_container(&kernel, &modules, &container).unwrap();
    for disk in ["d0", "d1"] {
        let file = std::fs::File::create(dir.path().join(disk)).unwrap();
        file.set_len(1 << 20).unwrap();
    }
    let drive = |d: &str| {
        format!(
            "file={},format=raw,if=none,id={d}",
            dir.path().join(d).display()
        )
    };
    let (d0, d1) = (drive("d0"), drive("d1"));
    let args = [
        "-device",
        "virtio-blk-device,drive=d0",
        "-drive",
        &d0,
        "-device",
        "virtio-blk-device,drive=d1",
        "-drive",
        &d1,
    ];
    let append = "-sv -h a=1 plain foo=bar boot_pause=yes boot_mute=no foo=baz";
    let Some(boot) = boot(&container, append, "128M", &args) else {
        return;
    };
    boot.assert_exited();

    // The dump starts with the kernel's first segment and ends with the stack words.
    let out = &boot.output;
    let start = out
        .windows(DUMP_KERNEL.len())
        .position(|w| w == DUMP_KERNEL)
        .unwrap_or_else(|| panic!("no dump in {:?}", boot.text()));
    assert!(out.len() >= start + 12);
    let (mem, stack) = out[start..].split_at(out.len() - start - 12);
    let base = 0x20_0000u64;
    let (ret, modulep, kernend) = (
        u32_at(stack, 0),
        u64::from(u32_at(stack, 4)),
        u64::from(u32_at(stack, 8)),
    );
    assert_eq!(ret, 0);
    assert_eq!(mem.len() as u64, kernend - base, "kernend {kernend:#x}");
    assert_eq!(kernend % 4096, 0);
    let at = |addr: u64| addr - base;

    // The segments, the bss zeroed.
    assert_eq!(&mem[..DUMP_KERNEL.len()], DUMP_KERNEL);
    let seg = at(0x20_1000) as usize;
    assert_eq!(&mem[seg..seg + data.len()], data);
    assert!(mem[seg + data.len()..seg + 0x1000].iter().all(|&b| b == 0));

    let modules = parse_metadata(mem, at(modulep));
    assert_eq!(modules.len(), 2, "{modules:?}");
    let k = &modules[0];
    assert_eq!(k[&1], b"/boot/kernel/kernel\0");
    assert_eq!(k[&2], b"elf kernel\0");
    assert_eq!(word(k, 3), base);
    let ssym = word(k, 0x8003);
    let esym = word(k, 0x8004);
    assert_eq!(word(k, 4), esym - base, "MODINFO_SIZE covers the symbols");
    assert_eq!(word(k, 0x8008), kernend);
    assert_eq!(word(k, 0x9006), modulep);
    assert_eq!(
        u32::from_le_bytes(k[&0x8007][..].try_into().unwrap()),
        RB_SINGLE | RB_VERBOSE | RB_SERIAL | RB_PAUSE
    );

    // The symbols right after the segments, as the kernel's linker reads them back.
    assert_eq!(ssym, 0x20_2000);
    assert_eq!(u64_at(mem, at(ssym)), symtab.len() as u64);
    let s = at(ssym + 8) as usize;
    assert_eq!(&mem[s..s + symtab.len()], &symtab[..]);
    let str_at = ssym + 8 + (symtab.len() as u64).next_multiple_of(8);
    assert_eq!(u64_at(mem, at(str_at)), strtab.len() as u64);
    let s = at(str_at + 8) as usize;
    assert_eq!(&mem[s..s + strtab.len()], &strtab[..]);
    assert_eq!(esym, str_at + 8 + (strtab.len() as u64).next_multiple_of(8));

    // The module on the page after the symbols, the metadata on the page after it.
    let m = &modules[1];
    assert_eq!(m[&1], b"/boot/root.img\0");
    assert_eq!(m[&2], b"md_image\0");
    let addr = word(m, 3);
    assert_eq!(addr, esym.next_multiple_of(4096));
    assert_eq!(word(m, 4), root.len() as u64);
    assert_eq!(
        &mem[at(addr) as usize..at(addr) as usize + root.len()],
        &root[..]
    );
    assert_eq!(modulep, (addr + root.len() as u64).next_multiple_of(4096));

    // The memory map: QEMU's, without empty entries.
    let smap = &k[&0x9001];
    assert_eq!(smap.len() % 20, 0);
    let entries: Vec<(u64, u64, u32)> = smap
        .chunks(20)
        .map(|e| (u64_at(e, 0), u64_at(e, 8), u32_at(e, 16)))
        .collect();
    assert!(entries.iter().all(|e| e.1 != 0), "{entries:x?}");
    assert!(
        entries.contains(&(0x10_0000, (128 << 20) - 0x10_0000, 1)),
        "{entries:x?}"
    );

    // The environment after the metadata: the command line's key=value words, the last of
    // each name, one virtio_mmio.device per transport, the flags as variables.
    let envp = word(k, 0x8006);
    assert_eq!(envp % 4096, 0);
    assert!(envp > modulep && envp < kernend);
    let block = &mem[at(envp) as usize..];
    let end = block
        .windows(2)
        .position(|w| w == [0, 0])
        .expect("the environment ends with an empty string");
    let vars: Vec<String> = block[..end]
        .split(|&b| b == 0)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .collect();
    assert_eq!(kernend, (envp + end as u64 + 2).next_multiple_of(4096));
    let names: Vec<&str> = vars.iter().map(|v| v.split('=').next().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "{vars:?}");
    for expected in [
        "a=1",
        "foo=baz",
        "boot_mute=no",
        "boot_single=YES",
        "boot_verbose=YES",
        "boot_serial=YES",
        "boot_pause=YES",
    ] {
        assert!(
            vars.iter().any(|v| v == expected),
            "no {expected} in {vars:?}"
        );
    }
    assert!(!names.contains(&"plain"), "{vars:?}");
    for name in ["virtio_mmio.device", "virtio_mmio.device_1"] {
        let v = vars
            .iter()
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {vars:?}"));
        assert!(v.contains("@0x"), "{v}");
    }
    assert!(!names.contains(&"virtio_mmio.device_2"), "{vars:?}");
}

/// A real FreeBSD kernel, when `VMLANE_FREEBSD_KERNEL` names one, on the machine
/// `VMLANE_FREEBSD_MACHINE` names (microvm without ACPI unless it says otherwise; GENERIC
/// kernels need `q35`): it boots to its root mount, and an empty answer at the mountroot
/// prompt makes it panic with a backtrace whose frames are named, as the symbols the stub
/// handed over allow.
#[test]
fn a_real_kernel_reaches_its_root_mount_and_names_functions_in_a_panic() {
    let Some(kernel) = std::env::var_os("VMLANE_FREEBSD_KERNEL") else {
        println!("skipped: VMLANE_FREEBSD_KERNEL names no FreeBSD kernel");
        return;
    };
    let machine = std::env::var("VMLANE_FREEBSD_MACHINE").unwrap_or_else(|_| MICROVM.into());
    let append = "-h hw.uart.console=io:0x3f8,br:115200 machdep.disable_tsc_calibration=0 \
                  kern.panic_reboot_wait_time=0 debug.debugger_on_panic=0 \
                  vfs.root.mountfrom=ufs:/dev/vtbd0";
    let Some(boot) = boot_on(
        &machine,
        Path::new(&kernel),
        append,
        "512M",
        &[],
        Some(("mountroot> ", b"\r")),
    ) else {
        return;
    };
    boot.assert_exited();
    let text = boot.text();
    assert!(!text.contains("vmlane-boot:"), "{text}");
    assert!(!text.contains("Symbols are corrupt"), "{text}");
    for line in [
        "Trying to mount root from ufs:/dev/vtbd0 []...",
        "panic: mountroot: unable to (re-)mount root.",
        "KDB: stack backtrace:",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    // DDB's `panic() at panic+0x43/frame ...` or stack(9)'s `#2 0x... at panic+0x43`.
    assert!(
        text.lines().any(|l| l.contains(" at panic+0x")),
        "no named frame in:\n{text}"
    );
}
