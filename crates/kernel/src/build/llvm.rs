//! Which LLVM a `--clang` build uses: the unversioned tools on `PATH` (`LLVM=1`), else the
//! newest versioned install such as Debian's `/usr/lib/llvm-19/bin` (`LLVM=<dir>/`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The tools a kernel build with `LLVM=` calls, besides clang.
const TOOLS: &[&str] = &["clang", "ld.lld", "llvm-ar", "llvm-nm", "llvm-objcopy"];

/// Where the LLVM tools for a kernel build are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Llvm {
    /// Unversioned tools on `PATH`.
    OnPath,
    /// A directory holding them, e.g. `/usr/lib/llvm-19/bin`.
    Dir(PathBuf),
}

impl Llvm {
    /// Finds the tools on `path` (a `PATH` value) or under `lib` (usually `/usr/lib`).
    pub fn find(path: Option<&std::ffi::OsStr>, lib: &Path) -> Option<Llvm> {
        let on_path =
            path.is_some_and(|path| std::env::split_paths(path).any(|dir| has_tools(&dir)));
        if on_path {
            return Some(Llvm::OnPath);
        }
        newest_versioned(lib).map(Llvm::Dir)
    }

    /// The `LLVM=` make argument.
    pub fn make_arg(&self) -> OsString {
        match self {
            Llvm::OnPath => "LLVM=1".into(),
            Llvm::Dir(dir) => {
                let mut arg = OsString::from("LLVM=");
                arg.push(dir);
                arg.push("/");
                arg
            }
        }
    }
}

fn has_tools(dir: &Path) -> bool {
    TOOLS.iter().all(|tool| dir.join(tool).is_file())
}

/// The `llvm-N/bin` under `lib` with the highest N that has every tool.
pub fn newest_versioned(lib: &Path) -> Option<PathBuf> {
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version: u32 = name.to_str()?.strip_prefix("llvm-")?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tools_in(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for tool in TOOLS {
            fs::write(dir.join(tool), "").unwrap();
        }
    }

    #[test]
    fn unversioned_tools_on_path_win() {
        let root = tempfile::tempdir().unwrap();
        tools_in(&root.path().join("bin"));
        tools_in(&root.path().join("lib/llvm-19/bin"));
        let path =
            std::env::join_paths([root.path().join("none"), root.path().join("bin")]).unwrap();
        let llvm = Llvm::find(Some(&path), &root.path().join("lib")).unwrap();
        assert_eq!(llvm, Llvm::OnPath);
        assert_eq!(llvm.make_arg(), "LLVM=1");
    }

    #[test]
    fn newest_complete_versioned_install_is_used_with_a_trailing_slash() {
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("lib");
        tools_in(&lib.join("llvm-14/bin"));
        tools_in(&lib.join("llvm-19/bin"));
        // A newer install without ld.lld cannot build a kernel.
        fs::create_dir_all(lib.join("llvm-20/bin")).unwrap();
        fs::write(lib.join("llvm-20/bin/clang"), "").unwrap();
        let llvm = Llvm::find(None, &lib).unwrap();
        assert_eq!(llvm, Llvm::Dir(lib.join("llvm-19/bin")));
        let expected = format!("LLVM={}/", lib.join("llvm-19/bin").display());
        assert_eq!(llvm.make_arg(), OsString::from(expected));
    }

    #[test]
    fn nothing_found_is_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Llvm::find(None, root.path()), None);
    }
}
