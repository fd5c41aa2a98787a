//! What vmlane adds to `/etc/rc.conf`.

/// The image's host name.
pub const HOSTNAME: &str = "vmlane";

/// Settings appended after the source's own, so they win (rc.conf is sourced in order): the
/// host name and vmlane's boot hook (which does nothing on a boot without a run disk).
const SETTINGS: &[(&str, &str, &str)] = &[
    ("hostname", HOSTNAME, ""),
    (
        "vmlane_enable",
        "YES",
        "run the command from the run disk, then end the VM",
    ),
];

/// Services off that only slow down a VM that lives for one command and is thrown away; an
/// image built for deployment keeps the source's own settings for them.
const TEST_VM_SETTINGS: &[(&str, &str, &str)] = &[
    ("sendmail_enable", "NONE", "no mail at all"),
    ("sendmail_submit_enable", "NO", ""),
    ("sendmail_outbound_enable", "NO", ""),
    ("sendmail_msp_queue_enable", "NO", ""),
    ("cron_enable", "NO", "periodic jobs never get to run"),
    ("syslogd_enable", "NO", "output goes to the console"),
    ("newsyslog_enable", "NO", ""),
    (
        "background_fsck",
        "NO",
        "the image is clean; nothing to check later",
    ),
    ("dumpdev", "NO", "no crash dumps"),
    ("savecore_enable", "NO", ""),
    ("crashinfo_enable", "NO", ""),
    (
        "entropy_boot_file",
        "NO",
        "the image is discarded: no entropy to save",
    ),
    ("entropy_file", "NO", ""),
    ("entropy_dir", "NO", ""),
    ("update_motd", "NO", ""),
    ("virecover_enable", "NO", ""),
    ("mixer_enable", "NO", ""),
    (
        "devmatch_enable",
        "NO",
        "no modules loaded behind a custom kernel's back",
    ),
    ("kldxref_enable", "NO", ""),
];

/// The lines vmlane appends to rc.conf: with the services of a test VM off, unless the image
/// is built `for_deployment`.
pub fn rc_conf_additions(for_deployment: bool) -> String {
    let (heading, services): (_, &[_]) = match for_deployment {
        true => ("\n# Added by vmlane.\n", &[]),
        false => (
            "\n# Added by vmlane for a throwaway test VM.\n",
            TEST_VM_SETTINGS,
        ),
    };
    let mut text = String::from(heading);
    for (knob, value, why) in SETTINGS.iter().chain(services) {
        let line = format!("{knob}=\"{value}\"");
        if why.is_empty() {
            text.push_str(&format!("{line}\n"));
        } else {
            text.push_str(&format!("{line:<32}# {why}\n"));
        }
    }
    text
}

/// rc.conf with vmlane's additions after what the source had (`None`: it had none).
pub fn rc_conf(existing: Option<&[u8]>, for_deployment: bool) -> Vec<u8> {
    let mut text = existing.unwrap_or_default().to_vec();
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(rc_conf_additions(for_deployment).as_bytes());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_come_after_the_sources_settings() {
        let text = String::from_utf8(rc_conf(
            Some(b"sshd_enable=\"YES\"\ncron_enable=\"YES\""),
            false,
        ))
        .unwrap();
        assert!(
            text.starts_with("sshd_enable=\"YES\"\ncron_enable=\"YES\"\n"),
            "{text}"
        );
        let ours = text.find("cron_enable=\"NO\"").unwrap();
        assert!(ours > text.find("cron_enable=\"YES\"").unwrap());
        for line in [
            "hostname=\"vmlane\"",
            "vmlane_enable=\"YES\"",
            "sendmail_enable=\"NONE\"",
            "syslogd_enable=\"NO\"",
            "background_fsck=\"NO\"",
            "dumpdev=\"NO\"",
        ] {
            assert!(text.lines().any(|l| l.starts_with(line)), "{line}: {text}");
        }
    }

    #[test]
    fn without_an_rc_conf_one_is_made() {
        let text = rc_conf(None, false);
        assert_eq!(text, rc_conf_additions(false).as_bytes());
        assert!(text.starts_with(b"\n# Added by vmlane"));
    }

    #[test]
    fn an_image_for_deployment_keeps_its_services() {
        let source = b"cron_enable=\"YES\"\n";
        let text = String::from_utf8(rc_conf(Some(source), true)).unwrap();
        assert!(text.contains("vmlane_enable=\"YES\""), "{text}");
        for knob in [
            "cron_enable=\"NO\"",
            "syslogd_enable",
            "sendmail_enable",
            "devmatch_enable",
        ] {
            assert!(!text.contains(knob), "{knob}: {text}");
        }
    }
}
