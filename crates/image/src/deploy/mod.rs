//! What makes an image one to deploy rather than only to run tests in: a host name, root's
//! and users' SSH keys, sshd with keys only, DHCP on an interface. Users are made at first
//! boot (FreeBSD's `firstboot` rc.d keyword), where `pw` keeps the password databases right.

mod files;
mod validate;

use crate::error::ImageError;
use crate::key::Key;
use crate::stage;
use std::path::{Path, PathBuf};

pub use files::{ACCOUNTS_SCRIPT_PATH, FIRSTBOOT_SENTINEL, ROOT_KEYS_PATH, SSHD_CONFIG_PATH};
pub use validate::DEFAULT_DHCP_INTERFACE;

/// The deployment settings of an image; the default adds nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deploy {
    /// rc.conf's `hostname`, instead of vmlane's.
    pub hostname: Option<String>,
    /// root's `~/.ssh/authorized_keys`.
    pub root_keys: Option<AuthorizedKeys>,
    /// Accounts made at first boot, in order.
    pub users: Vec<Account>,
    /// sshd on, taking keys only.
    pub sshd: bool,
    /// The interface configured by DHCP.
    pub dhcp: Option<String>,
}

/// An account made at first boot with `pw useradd -m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its login name.
    pub name: String,
    /// Its `~/.ssh/authorized_keys`, if any.
    pub keys: Option<AuthorizedKeys>,
}

/// An OpenSSH `authorized_keys` file, read and checked when the image is asked for, so the
/// build (and its cache key) sees the keys rather than a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKeys {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its key lines, each ending in a newline.
    pub text: String,
}

impl Account {
    /// `NAME` or `NAME:KEY_FILE`, as `--user` takes it.
    pub fn parse(spec: &str) -> Result<Account, ImageError> {
        let (name, keys) = match spec.split_once(':') {
            Some((name, file)) => (name, Some(AuthorizedKeys::read(Path::new(file))?)),
            None => (spec, None),
        };
        validate::user_name(name)?;
        Ok(Account {
            name: name.to_string(),
            keys,
        })
    }
}

impl AuthorizedKeys {
    /// Reads `path`, refusing what does not look like OpenSSH public keys.
    pub fn read(path: &Path) -> Result<AuthorizedKeys, ImageError> {
        let bytes = std::fs::read(path).map_err(ImageError::read(path))?;
        let text = validate::public_keys(path, &bytes)?;
        Ok(AuthorizedKeys {
            path: path.to_path_buf(),
            text,
        })
    }
}

impl Deploy {
    /// Checks every name (the key files were checked when read): errors say what to fix.
    pub fn validate(&self) -> Result<(), ImageError> {
        if let Some(hostname) = &self.hostname {
            validate::hostname(hostname)?;
        }
        if let Some(interface) = &self.dhcp {
            validate::interface(interface)?;
        }
        let mut seen = Vec::new();
        for account in &self.users {
            validate::user_name(&account.name)?;
            if seen.contains(&&account.name) {
                return Err(ImageError::DeployName {
                    what: "user name",
                    name: account.name.clone(),
                    reason: "is given twice",
                });
            }
            seen.push(&account.name);
        }
        Ok(())
    }

    /// Whether the image is built to be deployed (any deployment setting given): it then keeps
    /// the services vmlane turns off in images that only run tests.
    pub fn is_deployment(&self) -> bool {
        self.hostname.is_some()
            || self.root_keys.is_some()
            || !self.users.is_empty()
            || self.sshd
            || self.dhcp.is_some()
    }

    /// The lines appended to rc.conf after vmlane's, so they win.
    pub fn rc_conf_additions(&self) -> String {
        files::rc_conf_additions(self)
    }

    /// Puts the deployment's files into the staged tree `root`, after vmlane's own.
    pub(crate) fn stage(&self, root: &Path) -> Result<(), ImageError> {
        if let Some(keys) = &self.root_keys {
            stage::real_dir(root, "root")?;
            let dir = stage::real_dir(root, files::ROOT_SSH_DIR)?;
            set_mode(&dir, 0o700)?;
            stage::put_file(root, ROOT_KEYS_PATH, keys.text.as_bytes(), 0o600)?;
        }
        if self.sshd {
            let existing = stage::regular_file(root, SSHD_CONFIG_PATH)?;
            let config = files::sshd_config(existing.as_deref());
            stage::put_file(root, SSHD_CONFIG_PATH, &config, 0o644)?;
            remove_host_keys(root)?;
        }
        if let Some(script) = files::accounts_script(&self.users) {
            stage::put_file(root, ACCOUNTS_SCRIPT_PATH, script.as_bytes(), 0o555)?;
            stage::put_file(root, FIRSTBOOT_SENTINEL, b"", 0o644)?;
        }
        Ok(())
    }

    /// Everything the deployment puts in an image, for the cache key.
    pub(crate) fn add_to(&self, key: &mut Key) {
        key.field("deploy-rc.conf", self.rc_conf_additions().as_bytes());
        if let Some(keys) = &self.root_keys {
            key.field(ROOT_KEYS_PATH, keys.text.as_bytes());
        }
        key.field("deploy-sshd", &[u8::from(self.sshd)]);
        if self.sshd {
            key.field(SSHD_CONFIG_PATH, files::SSHD_SETTINGS.as_bytes());
        }
        if let Some(script) = files::accounts_script(&self.users) {
            key.field(ACCOUNTS_SCRIPT_PATH, script.as_bytes());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ImageError::write(path))
}

/// Host keys copied from the source would be shared by every machine made from the image;
/// without them rc.d/sshd makes each machine its own at first boot.
fn remove_host_keys(root: &Path) -> Result<(), ImageError> {
    let dir = root.join("etc/ssh");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(ImageError::read(&dir))?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            stage::remove(&entry.path())?;
        }
    }
    Ok(())
}
