use std::path::Path;

/// A kernel config option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tristate {
    /// Built in (`=y`) or set to a value.
    Yes,
    /// Built as a module (`=m`).
    Module,
    /// Not set.
    No,
}

/// Reads `CONFIG_<name>` from a `.config` file; an unreadable file counts as unknown.
pub fn lookup(config: &Path, name: &str) -> Option<Tristate> {
    let text = std::fs::read_to_string(config).ok()?;
    Some(parse(&text, name))
}

fn parse(text: &str, name: &str) -> Tristate {
    let key = format!("CONFIG_{name}=");
    for line in text.lines() {
        if let Some(value) = line.strip_prefix(&key) {
            return match value {
                "m" => Tristate::Module,
                "n" => Tristate::No,
                _ => Tristate::Yes,
            };
        }
    }
    Tristate::No
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_as_tristates() {
        let text = "CONFIG_9P_FS=m\nCONFIG_EXT4_FS=y\n# CONFIG_NET_9P is not set\nCONFIG_HZ=250\n";
        assert_eq!(parse(text, "9P_FS"), Tristate::Module);
        assert_eq!(parse(text, "EXT4_FS"), Tristate::Yes);
        assert_eq!(parse(text, "NET_9P"), Tristate::No);
        assert_eq!(parse(text, "HZ"), Tristate::Yes);
        assert_eq!(parse(text, "VIRTIO_FS"), Tristate::No);
    }
}
