//! The user's login shell, for a request without a command, and the banner shown before its
//! first prompt.

use crate::sys;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use vmlane_proto::{DirMount, ShareMount};

const FALLBACKS: [&[u8]; 2] = [b"/bin/bash", b"/bin/sh"];

/// The shell to run: `$SHELL` when the guest has it (the host's root is the guest's, but a
/// user's shell may live elsewhere), else bash, else sh. `env` gets `SHELL` set to the choice.
pub fn choose(env: &mut Vec<Vec<u8>>) -> Vec<u8> {
    let wanted = env
        .iter()
        .find_map(|entry| entry.strip_prefix(b"SHELL="))
        .filter(|path| path.starts_with(b"/"))
        .map(<[u8]>::to_vec);
    let shell = wanted
        .into_iter()
        .chain(FALLBACKS.iter().map(|path| path.to_vec()))
        .find(|path| is_executable(path))
        .unwrap_or_else(|| FALLBACKS[1].to_vec());
    env.retain(|entry| !entry.starts_with(b"SHELL="));
    env.push([&b"SHELL="[..], &shell].concat());
    shell
}

/// `argv[0]` with a leading dash, which makes a shell read the login profile as sshd's and
/// login's shells do.
pub fn login_name(shell: &[u8]) -> Vec<u8> {
    let base = shell.rsplit(|&b| b == b'/').next().unwrap_or(shell);
    [&b"-"[..], base].concat()
}

fn is_executable(path: &[u8]) -> bool {
    let Ok(c_path) = sys::cstring_bytes(path) else {
        return false;
    };
    let is_file = fs::metadata(std::ffi::OsStr::from_bytes(path)).is_ok_and(|m| m.is_file());
    // SAFETY: `c_path` is a valid C string; access only reads it.
    is_file && unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } == 0
}

/// What the shell runs on and what it can reach, in a few lines ending in `\r\n` (the host's
/// terminal is in raw mode by then).
pub fn banner(share: Option<&ShareMount>, rwdirs: &[DirMount]) -> String {
    let mut lines = vec![format!(
        "{}, {}, {} memory",
        kernel(),
        plural(cpus(), "CPU"),
        memory()
    )];
    lines.push(match share {
        Some(share) => format!(
            "host files read-only over {}; writes vanish with the VM",
            share.fstype
        ),
        None => "no host files; writes vanish with the VM".into(),
    });
    if !rwdirs.is_empty() {
        let dirs: Vec<String> = rwdirs
            .iter()
            .map(|dir| String::from_utf8_lossy(&dir.target).into_owned())
            .collect();
        lines.push(format!("writes reach the host in: {}", dirs.join(", ")));
    }
    let disks = disks();
    if !disks.is_empty() {
        lines.push(format!("disks: {}", disks.join(", ")));
    }
    let interfaces = network_interfaces();
    if !interfaces.is_empty() {
        lines.push(format!("network: {}", interfaces.join(", ")));
    }
    lines.push("exit or Ctrl-D leaves the shell; Ctrl-A X ends the VM".into());
    lines
        .iter()
        .map(|line| format!("vmlane: {line}\r\n"))
        .collect()
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn kernel() -> String {
    // SAFETY: a zeroed utsname is valid to pass; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "Linux".into();
    }
    let field = |chars: &[libc::c_char]| {
        let bytes: Vec<u8> = chars
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&uts.sysname),
        field(&uts.release),
        field(&uts.machine)
    )
}

fn cpus() -> usize {
    // SAFETY: sysconf takes a constant and returns a number.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// MemTotal: what the guest kernel has left after its own reservations.
fn memory() -> String {
    let kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!("{} MiB", kib / 1024)
}

/// `vda (1 GiB)`, ... for every virtio disk.
fn disks() -> Vec<String> {
    sorted_names("/sys/block")
        .into_iter()
        .filter(|name| name.starts_with("vd"))
        .map(|name| {
            let sectors = fs::read_to_string(format!("/sys/block/{name}/size"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let ro =
                fs::read_to_string(format!("/sys/block/{name}/ro")).is_ok_and(|s| s.trim() == "1");
            format!(
                "/dev/{name} ({}{})",
                size(sectors * 512),
                if ro { ", read-only" } else { "" }
            )
        })
        .collect()
}

fn network_interfaces() -> Vec<String> {
    sorted_names("/sys/class/net")
        .into_iter()
        .filter(|name| name != "lo")
        .collect()
}

fn sorted_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_shell_is_named_with_a_dash() {
        assert_eq!(login_name(b"/usr/bin/zsh"), b"-zsh");
        assert_eq!(login_name(b"sh"), b"-sh");
    }

    #[test]
    fn a_missing_shell_falls_back_and_shell_is_set_to_the_choice() {
        let mut env = vec![b"SHELL=/nonexistent/fish".to_vec(), b"TERM=xterm".to_vec()];
        let shell = choose(&mut env);
        assert!(FALLBACKS.contains(&shell.as_slice()), "{shell:?}");
        assert_eq!(env[0], b"TERM=xterm");
        assert_eq!(env[1], [&b"SHELL="[..], &shell].concat());
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        assert_eq!(size(64 << 20), "64 MiB");
    }
}
