//! Builds the init's C headers into host programs for the tests: with AddressSanitizer and
//! UBSan where the compiler has them, so a read past a buffer fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

fn find_clang() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["clang-19", "clang"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Compiles `tests/<source>` into the test's temporary directory as `name`.
pub fn compile(source: &str, name: &str) -> Result<PathBuf, String> {
    let clang = find_clang().ok_or("no clang-19 or clang on PATH (Debian: clang-19)")?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(source);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // Built under a private name and renamed, so concurrent test runs never see half a file.
    let staging = dir.join(format!("{name}.{}", std::process::id()));
    let out = dir.join(name);
    let compile = |sanitize: &[&str]| {
        Command::new(&clang)
            .args(["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
            .args(sanitize)
            .arg("-o")
            .arg(&staging)
            .arg(&source)
            .status()
            .map_err(|e| format!("run {}: {e}", clang.display()))
    };
    let asan = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"];
    if !compile(&asan)?.success() {
        // Without compiler-rt the code is still checked, just less strictly.
        eprintln!("note: building {name} without sanitizers");
        if !compile(&[])?.success() {
            return Err(format!("compiling {} failed", source.display()));
        }
    }
    std::fs::rename(&staging, &out).map_err(|e| format!("rename {name}: {e}"))?;
    Ok(out)
}

/// The built program, or `None` (the test skips) when it could not be built; where
/// `VMLANE_E2E_REQUIRED=1` says it must, that fails the test instead.
pub fn built(result: &Result<PathBuf, String>) -> Option<&Path> {
    match result {
        Ok(path) => Some(path),
        Err(why) if std::env::var("VMLANE_E2E_REQUIRED").as_deref() == Ok("1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// Every message in `bytes`, decoded as the FreeBSD session decodes its channel: in odd
/// pieces, as the host reads whatever the socket has, ending on a whole frame.
// The run-file tests have no channel to decode.
#[allow(dead_code)]
pub fn decode(bytes: &[u8]) -> Vec<vmlane_proto::GuestMessage> {
    let mut decoder = vmlane_proto::Decoder::new();
    let mut messages = Vec::new();
    for piece in bytes.chunks(777) {
        decoder.push(piece);
        while let Some(message) = decoder
            .next_message::<vmlane_proto::GuestMessage>()
            .expect("a valid frame")
        {
            messages.push(message);
        }
    }
    assert_eq!(decoder.pending(), 0, "a partial frame at the end");
    messages
}
