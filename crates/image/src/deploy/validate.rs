//! Checks on what `vmlane image build` is told to deploy, each refusal saying what to fix.

use crate::error::ImageError;
use std::path::Path;

/// The interface `--dhcp` configures when none is named: the first virtio-net device.
pub const DEFAULT_DHCP_INTERFACE: &str = "vtnet0";

/// FreeBSD's longest login name (MAXLOGNAME less the NUL).
const MAX_USER_NAME: usize = 32;

/// Key types OpenSSH takes in authorized_keys.
const KEY_TYPES: &[&str] = &["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-sha2-"];

fn refuse(what: &'static str, name: &str, reason: &'static str) -> ImageError {
    ImageError::DeployName {
        what,
        name: name.to_string(),
        reason,
    }
}

/// A login name `pw` takes and every tool is happy with: lower-case letters, digits, `_`
/// and `-`, not starting with a digit or `-`; not root, which exists already.
pub(crate) fn user_name(name: &str) -> Result<(), ImageError> {
    let what = "user name";
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(refuse(what, name, "must have 1 to 32 characters"));
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if !name.chars().all(ok) {
        return Err(refuse(
            what,
            name,
            "may only have lower-case letters, digits, `_` and `-`",
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return Err(refuse(what, name, "must start with a letter or `_`"));
    }
    if name == "root" || name == "toor" {
        return Err(refuse(
            what,
            name,
            "is an account FreeBSD already has (use --root-key for root's keys)",
        ));
    }
    Ok(())
}

/// A host name: dot-separated labels of letters, digits and `-`, none starting or ending
/// with `-`, at most 63 characters a label and 253 in all.
pub(crate) fn hostname(name: &str) -> Result<(), ImageError> {
    let what = "host name";
    if name.is_empty() || name.len() > 253 {
        return Err(refuse(what, name, "must have 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(refuse(
                what,
                name,
                "must be labels of 1 to 63 characters between dots",
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(refuse(
                what,
                name,
                "may only have letters, digits, `-` and dots",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(refuse(
                what,
                name,
                "has a label starting or ending with `-`",
            ));
        }
    }
    Ok(())
}

/// A FreeBSD interface name: a driver's name and a unit number (`vtnet0`, `em1`).
pub(crate) fn interface(name: &str) -> Result<(), ImageError> {
    let driver = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let ok = !driver.is_empty()
        && driver.len() < name.len()
        && name.len() <= 15
        && driver.starts_with(|c: char| c.is_ascii_lowercase())
        && driver
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(refuse(
            "interface",
            name,
            "is not a FreeBSD interface name: a driver and a unit number, like vtnet0 or em0",
        ));
    }
    Ok(())
}

/// The key lines of an authorized_keys file, refusing anything that is not OpenSSH public
/// keys (a private key, a PuTTY or PEM file, an empty file).
pub(crate) fn public_keys(path: &Path, bytes: &[u8]) -> Result<String, ImageError> {
    let bad = |reason: String| ImageError::AuthorizedKeys {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| bad("it is not text; pass an OpenSSH public key (a .pub file)".into()))?;
    if text.contains("PRIVATE KEY") {
        return Err(bad(
            "it is a private key; pass its public half (the .pub file beside it)".into(),
        ));
    }
    let mut keys = String::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !is_public_key_line(line) {
            return Err(bad(format!(
                "line {} is not an OpenSSH public key (`ssh-ed25519 AAAA... comment`); `ssh-keygen -y -f KEY` prints one",
                number + 1
            )));
        }
        keys.push_str(line);
        keys.push('\n');
    }
    if keys.is_empty() {
        return Err(bad(
            "it has no keys; pass an OpenSSH public key (a .pub file)".into(),
        ));
    }
    Ok(keys)
}

/// `[options] TYPE BASE64 [comment]`: some word is a key type, the next one base64.
fn is_public_key_line(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).any(|pair| {
        KEY_TYPES.iter().any(|t| pair[0].starts_with(t))
            && pair[1].len() >= 16
            && pair[1].starts_with("AAAA")
            && pair[1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2sga2V5IGZvciB0ZXN0cyBvbmx5 me@host";

    #[test]
    fn user_names_follow_freebsds_rules() {
        for good in ["alice", "_svc", "ci-runner2", "a"] {
            user_name(good).unwrap();
        }
        for (bad, says) in [
            ("", "1 to 32"),
            ("Alice", "lower-case"),
            ("al ice", "lower-case"),
            ("a:b", "lower-case"),
            ("1abc", "start with"),
            ("-x", "start with"),
            ("root", "--root-key"),
            (&"x".repeat(33), "1 to 32"),
        ] {
            let error = user_name(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn host_and_interface_names_are_checked() {
        hostname("build-01.example.org").unwrap();
        for bad in ["", "a..b", "-a", "a_b", "with space"] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
        for good in ["vtnet0", "em1", "igb12"] {
            interface(good).unwrap();
        }
        for bad in ["vtnet", "0", "eth 0", "VTNET0", "vtnet0;reboot"] {
            let error = interface(bad).unwrap_err().to_string();
            assert!(error.contains("like vtnet0"), "{bad}: {error}");
        }
    }

    #[test]
    fn only_openssh_public_keys_are_taken() {
        let path = Path::new("key.pub");
        let text = format!("# mine\n\n{ED25519}\nfrom=\"10.0.0.0/8\" {ED25519}\n");
        let keys = public_keys(path, text.as_bytes()).unwrap();
        assert_eq!(keys.lines().count(), 2);
        assert!(!keys.contains("# mine"));
        for (bad, says) in [
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",
                "public half",
            ),
            ("", "no keys"),
            ("# only a comment\n", "no keys"),
            ("ssh-ed25519\n", "line 1"),
            ("PuTTY-User-Key-File-3: ssh-ed25519\n", "line 1"),
        ] {
            let error = public_keys(path, bad.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
            assert!(error.contains("key.pub"), "{error}");
        }
        assert!(public_keys(path, b"\xff\xfe").is_err());
    }
}
