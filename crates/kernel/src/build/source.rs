//! What identifies a source tree's contents for the cache key: for a git tree HEAD plus the
//! uncommitted diff, otherwise the newest modification time anywhere in it.

use super::process::command;
use super::BuildError;
use std::path::Path;

/// Bytes that change whenever the tree's contents do.
pub fn source_identity(source: &Path) -> Result<Vec<u8>, BuildError> {
    if source.join(".git").exists() {
        let git = |args: &[&str]| command("git").arg("-C").arg(source).args(args).output();
        if let (Ok(head), Ok(diff)) = (git(&["rev-parse", "HEAD"]), git(&["diff", "HEAD"])) {
            if head.status.success() && diff.status.success() {
                return Ok([head.stdout, diff.stdout].concat());
            }
        }
    }
    let newest =
        newest_mtime(source).map_err(BuildError::io(format!("scan {}", source.display())))?;
    Ok(newest.to_le_bytes().to_vec())
}

/// The canonical path, so `.`, `../linux` and a symlink name one tree.
pub fn canonical_bytes(source: &Path) -> Vec<u8> {
    source
        .canonicalize()
        .unwrap_or_else(|_| source.to_path_buf())
        .into_os_string()
        .into_encoded_bytes()
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn newest_mtime(dir: &Path) -> std::io::Result<u128> {
    let mut newest = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            newest = newest.max(newest_mtime(&entry.path())?);
        } else if kind.is_file() {
            let modified = entry.metadata()?.modified()?;
            let nanos = modified
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            newest = newest.max(nanos);
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_plain_tree_changes_identity_when_a_file_is_touched() {
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir(tree.path().join("sub")).unwrap();
        let file = tree.path().join("sub/a.c");
        fs::write(&file, "int a;").unwrap();
        let before = source_identity(tree.path()).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_ne!(before, source_identity(tree.path()).unwrap());
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}
