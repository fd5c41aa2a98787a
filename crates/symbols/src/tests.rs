//! Symbolising against a real ELF file with DWARF, compiled from C at test time: offsets come
//! from its symbol table and from a return address the program prints about itself.

use super::*;
use object::{Object, ObjectSection, ObjectSymbol};
use proptest::prelude::*;
use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// The program; the `LINE_*` markers name the lines the tests expect.
const SOURCE: &str = r#"#include <stdio.h>
volatile int sink;
volatile int after;
volatile unsigned long returned;

__attribute__((noinline, noclone)) int leaf(int x)
{
	sink = x; /* LINE_LEAF */
	returned = (unsigned long)__builtin_return_address(0);
	return x + 1;
}

static inline __attribute__((always_inline)) int inner(int x)
{
	__asm__ volatile("inner_mark: nop"); /* LINE_INNER */
	return x * 3 + sink;
}

__attribute__((noinline, noclone)) int outer(int x)
{
	int back = leaf(x); /* LINE_CALL */
	after = 5; /* LINE_AFTER */
	return inner(back) + after; /* LINE_INLINED_CALL */
}

int main(int argc, char **argv)
{
	(void)argv;
	outer(argc);
	printf("%lx\n", returned);
	return 0;
}
"#;

/// The line of `marker` in [`SOURCE`].
fn line_of(marker: &str) -> u32 {
    let index = SOURCE
        .lines()
        .position(|line| line.contains(marker))
        .unwrap_or_else(|| panic!("{marker} is in the source"));
    index as u32 + 1
}

struct Built {
    _dir: tempfile::TempDir,
    binary: PathBuf,
    symbolizer: Mutex<Symbolizer>,
    /// Address and size of each symbol the tests use.
    symbols: HashMap<String, (u64, u64)>,
    /// `outer`'s return address from `leaf`, as an offset into `outer`.
    return_offset: u64,
}

impl Built {
    fn offset_of(&self, name: &str, within: &str) -> u64 {
        self.symbols[name].0 - self.symbols[within].0
    }

    fn sym(&self) -> std::sync::MutexGuard<'_, Symbolizer> {
        self.symbolizer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn size(&self, name: &str) -> u64 {
        self.symbols[name].1
    }
}

/// Compiles [`SOURCE`] with `flags` in `dir` to `name`, or says why not.
fn compile(dir: &Path, name: &str, flags: &[&str]) -> Result<PathBuf, String> {
    let source = dir.join("t.c");
    std::fs::write(&source, SOURCE).map_err(|e| e.to_string())?;
    let output = Command::new("cc")
        .current_dir(dir)
        .args(flags)
        .args(["-fno-pie", "-no-pie", "t.c", "-o", name])
        .output()
        .map_err(|e| format!("cc cannot run ({e}); install a C compiler (Debian: gcc)"))?;
    if !output.status.success() {
        return Err(format!(
            "cc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir.join(name))
}

fn build() -> Result<Built, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let binary = compile(dir.path(), "t", &["-g", "-O2"])?;
    let bytes = std::fs::read(&binary).map_err(|e| e.to_string())?;
    let file = object::File::parse(&*bytes).map_err(|e| e.to_string())?;
    let symbols: HashMap<String, (u64, u64)> = file
        .symbols()
        .filter_map(|s| Some((s.name().ok()?.to_string(), (s.address(), s.size()))))
        .collect();
    let run = Command::new(&binary)
        .output()
        .map_err(|e| format!("the test program cannot run: {e}"))?;
    let printed = String::from_utf8_lossy(&run.stdout);
    let returned = u64::from_str_radix(printed.trim(), 16).map_err(|e| e.to_string())?;
    let outer = symbols.get("outer").ok_or("no symbol outer")?.0;
    let symbolizer = Symbolizer::open(&binary).map_err(|e| e.to_string())?;
    Ok(Built {
        return_offset: returned - outer,
        _dir: dir,
        binary,
        symbolizer: Mutex::new(symbolizer),
        symbols,
    })
}

/// The compiled program, or `None` (with a message) when this machine has no C compiler.
fn built() -> Option<&'static Built> {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(built) => Some(built),
        Err(why) if std::env::var("VMLANE_E2E_REQUIRED").as_deref() == Ok("1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but {why}")
        }
        Err(why) if why.starts_with("cc cannot run") => {
            println!("skipped: {why}");
            None
        }
        Err(why) => panic!("{why}"),
    }
}

#[test]
fn a_linux_call_trace_gets_the_call_sites_and_the_inlined_caller() {
    let Some(t) = built() else { return };
    let outer_size = t.size("outer");
    let mark = t.offset_of("inner_mark", "outer");
    let trace = format!(
        concat!(
            "Call Trace:\n",
            " <TASK>\n",
            " outer+0x{ret:x}/0x{size:x}\n",
            " ? outer+0x{ret:x}/0x{size:x}\n",
            " snd_ctl_open+0x1a/0x40 [snd]\n",
            " no_such_function+0x1a/0x40\n",
            " </TASK>\n",
            "RIP: 0010:outer+0x{mark:x}/0x{size:x}\r\n",
            "---[ end trace 0000000000000000 ]---",
        ),
        ret = t.return_offset,
        mark = mark,
        size = outer_size,
    );
    let call = line_of("LINE_CALL");
    let inner = line_of("LINE_INNER");
    let inlined_call = line_of("LINE_INLINED_CALL");
    let expected = format!(
        concat!(
            "Call Trace:\n",
            " <TASK>\n",
            " outer+0x{ret:x}/0x{size:x} t.c:{call}\n",
            " ? outer+0x{ret:x}/0x{size:x} t.c:{call}\n",
            " snd_ctl_open+0x1a/0x40 [snd]\n",
            " no_such_function+0x1a/0x40\n",
            " </TASK>\n",
            "RIP: 0010:outer+0x{mark:x}/0x{size:x} t.c:{inner}\r\n",
            "  (inlined by) outer t.c:{inlined_call}\r\n",
            "---[ end trace 0000000000000000 ]---",
        ),
        ret = t.return_offset,
        mark = mark,
        size = outer_size,
        call = call,
        inner = inner,
        inlined_call = inlined_call,
    );
    assert_eq!(t.sym().symbolize(&trace), expected);
}

#[test]
fn a_return_address_names_the_call_and_not_the_line_after_it() {
    let Some(t) = built() else { return };
    let as_return = t.sym().locate("outer", t.return_offset, true);
    assert_eq!(
        as_return[0].line,
        Some(line_of("LINE_CALL")),
        "{as_return:?}"
    );
    let as_pc = t.sym().locate("outer", t.return_offset, false);
    assert_eq!(as_pc[0].line, Some(line_of("LINE_AFTER")), "{as_pc:?}");
}

#[test]
fn an_inlined_frame_names_its_own_line_then_its_callers_call_site() {
    let Some(t) = built() else { return };
    let lines = t
        .sym()
        .locate("outer", t.offset_of("inner_mark", "outer"), false);
    let shown: Vec<(Option<&str>, &str, Option<u32>)> = lines
        .iter()
        .map(|l| (l.function.as_deref(), l.file.as_str(), l.line))
        .collect();
    assert_eq!(
        shown,
        [
            (Some("inner"), "t.c", Some(line_of("LINE_INNER"))),
            (Some("outer"), "t.c", Some(line_of("LINE_INLINED_CALL"))),
        ]
    );
}

/// The line of `leaf`'s first instruction: a line of its body, whichever the compiler put
/// first.
fn leaf_entry_line(t: &Built) -> u32 {
    let lines = t.sym().locate("leaf", 0, false);
    let line = lines[0].line.unwrap();
    let body = line_of("leaf(int x)")..=line_of("LINE_LEAF") + 2;
    assert!(body.contains(&line), "leaf+0x0 is at line {line}");
    line
}

#[test]
fn freebsd_backtraces_in_both_forms() {
    let Some(t) = built() else { return };
    let ret = t.return_offset;
    let mark = t.offset_of("inner_mark", "outer");
    let leaf = leaf_entry_line(t);
    let trace = format!(
        concat!(
            "KDB: stack backtrace:\n",
            "#0 0xffffffff80b7a3c5 at outer+0x{ret:x}\n",
            "#1 0xffffffff80b7a3c6 at kdb_backtrace+0x65\n",
            "leaf() at leaf+0x0/frame 0xfffffe0012345678\n",
            "--- trap 0xc, rip = 0xffffffff80c1e7a4, rsp = 0xfffffe00, rbp = 0xfffffe01 ---\n",
            "outer() at outer+0x{mark:x}/frame 0xfffffe0012345680\n",
            "Uptime: 1s\n",
        ),
        ret = ret,
        mark = mark,
    );
    let expected = format!(
        concat!(
            "KDB: stack backtrace:\n",
            "#0 0xffffffff80b7a3c5 at outer+0x{ret:x} t.c:{call}\n",
            "#1 0xffffffff80b7a3c6 at kdb_backtrace+0x65\n",
            "leaf() at leaf+0x0/frame 0xfffffe0012345678 t.c:{leaf}\n",
            "--- trap 0xc, rip = 0xffffffff80c1e7a4, rsp = 0xfffffe00, rbp = 0xfffffe01 ---\n",
            "outer() at outer+0x{mark:x}/frame 0xfffffe0012345680 t.c:{inner}\n",
            "  (inlined by) outer t.c:{inlined_call}\n",
            "Uptime: 1s\n",
        ),
        ret = ret,
        mark = mark,
        call = line_of("LINE_CALL"),
        leaf = leaf,
        inner = line_of("LINE_INNER"),
        inlined_call = line_of("LINE_INLINED_CALL"),
    );
    assert_eq!(t.sym().symbolize(&trace), expected);
}

#[test]
fn a_file_without_debug_info_says_how_to_get_it() {
    let Some(_) = built() else { return };
    let dir = tempfile::tempdir().unwrap();
    let plain = compile(dir.path(), "plain", &["-O2"]).unwrap();
    let error = Symbolizer::open(&plain).unwrap_err();
    assert!(
        matches!(error, SymbolsError::NoDebugInfo { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("CONFIG_DEBUG_INFO"), "{error}");

    let stripped = compile(dir.path(), "stripped", &["-O2", "-s"]).unwrap();
    let error = Symbolizer::open(&stripped).unwrap_err();
    assert!(matches!(error, SymbolsError::NoSymbols { .. }), "{error:?}");

    let text = dir.path().join("t.c");
    let error = Symbolizer::open(&text).unwrap_err();
    assert!(matches!(error, SymbolsError::NotElf { .. }), "{error:?}");
    let error = Symbolizer::open(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(error, SymbolsError::Read { .. }), "{error:?}");
}

#[test]
fn compressed_debug_sections_are_inflated() {
    let Some(t) = built() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut compressed = Vec::new();
    for form in ["zlib", "zlib-gnu"] {
        let binary = compile(dir.path(), form, &["-g", "-O2", &format!("-gz={form}")]).unwrap();
        compressed.push((form, binary));
    }
    // Compilers write zstd sections only lately; binutils' objcopy has done so for longer.
    let zstd = dir.path().join("zstd");
    let objcopy = Command::new("objcopy")
        .arg("--compress-debug-sections=zstd")
        .args([&t.binary, &zstd])
        .output();
    match objcopy {
        Ok(done) if done.status.success() => compressed.push(("zstd", zstd)),
        _ => println!("zstd not checked: objcopy cannot write zstd sections here"),
    }
    for (form, binary) in compressed {
        let symbolizer = Symbolizer::open(&binary).unwrap();
        let lines = symbolizer.locate("outer", t.return_offset, true);
        assert_eq!(lines[0].line, Some(line_of("LINE_CALL")), "{form}");
    }
}

#[test]
fn shared_symbolizers_are_opened_once_per_file() {
    let Some(t) = built() else { return };
    let first = shared(&t.binary).unwrap();
    let second = shared(&t.binary).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    let lines = first.lock().unwrap().locate("outer", t.return_offset, true);
    assert_eq!(lines[0].line, Some(line_of("LINE_CALL")));
}

#[test]
fn file_names_are_shown_relative_to_a_known_root() {
    assert_eq!(tidy("/a/./b//c.c"), "/a/b/c.c");
    assert_eq!(tidy("./include/x.h"), "include/x.h");
    let Some(t) = built() else { return };
    assert_eq!(
        t.sym()
            .relative("/src/linux/./kernel/panic.c", Some("/src/linux")),
        "kernel/panic.c"
    );
    assert_eq!(
        t.sym().relative("/usr/include/stdio.h", Some("/src/linux")),
        "/usr/include/stdio.h"
    );
    assert_eq!(
        t.sym().relative("/src/linux-next/a.c", Some("/src/linux")),
        "/src/linux-next/a.c"
    );
}

/// Lines that look like frames: known and unknown names, any offsets and sizes, any forms.
fn frame_like() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("outer".to_string()),
        Just("leaf".to_string()),
        Just("inner_mark".to_string()),
        Just("main".to_string()),
        "[A-Za-z_][A-Za-z0-9_.]{0,12}",
    ];
    let shape = 0..6u8;
    (name, any::<u64>(), any::<u64>(), shape, 0..0x200u64).prop_map(
        |(name, offset, size, shape, small)| {
            let offset = if offset % 2 == 0 { small } else { offset };
            match shape {
                0 => format!(" {name}+0x{offset:x}/0x{size:x}"),
                1 => format!("RIP: 0010:{name}+0x{offset:x}/0x{size:x}"),
                2 => format!("#1 0x{size:x} at {name}+0x{offset:x}"),
                3 => format!("{name}() at {name}+0x{offset:x}/frame 0x{size:x}"),
                4 => "--- trap 0xc, rip = 0x0 ---".to_string(),
                _ => format!(" ? {name}+0x{offset:x}/0x{size:x} [mod]"),
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics_and_non_frames_pass_through(text in "\\PC*(\n\\PC*){0,8}") {
        if let Some(t) = built() {
            let out = t.sym().symbolize(&text);
            if !text.contains("+0x") {
                prop_assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn frame_like_lines_never_panic(lines in proptest::collection::vec(frame_like(), 0..12)) {
        if let Some(t) = built() {
            let text = lines.join("\n");
            let out = t.sym().symbolize(&text);
            prop_assert!(out.lines().count() >= text.lines().count());
        }
    }

    #[test]
    fn arbitrary_bytes_as_an_elf_file_are_refused_not_panicked_on(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk");
        let mut bytes = bytes;
        if bytes.len() > 4 {
            bytes[..4].copy_from_slice(b"\x7fELF");
        }
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(Symbolizer::open(&path).is_err());
    }
}

/// A real kernel's debug info, when `VMLANE_TEST_VMLINUX` names one (a vmlinux built with
/// CONFIG_DEBUG_INFO, or FreeBSD's kernel.full): a 20-frame trace is symbolised and timed.
#[test]
fn a_real_kernel_trace_is_symbolised() {
    let Some(path) = std::env::var_os("VMLANE_TEST_VMLINUX") else {
        println!("skipped: set VMLANE_TEST_VMLINUX to a vmlinux with DWARF to run this");
        return;
    };
    let path = PathBuf::from(path);
    let bytes = std::fs::read(&path).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let mut functions: Vec<(String, u64)> = file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.size() >= 0x40)
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
        .collect();
    functions.sort();
    functions.dedup_by(|a, b| a.0 == b.0);
    let step = (functions.len() / 20).max(1);
    let trace: String = functions
        .iter()
        .step_by(step)
        .take(20)
        .map(|(name, size)| format!(" {name}+0x{:x}/0x{size:x}\n", size / 2))
        .collect();
    drop(bytes);
    let started = std::time::Instant::now();
    let symbolizer = Symbolizer::open(&path).unwrap();
    let opened = started.elapsed();
    let out = symbolizer.symbolize(&trace);
    let total = started.elapsed();
    let again = std::time::Instant::now();
    symbolizer.symbolize(&trace);
    println!("{out}");
    println!(
        "open {opened:?}, open and symbolise 20 frames {total:?}, the same 20 frames again {:?}",
        again.elapsed()
    );
    let annotated = out
        .lines()
        .filter(|l| l.contains(".c:") || l.contains(".h:"))
        .count();
    assert!(
        annotated >= 18,
        "{annotated} of 20 frames got a line:\n{out}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn damaged_debug_info_is_refused_or_read_but_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)
    ) {
        if let Some(t) = built() {
            let mut bytes = std::fs::read(&t.binary).unwrap();
            // The damage goes to the DWARF and the symbol tables, behind intact headers.
            let targets: Vec<(u64, u64)> = {
                let file = object::File::parse(&*bytes).unwrap();
                file.sections()
                    .filter(|s| {
                        s.name().is_ok_and(|n| n.starts_with(".debug_") || n.ends_with("tab"))
                    })
                    .filter_map(|s| s.file_range())
                    .filter(|range| range.1 > 0)
                    .collect()
            };
            for (at, value) in flips {
                let (start, len) = targets[at.index(targets.len())];
                let at = start as usize + at.index(len as usize);
                bytes[at] = value;
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("damaged");
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(symbolizer) = Symbolizer::open(&path) {
                let ret = t.return_offset;
                let trace = format!(" outer+0x{ret:x}/0x40\n leaf+0x3/0x10\n main+0x1/0x9\n");
                symbolizer.symbolize(&trace);
            }
        }
    }
}
