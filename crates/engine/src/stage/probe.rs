//! The minimal FreeBSD guest runs a host file as its command: it must be a static x86-64
//! FreeBSD executable, checked before any VM starts.

use std::path::{Path, PathBuf};

/// Why a program cannot run in vmlane's minimal FreeBSD guest.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// It cannot be read.
    #[error("{path} cannot be read: the command of a FreeBSD run without --image is a host path to a static FreeBSD executable")]
    Unreadable {
        /// The program.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It needs a dynamic linker.
    #[error("{path} is dynamically linked, and vmlane's minimal FreeBSD guest has no libraries: link it with -static, or run it inside a FreeBSD image with --image")]
    Dynamic {
        /// The program.
        path: PathBuf,
    },
    /// It is another OS's executable.
    #[error("{path} is not a FreeBSD executable (its ELF header names another OS); build it for x86_64-unknown-freebsd")]
    OtherOs {
        /// The program.
        path: PathBuf,
    },
    /// It is for another architecture.
    #[error("{path} is not an x86-64 executable")]
    NotX86_64 {
        /// The program.
        path: PathBuf,
    },
    /// It is not an executable at all.
    #[error("{path} is not an ELF executable: the command of a FreeBSD run without --image is a host path to a static FreeBSD executable")]
    NotElf {
        /// The program.
        path: PathBuf,
    },
}

/// Reads the program and checks it can run in the minimal guest; its bytes on success.
pub(super) fn read_probe(program: &Path) -> Result<Vec<u8>, ProbeError> {
    let path = program.to_path_buf();
    let bytes = std::fs::read(program).map_err(|source| ProbeError::Unreadable {
        path: path.clone(),
        source,
    })?;
    match probe_kind(&bytes) {
        ProbeKind::FreeBsdStatic => Ok(bytes),
        ProbeKind::FreeBsdDynamic => Err(ProbeError::Dynamic { path }),
        ProbeKind::OtherElf => Err(ProbeError::OtherOs { path }),
        ProbeKind::NotX86_64 => Err(ProbeError::NotX86_64 { path }),
        ProbeKind::NotElf => Err(ProbeError::NotElf { path }),
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

    #[test]
    fn a_refusal_names_the_program_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("probe.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let error = read_probe(&script).unwrap_err().to_string();
        assert!(
            error.contains("probe.sh is not an ELF executable"),
            "{error}"
        );
        let error = read_probe(&dir.path().join("missing")).unwrap_err();
        assert!(
            error.to_string().ends_with("static FreeBSD executable"),
            "{error}"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
