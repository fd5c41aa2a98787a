//! Source file and line for the frames of a kernel backtrace, as the kernel's
//! `scripts/decode_stacktrace.sh` adds them, read in-process from the kernel's DWARF (a Linux
//! build tree's `vmlinux`, FreeBSD's `kernel.full` or `kernel.debug`).
//!
//! ```text
//!  do_one_initcall+0x1a/0x40            becomes   do_one_initcall+0x1a/0x40 init/main.c:1303
//!  outer+0x1a/0x40  (inner inlined)     becomes   outer+0x1a/0x40 lib/inner.h:12
//!                                                   (inlined by) outer lib/outer.c:30
//! ```
//!
//! [`Symbolizer::open`] reads the file once; [`Symbolizer::symbolize`] rewrites any text,
//! leaving every line that is not a frame of this kernel (module frames, unknown symbols,
//! everything else) as it was. [`shared`] keeps recently opened files for reuse.
#![deny(missing_docs)]

mod cache;
mod elf;
mod error;
mod frames;

pub use cache::shared;
pub use error::SymbolsError;

use elf::{Reader, Symbols};
use frames::{FrameReader, FrameRef};
use gimli::Reader as _;
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// A kernel's symbols and line tables, ready to annotate backtraces.
pub struct Symbolizer {
    path: PathBuf,
    symbols: Symbols,
    context: addr2line::Context<Reader>,
    /// Directories file names are shown relative to, besides each unit's `DW_AT_comp_dir`.
    roots: Vec<String>,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbolizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One source position of a frame: the function (for inlined callers) and `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    /// The function the position is in, when the debug info names it.
    pub function: Option<String>,
    /// The file, relative to the source tree when that is known.
    pub file: String,
    /// The line, when known.
    pub line: Option<u32>,
}

impl fmt::Display for SourceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => write!(f, "{}:?", self.file),
        }
    }
}

impl Symbolizer {
    /// Reads `path`'s symbol table and line tables; says so when it has no debug info.
    pub fn open(path: &Path) -> Result<Symbolizer, SymbolsError> {
        let loaded = elf::load(path)?;
        let context =
            addr2line::Context::from_dwarf(loaded.dwarf).map_err(|source| SymbolsError::Dwarf {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Symbolizer {
            path: path.to_path_buf(),
            symbols: loaded.symbols,
            context,
            roots: roots(path),
        })
    }

    /// The file this symbolizer reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `text` with `file:line` after every frame of this kernel, and an `(inlined by)` line
    /// for each caller a frame was inlined into. Everything else is kept byte for byte.
    pub fn symbolize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + text.len() / 2);
        let mut reader = FrameReader::default();
        for line in text.split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            let ending = &line[body.len()..];
            let lines = reader
                .frame(body)
                .map(|frame| self.frame_lines(&frame))
                .unwrap_or_default();
            let Some((first, callers)) = lines.split_first() else {
                out.push_str(line);
                continue;
            };
            out.push_str(body.trim_end());
            out.push(' ');
            out.push_str(&first.to_string());
            for caller in callers {
                out.push_str(if ending.is_empty() { "\n" } else { ending });
                out.push_str("  (inlined by) ");
                if let Some(function) = &caller.function {
                    out.push_str(function);
                    out.push(' ');
                }
                out.push_str(&caller.to_string());
            }
            out.push_str(ending);
        }
        out
    }

    /// The source positions of `name+offset`, innermost first (the inlined function's line,
    /// then each caller's call site); empty when the symbol or its line is unknown.
    /// `return_address` looks up the byte before, as for any frame but the trapping one.
    pub fn locate(&self, name: &str, offset: u64, return_address: bool) -> Vec<SourceLine> {
        let frame = FrameRef {
            name,
            offset,
            size: None,
            at_pc: !return_address,
        };
        self.frame_lines(&frame)
    }

    fn frame_lines(&self, frame: &FrameRef<'_>) -> Vec<SourceLine> {
        let Some(probe) = self
            .symbols
            .resolve(frame.name, frame.size)
            .and_then(|symbol| frame.probe(symbol))
        else {
            return Vec::new();
        };
        let comp_dir = self
            .context
            .find_dwarf_and_unit(probe)
            .skip_all_loads()
            .and_then(|unit| {
                unit.comp_dir
                    .as_ref()?
                    .to_string_lossy()
                    .ok()
                    .map(Cow::into_owned)
            });
        let Ok(mut frames) = self.context.find_frames(probe).skip_all_loads() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            let function = frame
                .function
                .as_ref()
                .and_then(|f| f.raw_name().ok().map(Cow::into_owned));
            let Some(location) = frame.location else {
                continue;
            };
            let Some(file) = location.file else {
                continue;
            };
            found.push(SourceLine {
                function,
                file: self.relative(file, comp_dir.as_deref()),
                line: location.line.filter(|&line| line != 0),
            });
            if found.len() >= MAX_INLINED {
                break;
            }
        }
        // A frame whose own line is unknown says nothing worth adding.
        if found.first().is_none_or(|first| first.line.is_none()) {
            return Vec::new();
        }
        found
    }

    /// `file` relative to the unit's compilation directory or a known source root, when it
    /// lies inside one; otherwise as the debug info has it.
    fn relative(&self, file: &str, comp_dir: Option<&str>) -> String {
        let file = tidy(file);
        for root in comp_dir.map(tidy).iter().chain(self.roots.iter()) {
            let root = root.trim_end_matches('/');
            if root.is_empty() {
                continue;
            }
            if let Some(rest) = file.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
                if !rest.is_empty() && !rest.starts_with("../") {
                    return rest.to_string();
                }
            }
        }
        file
    }
}

/// Inlining never nests deeper than this in practice; a bound keeps hostile DWARF cheap.
const MAX_INLINED: usize = 64;

/// `a/./b` as `a/b`, `./a` as `a`, `a//b` as `a/b`.
fn tidy(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Source roots known from where the file is: the build directory itself and, for a kbuild
/// `O=` directory, the source tree its `source` link names.
fn roots(path: &Path) -> Vec<String> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let link = dir.join("source");
    if let Ok(target) = std::fs::read_link(&link) {
        found.push(dir.join(target));
        found.extend(link.canonicalize().ok());
    }
    found.push(dir.to_path_buf());
    found.extend(dir.canonicalize().ok());
    let mut roots: Vec<String> = found
        .into_iter()
        .filter_map(|p| p.to_str().map(tidy))
        .filter(|p| p != "/")
        .collect();
    roots.dedup();
    roots
}

#[cfg(test)]
mod tests;
