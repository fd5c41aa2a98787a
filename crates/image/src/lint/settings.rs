//! The rc.conf settings an image boots with, as `load_rc_config` would read them:
//! `/etc/defaults/rc.conf`, then `/etc/rc.conf` and `/etc/rc.conf.local`, then a service's
//! own `rc.conf.d` file, later files winning. Only plain assignments count; a value the
//! reader cannot work out (a substitution, a conditional assignment) is unknown, and an
//! unknown setting decides nothing.

use super::image::Image;
use super::shell::{scan, Part};
use std::collections::BTreeMap;

/// Largest configuration file read.
pub(crate) const MAX_CONFIG: u64 = 1 << 20;

/// The files `load_rc_config` reads, in order.
const RC_CONF_FILES: &[&str] = &["etc/defaults/rc.conf", "etc/rc.conf", "etc/rc.conf.local"];

/// Where a service's own settings live (`load_rc_config NAME`).
const RC_CONF_D: &[&str] = &["etc/rc.conf.d", "usr/local/etc/rc.conf.d"];

/// Variables and their values; `None` for a value that is set but unknown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    values: BTreeMap<String, Option<String>>,
}

impl Settings {
    /// The system-wide settings of `image`.
    pub fn load(image: &Image) -> Settings {
        let mut settings = Settings::default();
        for file in RC_CONF_FILES {
            settings.apply(image, file);
        }
        settings
    }

    /// The settings service `name` runs with: these plus its `rc.conf.d` files.
    pub fn for_service(&self, image: &Image, name: &str) -> Settings {
        let mut settings = self.clone();
        if !name.is_empty() && !name.contains('/') {
            for dir in RC_CONF_D {
                settings.apply(image, &format!("{dir}/{name}"));
            }
        }
        settings
    }

    /// Reads one file's assignments over these settings.
    fn apply(&mut self, image: &Image, file: &str) {
        let Some(bytes) = image.read(file.as_bytes(), MAX_CONFIG) else {
            return;
        };
        let scan = scan(&String::from_utf8_lossy(&bytes));
        for assignment in &scan.assignments {
            let value = self.expand(&assignment.value);
            if assignment.default {
                if assignment.top && !self.values.contains_key(&assignment.name) {
                    self.values.insert(assignment.name.clone(), value);
                }
            } else if assignment.top {
                self.values.insert(assignment.name.clone(), value);
            } else {
                self.values.insert(assignment.name.clone(), None);
            }
        }
    }

    /// Sets `name` (for a script's own defaults and variables).
    pub fn set(&mut self, name: &str, value: Option<String>) {
        self.values.insert(name.to_string(), value);
    }

    /// Whether `name` is set at all, known or not.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// `name`'s value when it is set and known.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.as_deref()
    }

    /// `parts` with the variables filled in; unset ones are empty, as in `sh`.
    pub fn expand(&self, parts: &[Part]) -> Option<String> {
        let mut text = String::new();
        for part in parts {
            match part {
                Part::Lit(s) => text.push_str(s),
                Part::Var(name) => match self.values.get(name) {
                    Some(Some(value)) => text.push_str(value),
                    Some(None) => return None,
                    None => {}
                },
                Part::Opaque => return None,
            }
        }
        Some(text)
    }

    /// rc.subr's `checkyesno`: `Some(true)` for YES, TRUE, ON or 1 (any case), `Some(false)`
    /// for anything else or unset, `None` when the value is unknown.
    pub fn enabled(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Some(value)) => Some(matches!(
                value.to_ascii_lowercase().as_str(),
                "yes" | "true" | "on" | "1"
            )),
            Some(None) => None,
            None => Some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::view::DirView;

    #[test]
    fn later_files_win_and_unknown_values_decide_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/defaults")).unwrap();
        std::fs::create_dir_all(root.join("etc/rc.conf.d")).unwrap();
        std::fs::write(
            root.join("etc/defaults/rc.conf"),
            "devd_enable=\"YES\"\nsshd_enable=\"NO\"\nldconfig_paths=\"/usr/lib/compat /usr/local/lib\"\n\
             f() {\n\tinner_enable=YES\n}\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/rc.conf"),
            "sshd_enable=YES # on\ndevd_enable=\"$(kenv devd)\"\nhost=vm\nname=\"${host}-1\"\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/rc.conf.d/sshd"), "sshd_enable='no'\n").unwrap();
        let view = DirView::new(root);
        let image = Image::new(&view);
        let settings = Settings::load(&image);
        assert_eq!(settings.enabled("sshd_enable"), Some(true));
        assert_eq!(settings.enabled("devd_enable"), None);
        assert_eq!(settings.enabled("inner_enable"), None);
        assert_eq!(settings.enabled("cron_enable"), Some(false));
        assert_eq!(settings.get("name"), Some("vm-1"));
        assert_eq!(
            settings.get("ldconfig_paths"),
            Some("/usr/lib/compat /usr/local/lib")
        );
        let sshd = settings.for_service(&image, "sshd");
        assert_eq!(sshd.enabled("sshd_enable"), Some(false));
    }
}
