use std::collections::HashMap;
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

/// A kernel's `.config`, read once and then asked many times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    options: HashMap<String, Tristate>,
}

impl KernelConfig {
    /// Reads a `.config` file.
    pub fn read(path: &Path) -> std::io::Result<KernelConfig> {
        Ok(KernelConfig::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses a `.config` file's text.
    pub fn parse(text: &str) -> KernelConfig {
        let options = text
            .lines()
            .filter_map(|line| line.strip_prefix("CONFIG_")?.split_once('='))
            .map(|(name, value)| (name.to_string(), tristate(value)))
            .collect();
        KernelConfig { options }
    }

    /// `CONFIG_<name>`; an option the config does not mention is [`Tristate::No`].
    pub fn option(&self, name: &str) -> Tristate {
        self.options.get(name).copied().unwrap_or(Tristate::No)
    }
}

fn tristate(value: &str) -> Tristate {
    match value {
        "m" => Tristate::Module,
        "n" => Tristate::No,
        _ => Tristate::Yes,
    }
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
            return tristate(value);
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
        let config = KernelConfig::parse(text);
        for name in ["9P_FS", "EXT4_FS", "NET_9P", "HZ", "VIRTIO_FS"] {
            assert_eq!(config.option(name), parse(text, name), "{name}");
        }
    }
}
