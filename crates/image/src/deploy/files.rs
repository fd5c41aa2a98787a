//! The files a deployment adds: rc.conf lines, sshd's settings, the first-boot script that
//! makes the accounts.

use super::{Account, Deploy};
use crate::hook::single_quote;

/// root's authorized_keys, and the directory it is in.
pub const ROOT_KEYS_PATH: &str = "root/.ssh/authorized_keys";
pub(crate) const ROOT_SSH_DIR: &str = "root/.ssh";

/// sshd's configuration file.
pub const SSHD_CONFIG_PATH: &str = "etc/ssh/sshd_config";

/// The first-boot script that makes the accounts and then removes itself.
pub const ACCOUNTS_SCRIPT_PATH: &str = "etc/rc.d/vmlane_accounts";

/// rc runs `KEYWORD: firstboot` scripts only while this file exists, and removes it once
/// the boot is done (rc.conf's `firstboot_sentinel`).
pub const FIRSTBOOT_SENTINEL: &str = "firstboot";

/// Put first in sshd_config: sshd keeps the first value it reads for a setting, so these
/// win over the source's own further down.
pub(crate) const SSHD_SETTINGS: &str = "\
# Added by vmlane: keys only.
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes

";

pub(super) fn rc_conf_additions(deploy: &Deploy) -> String {
    let mut lines = Vec::new();
    if let Some(hostname) = &deploy.hostname {
        lines.push(format!("hostname=\"{hostname}\""));
    }
    if deploy.sshd {
        lines.push("sshd_enable=\"YES\"".to_string());
    }
    if let Some(interface) = &deploy.dhcp {
        lines.push(format!("ifconfig_{interface}=\"DHCP\""));
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n# Added by vmlane for deployment.\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// sshd_config: vmlane's settings, then what the source had.
pub(super) fn sshd_config(existing: Option<&[u8]>) -> Vec<u8> {
    let mut text = SSHD_SETTINGS.as_bytes().to_vec();
    text.extend_from_slice(existing.unwrap_or_default());
    text
}

/// The first-boot script for `users`; `None` when there are none. The password and
/// login-class databases are rebuilt first, since a tree installed without root may have
/// only their sources; `pw` then keeps the password databases up to date.
pub(super) fn accounts_script(users: &[Account]) -> Option<String> {
    if users.is_empty() {
        return None;
    }
    let mut body = String::new();
    for account in users {
        body.push_str(&account_commands(account));
    }
    Some(format!(
        r#"#!/bin/sh
#
# Makes the accounts `vmlane image build --user` asked for, on the image's first boot, then
# removes itself.

# PROVIDE: vmlane_accounts
# REQUIRE: FILESYSTEMS
# BEFORE: LOGIN sshd
# KEYWORD: firstboot nojail

. /etc/rc.subr

name="vmlane_accounts"
desc="Make the image's user accounts on its first boot"
start_cmd="vmlane_accounts_start"
stop_cmd=":"

vmlane_accounts_start()
{{
	pwd_mkdb -p /etc/master.passwd
	cap_mkdb /etc/login.conf
{body}	rm -f /{ACCOUNTS_SCRIPT_PATH}
}}

load_rc_config $name
run_rc_command "$1"
"#
    ))
}

/// One account: made with its home, and its keys installed with the modes sshd insists on.
fn account_commands(account: &Account) -> String {
    let name = &account.name;
    let mut text = format!("\tpw useradd -n {name} -m -s /bin/sh -c {name}\n");
    if let Some(keys) = &account.keys {
        let ssh = format!("/home/{name}/.ssh");
        let words: Vec<String> = keys.text.lines().map(single_quote).collect();
        text.push_str(&format!(
            "\tinstall -d -o {name} -g {name} -m 0700 {ssh}\n\
             \tprintf '%s\\n' {} > {ssh}/authorized_keys\n\
             \tchown {name}:{name} {ssh}/authorized_keys\n\
             \tchmod 0600 {ssh}/authorized_keys\n",
            words.join(" ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::AuthorizedKeys;
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2sga2V5IGZvciB0ZXN0cyBvbmx5 it's me";

    fn account(name: &str, keys: bool) -> Account {
        Account {
            name: name.to_string(),
            keys: keys.then(|| AuthorizedKeys {
                path: "k.pub".into(),
                text: format!("{KEY}\n"),
            }),
        }
    }

    #[test]
    fn rc_conf_gets_only_what_was_asked_for() {
        assert_eq!(rc_conf_additions(&Deploy::default()), "");
        let deploy = Deploy {
            hostname: Some("web1".into()),
            sshd: true,
            dhcp: Some("vtnet0".into()),
            ..Deploy::default()
        };
        let text = rc_conf_additions(&deploy);
        for line in [
            "hostname=\"web1\"",
            "sshd_enable=\"YES\"",
            "ifconfig_vtnet0=\"DHCP\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
    }

    #[test]
    fn sshd_settings_come_before_the_sources() {
        let text = String::from_utf8(sshd_config(Some(b"PasswordAuthentication yes\n"))).unwrap();
        let ours = text.find("PasswordAuthentication no").unwrap();
        assert!(ours < text.find("PasswordAuthentication yes").unwrap());
        for line in [
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}");
        }
    }

    #[test]
    fn the_accounts_script_is_a_firstboot_script_that_removes_itself() {
        assert_eq!(accounts_script(&[]), None);
        let script = accounts_script(&[account("alice", true), account("bob", false)]).unwrap();
        assert!(script.contains("# KEYWORD: firstboot"), "{script}");
        assert!(script.contains("\tpwd_mkdb -p /etc/master.passwd\n"));
        assert!(script.contains("\tcap_mkdb /etc/login.conf\n"));
        assert!(script.contains("\tpw useradd -n alice -m -s /bin/sh -c alice\n"));
        assert!(script.contains("\tpw useradd -n bob -m -s /bin/sh -c bob\n"));
        assert!(script.contains("-m 0700 /home/alice/.ssh\n"));
        assert!(script.contains("chmod 0600 /home/alice/.ssh/authorized_keys\n"));
        assert!(!script.contains("/home/bob/.ssh"));
        assert!(script.contains("\trm -f /etc/rc.d/vmlane_accounts\n"));
    }

    #[test]
    fn the_script_writes_the_keys_byte_for_byte_under_sh() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("alice/.ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let commands = account_commands(&account("alice", true));
        let printf = commands
            .lines()
            .find(|l| l.trim_start().starts_with("printf"))
            .unwrap()
            .replace("/home", &dir.path().to_string_lossy());
        let status = std::process::Command::new("sh")
            .args(["-c", &printf])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(ssh.join("authorized_keys")).unwrap(),
            format!("{KEY}\n")
        );
    }
}
