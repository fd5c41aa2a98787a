//! Which console lines are backtrace frames, and which address each one names. Pure text
//! work, kept apart so it can be tested without an ELF file.
//!
//! Linux: ` func+0x1a/0x40`, ` ? func+0x1a/0x40`, `[<ffffffff81234567>] func+0x1a/0x40`,
//! `RIP: 0010:func+0x1a/0x40`, the `WARNING: ... at file:line func+0x1a/0x40` line; a frame
//! followed by `[module]` is in a module and is left alone. FreeBSD: `#3 0xffff... at
//! func+0x45`, ddb's `func() at func+0x2b/frame 0x...`, `Stopped at func+0x33: insn`.

use regex::Regex;
use std::sync::LazyLock;

/// `func+0x1a/0x40`, maybe followed by `[module]`.
static LINUX_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:^|[\s:(\]>])(?P<name>[A-Za-z_$][A-Za-z0-9_.$]*)",
        r"\+0x(?P<offset>[0-9a-fA-F]{1,16})/0x(?P<size>[0-9a-fA-F]{1,16})",
        r"(?P<module>\s+\[[^\]]*\])?",
    ))
    .expect("built-in Linux frame pattern compiles")
});

/// `at func+0x45`, then the line's end, `/frame`, `:` or a blank.
static FREEBSD_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:^|\s)at\s+(?P<name>[A-Za-z_$][A-Za-z0-9_.$]*)",
        r"\+0x(?P<offset>[0-9a-fA-F]{1,16})(?:/frame\b|:|\s|$)",
    ))
    .expect("built-in FreeBSD frame pattern compiles")
});

/// Text before a frame that says it is where the CPU was, not a return address.
const AT_PC: [&str; 7] = [
    "RIP: ",
    "EIP: ",
    "pc : ",
    "PC is at ",
    "WARNING: ",
    "NIP ",
    "Stopped at",
];

/// One frame named on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameRef<'a> {
    /// The symbol.
    pub name: &'a str,
    /// The offset into it.
    pub offset: u64,
    /// The symbol's size, as printed (Linux only).
    pub size: Option<u64>,
    /// Whether the address is where the CPU was (the `RIP:` line, the frame after a FreeBSD
    /// trap) rather than a return address, which names the instruction after the call.
    pub at_pc: bool,
}

impl FrameRef<'_> {
    /// The address to look up, from the symbol's: a return address is looked up one byte
    /// back, so the line named is the call's, as `decode_stacktrace.sh` does.
    pub fn probe(&self, symbol: u64) -> Option<u64> {
        let address = symbol.checked_add(self.offset)?;
        Some(if self.at_pc || self.offset == 0 {
            address
        } else {
            address - 1
        })
    }
}

/// Reads frames line by line; a FreeBSD trap line makes the next frame the trapping one.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    after_trap: bool,
}

impl FrameReader {
    /// The frame `line` names, if any (module frames are none).
    pub fn frame<'a>(&mut self, line: &'a str) -> Option<FrameRef<'a>> {
        if line.trim_start().starts_with("--- ") {
            self.after_trap = true;
            return None;
        }
        let frame = parse(line, self.after_trap);
        if frame.is_some() {
            self.after_trap = false;
        }
        frame
    }
}

fn parse(line: &str, after_trap: bool) -> Option<FrameRef<'_>> {
    let (found, size) = if let Some(found) = LINUX_FRAME.captures(line) {
        if found.name("module").is_some() {
            return None;
        }
        let size = u64::from_str_radix(found.name("size")?.as_str(), 16).ok()?;
        (found, Some(size))
    } else {
        (FREEBSD_FRAME.captures(line)?, None)
    };
    let name = found.name("name")?;
    let before = &line[..name.start()];
    Some(FrameRef {
        name: name.as_str(),
        offset: u64::from_str_radix(found.name("offset")?.as_str(), 16).ok()?,
        size,
        at_pc: after_trap || AT_PC.iter().any(|marker| before.contains(marker)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Option<FrameRef<'_>> {
        FrameReader::default().frame(line)
    }

    #[test]
    fn linux_frames_name_their_symbol_offset_and_size() {
        let frame = one("  ? do_one_initcall+0x1a/0x40").unwrap();
        assert_eq!(
            frame,
            FrameRef {
                name: "do_one_initcall",
                offset: 0x1a,
                size: Some(0x40),
                at_pc: false,
            }
        );
        let frame = one("[    1.5] [<ffffffff81000000>] kernel_init+0x2b/0x130").unwrap();
        assert_eq!((frame.name, frame.offset), ("kernel_init", 0x2b));
        assert_eq!(
            one(" foo.constprop.0+0x5/0x9").unwrap().name,
            "foo.constprop.0"
        );
    }

    #[test]
    fn the_rip_line_and_the_warning_line_are_where_the_cpu_was() {
        let rip = one("RIP: 0010:panic_handler+0x10/0x20").unwrap();
        assert!(rip.at_pc);
        assert_eq!(rip.name, "panic_handler");
        let warning = one("WARNING: CPU: 0 PID: 1 at lib/x.c:3 warn_me+0x8/0x10").unwrap();
        assert!(warning.at_pc);
        assert!(!one(" caller+0x8/0x10").unwrap().at_pc);
    }

    #[test]
    fn module_frames_and_plain_lines_are_not_frames() {
        assert_eq!(one(" snd_ctl_open+0x1a/0x40 [snd]"), None);
        assert_eq!(one(" foo+0x1a/0x40 [mod 0123abcd]"), None);
        assert_eq!(one("Call Trace:"), None);
        assert_eq!(one(" <TASK>"), None);
        assert_eq!(one("x = a+0x1"), None);
        assert_eq!(one(""), None);
    }

    #[test]
    fn freebsd_frames_in_each_form() {
        let frame = one("#3 0xffffffff80b7a3c5 at vpanic+0x45").unwrap();
        assert_eq!(
            (frame.name, frame.offset, frame.size),
            ("vpanic", 0x45, None)
        );
        assert!(!frame.at_pc);
        let frame =
            one("db_trace_self_wrapper() at db_trace_self_wrapper+0x2b/frame 0xfe00").unwrap();
        assert_eq!((frame.name, frame.offset), ("db_trace_self_wrapper", 0x2b));
        let stopped = one("Stopped at      kdb_enter+0x33:     movq    $0,0x10(%rip)").unwrap();
        assert_eq!(stopped.name, "kdb_enter");
        assert!(stopped.at_pc);
    }

    #[test]
    fn the_frame_after_a_freebsd_trap_is_where_the_cpu_was() {
        let mut reader = FrameReader::default();
        assert!(
            !reader
                .frame("calltrap() at calltrap+0x8/frame 0x1")
                .unwrap()
                .at_pc
        );
        assert_eq!(
            reader.frame("--- trap 0xc, rip = 0xffffffff80c1e7a4, rsp = 0x1 ---"),
            None
        );
        assert!(
            reader
                .frame("sys_foo() at sys_foo+0x14/frame 0x2")
                .unwrap()
                .at_pc
        );
        assert!(
            !reader
                .frame("amd64_syscall() at amd64_syscall+0x1/frame 0x3")
                .unwrap()
                .at_pc
        );
    }

    #[test]
    fn return_addresses_are_looked_up_one_byte_back() {
        let mut frame = one(" f+0x10/0x20").unwrap();
        assert_eq!(frame.probe(0x1000), Some(0x100f));
        frame.at_pc = true;
        assert_eq!(frame.probe(0x1000), Some(0x1010));
        assert_eq!(one(" f+0x0/0x20").unwrap().probe(0x1000), Some(0x1000));
        assert_eq!(one(" f+0xffffffffffffffff/0x20").unwrap().probe(2), None);
    }
}
