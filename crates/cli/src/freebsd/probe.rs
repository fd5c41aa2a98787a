//! The minimal guest runs a host file as its command: it must be a static x86-64 FreeBSD
//! executable, checked before any VM starts.

use crate::launch::LaunchError;
use std::path::Path;

/// The probe must be a static x86-64 FreeBSD executable: the minimal guest has no libraries.
pub(super) fn check_probe(program: &Path) -> Result<(), LaunchError> {
    let refuse = |why: &str| {
        Err(LaunchError::FreeBsdGuest(format!(
            "{} {why}",
            program.display()
        )))
    };
    let bytes = match std::fs::read(program) {
        Ok(bytes) => bytes,
        Err(e) => {
            return refuse(&format!(
                "cannot be read ({e}): the command of a FreeBSD run without --image is a host path to a static FreeBSD executable"
            ))
        }
    };
    match probe_kind(&bytes) {
        ProbeKind::FreeBsdStatic => Ok(()),
        ProbeKind::FreeBsdDynamic => refuse("is dynamically linked, and vmlane's minimal FreeBSD guest has no libraries: link it with -static, or run it inside a FreeBSD image with --image"),
        ProbeKind::OtherElf => refuse("is not a FreeBSD executable (its ELF header names another OS); build it for x86_64-unknown-freebsd"),
        ProbeKind::NotX86_64 => refuse("is not an x86-64 executable"),
        ProbeKind::NotElf => refuse("is not an ELF executable: the command of a FreeBSD run without --image is a host path to a static FreeBSD executable"),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ProbeKind {
    FreeBsdStatic,
    FreeBsdDynamic,
    OtherElf,
    NotX86_64,
    NotElf,
}

const ELFOSABI_FREEBSD: u8 = 9;
const EM_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;

fn probe_kind(bytes: &[u8]) -> ProbeKind {
    // Offsets come from the file: every read is bounds-checked, none can overflow.
    let field = |at: usize, len: usize| bytes.get(at..at.checked_add(len)?);
    let u16_at = |at: usize| field(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| field(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |at: usize| field(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return ProbeKind::NotElf;
    }
    if bytes[4] != 2 || bytes[5] != 1 || u16_at(18) != Some(EM_X86_64) {
        return ProbeKind::NotX86_64;
    }
    if bytes[7] != ELFOSABI_FREEBSD {
        return ProbeKind::OtherElf;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return ProbeKind::NotElf;
    };
    let interp = (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i.checked_mul(usize::from(phentsize))?))
            .and_then(u32_at)
            == Some(PT_INTERP)
    });
    if interp {
        ProbeKind::FreeBsdDynamic
    } else {
        ProbeKind::FreeBsdStatic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with one program header of type `p_type`.
    fn elf(osabi: u8, machine: u16, p_type: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[7] = osabi;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&p_type.to_le_bytes());
        bytes
    }

    #[test]
    fn probes_are_told_apart_by_their_elf_header() {
        assert_eq!(probe_kind(&elf(9, 62, 1)), ProbeKind::FreeBsdStatic);
        assert_eq!(probe_kind(&elf(9, 62, 3)), ProbeKind::FreeBsdDynamic);
        assert_eq!(probe_kind(&elf(0, 62, 1)), ProbeKind::OtherElf);
        assert_eq!(probe_kind(&elf(9, 183, 1)), ProbeKind::NotX86_64);
        assert_eq!(probe_kind(b"#!/bin/sh\necho hi\n"), ProbeKind::NotElf);
        assert_eq!(probe_kind(&[]), ProbeKind::NotElf);
    }

    #[test]
    fn program_headers_outside_the_file_are_not_followed() {
        let mut bytes = elf(9, 62, 3);
        bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(probe_kind(&bytes), ProbeKind::FreeBsdStatic);
    }
}
