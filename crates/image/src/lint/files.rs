//! Check 4: the files `init`, `rc` and the enabled services read. Kept as data: each file,
//! what may stand in for it, when it is needed, and why.

use super::finding::Findings;
use super::image::{shown, Image};
use super::settings::Settings;

/// When a file is needed.
#[derive(Debug, Clone, Copy)]
enum When {
    Always,
    /// When any of these rc.conf variables is enabled.
    Enabled(&'static [&'static str]),
}

/// A file the boot reads.
struct Needed {
    /// The file, then the files that would do instead.
    paths: &'static [&'static str],
    when: When,
    why: &'static str,
}

const NEEDED: &[Needed] = &[
    Needed {
        paths: &["etc/rc"],
        when: When::Always,
        why: "init runs it to boot to multi-user",
    },
    Needed {
        paths: &["etc/rc.subr"],
        when: When::Always,
        why: "rc and every rc.d script source it",
    },
    Needed {
        paths: &["etc/defaults/rc.conf"],
        when: When::Always,
        why: "load_rc_config reads every setting's default from it",
    },
    Needed {
        paths: &["etc/fstab"],
        when: When::Always,
        why: "the loader finds the root file system in it, and rc mounts the rest from it",
    },
    Needed {
        paths: &["etc/ttys"],
        when: When::Always,
        why: "init reads the terminals to run getty on from it",
    },
    Needed {
        paths: &["etc/master.passwd", "etc/pwd.db"],
        when: When::Always,
        why: "login, su and every service running as a user look users up there",
    },
    Needed {
        paths: &["etc/group"],
        when: When::Always,
        why: "login and the rc.d scripts that set owners look groups up in it",
    },
    Needed {
        paths: &["etc/login.conf", "etc/login.conf.db"],
        when: When::Always,
        why: "login and daemon(8) take login classes and limits from it",
    },
    Needed {
        paths: &["etc/devd.conf"],
        when: When::Enabled(&["devd_enable"]),
        why: "devd (devd_enable) reads its rules from it",
    },
    Needed {
        paths: &["etc/services"],
        when: When::Enabled(&["inetd_enable", "sshd_enable"]),
        why: "inetd and sshd (enabled) look up their ports in it",
    },
    Needed {
        paths: &["etc/ssh/sshd_config"],
        when: When::Enabled(&["sshd_enable"]),
        why: "sshd (sshd_enable) will not start without it",
    },
];

/// Whether check 4 reports `path` (relative to the root) when it is missing, whatever the
/// settings: others leave it to this check.
pub(crate) fn covers(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    NEEDED
        .iter()
        .any(|n| matches!(n.when, When::Always) && n.paths.contains(&path))
}

/// Runs check 4 over `image`.
pub(crate) fn check(image: &Image, settings: &Settings, findings: &mut Findings) {
    for needed in NEEDED {
        let wanted = match needed.when {
            When::Always => true,
            When::Enabled(vars) => vars.iter().any(|v| settings.enabled(v) == Some(true)),
        };
        if !wanted || needed.paths.iter().any(|p| image.has_file(p.as_bytes())) {
            continue;
        }
        let Some((first, instead)) = needed.paths.split_first() else {
            continue;
        };
        let also = match instead {
            [] => String::new(),
            more => {
                let more: Vec<String> = more.iter().map(|p| shown(p.as_bytes())).collect();
                format!(" (and so is {})", more.join(", "))
            }
        };
        findings.add(first, format!("missing{also}; {}", needed.why));
    }
}
