//! Cache keys: sha256 over a stable encoding of every input, each field as its name and
//! length-prefixed value, so no two different sets of inputs encode alike.

use crate::error::ImageError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub(crate) struct Key(Sha256);

impl Key {
    pub fn new() -> Key {
        Key(Sha256::new())
    }

    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    /// A file's contents, as the sha256 of its bytes, read in pieces: a base.txz or a
    /// kernel is tens to hundreds of MB.
    pub fn file(&mut self, name: &str, path: &Path) -> Result<(), ImageError> {
        let digest = hash_file(path).map_err(ImageError::read(path))?;
        self.field(name, &digest);
        Ok(())
    }

    pub fn finish(self) -> String {
        crate::hex(&self.0.finalize())
    }
}

fn hash_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hash.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_run_into_each_other() {
        let key = |fields: &[(&str, &[u8])]| {
            let mut key = Key::new();
            for (name, value) in fields {
                key.field(name, value);
            }
            key.finish()
        };
        assert_ne!(key(&[("a", b"bc")]), key(&[("ab", b"c")]));
        assert_ne!(
            key(&[("a", b""), ("b", b"")]),
            key(&[("a", b"\0\0\0\0\0\0\0\0\x01b")])
        );
        assert_eq!(key(&[("a", b"x")]), key(&[("a", b"x")]));
    }
}
