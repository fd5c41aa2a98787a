//! How a full FreeBSD image runs one command: `/etc/rc.d/vmlane` reads a script from the
//! run disk (the second virtio disk, written by the host for each run), runs it as soon as
//! the filesystems are up (or, with a network, `/etc/rc.d/vmlane_late` once the system is
//! up), and ends the VM. The script runs the command through vmlane-relay ([`RELAY_PATH`])
//! when the VM has a channel for its results, and reports on the console otherwise.
//!
//! The run disk: sector 0 is `vmlane-run SECTORS\n` padded with `\n`; the next SECTORS
//! sectors are the script, padded with `\n`. FreeBSD's disk devices only take whole-sector
//! reads, so the hook reads it with `dd bs=512`.

use crate::error::ImageError;

/// A disk sector: the unit FreeBSD's disk devices are read in.
pub const SECTOR: usize = 512;

/// What sector 0 of a run disk starts with.
pub const RUN_DISK_MAGIC: &str = "vmlane-run";

/// Where the rc.d script lives in the image.
pub const RC_SCRIPT_PATH: &str = "etc/rc.d/vmlane";

/// What ends the VM: no sync (the image is discarded) and no shutdown scripts; QEMU runs with
/// `-no-reboot`, so the reset ends it.
const END_VM: &str = "reboot -nq";

/// Where the hook that waits for the network lives in the image.
pub const RC_LATE_SCRIPT_PATH: &str = "etc/rc.d/vmlane_late";

/// `/etc/rc.d/vmlane` (installed mode 0555): runs the command as soon as the filesystems and
/// the library hints are up, so a run skips the rest of `rc` (network, services), which under
/// emulation costs seconds. A VM with a network interface (`--net`) leaves the command to
/// [`rc_late_script`]. Without a run disk it says so and lets the boot go on, so the image can
/// still be booted by hand.
pub fn rc_script() -> String {
    hook_script(
        "vmlane",
        "FILESYSTEMS ldconfig",
        EARLY_HOOK_BEFORE,
        "as soon as the filesystems are up; a VM with a network waits for vmlane_late",
        "if vmlane_has_network; then\n\t\treturn 0\n\tfi",
    )
}

/// `/etc/rc.d/vmlane_late` (installed mode 0555): `REQUIRE: LOGIN`, after everything a login
/// would need is up, for runs with a network interface.
pub fn rc_late_script() -> String {
    hook_script(
        "vmlane_late",
        "LOGIN",
        "",
        "once the system is up, for VMs with a network (vmlane runs the others earlier)",
        "if ! vmlane_has_network; then\n\t\treturn 0\n\tfi",
    )
}

/// Both hooks, as (path in the image, contents).
pub fn rc_scripts() -> [(&'static str, String); 2] {
    [
        (RC_SCRIPT_PATH, rc_script()),
        (RC_LATE_SCRIPT_PATH, rc_late_script()),
    ]
}

/// What rcorder would otherwise put between `ldconfig` and the early hook: under emulation
/// each rc.d script costs a forked shell reading rc.subr and rc.conf, and these (the network,
/// the host name, entropy, resource limits) are not what a command run early needs; the hook
/// sets the host name itself.
const EARLY_HOOK_BEFORE: &str =
    "iovctl ipsec random netoptions ip6addrctl hostname adjkerntz geli2 noshutdown rctl ugidfw netif";

/// The hook `name`, ordered after `require` (and before `before`, if any), running the command
/// only past `phase_check`.
fn hook_script(name: &str, require: &str, before: &str, when: &str, phase_check: &str) -> String {
    let before = match before {
        "" => String::new(),
        before => format!("# BEFORE: {before}\n"),
    };
    format!(
        r#"#!/bin/sh
#
# Runs the command vmlane put on the run disk {when}, then ends the VM.

# PROVIDE: {name}
# REQUIRE: {require}
{before}# KEYWORD: nojail

. /etc/rc.subr

name="{name}"
desc="Run vmlane's command from the run disk, then end the VM"
rcvar="vmlane_enable"
start_cmd="vmlane_start"
stop_cmd=":"

# Any interface but loopback: the run asked for a network.
vmlane_has_network()
{{
	local interface
	for interface in $(ifconfig -l); do
		case "${{interface}}" in
		lo*) ;;
		*) return 0 ;;
		esac
	done
	return 1
}}

vmlane_start()
{{
	local header sectors script
	{phase_check}
	header=$(dd if="${{vmlane_disk}}" bs={SECTOR} count=1 2>/dev/null | head -n 1)
	case "${{header}}" in
	"{RUN_DISK_MAGIC} "*)
		sectors=${{header#{RUN_DISK_MAGIC} }}
		;;
	*)
		echo "vmlane: no run disk on ${{vmlane_disk}}; booting on" > /dev/console
		return 0
		;;
	esac
	case "${{sectors}}" in
	''|*[!0-9]*)
		echo "vmlane: bad run disk header on ${{vmlane_disk}}: ${{header}}" > /dev/console
		{END_VM}
		;;
	esac
	if [ -n "${{hostname}}" ]; then
		hostname "${{hostname}}"
	fi
	script=/tmp/vmlane-run.sh
	dd if="${{vmlane_disk}}" of="${{script}}" bs={SECTOR} skip=1 count="${{sectors}}" 2>/dev/null
	/bin/sh "${{script}}" < /dev/null > /dev/console 2>&1
	{END_VM}
}}

load_rc_config $name
: ${{vmlane_enable:="NO"}}
: ${{vmlane_disk:="/dev/vtbd1"}}

run_rc_command "$1"
"#
    )
}

/// The run disk carrying `script`.
pub fn run_disk(script: &str) -> Vec<u8> {
    let body = pad(script.as_bytes());
    let sectors = body.len() / SECTOR;
    let mut disk = pad(format!("{RUN_DISK_MAGIC} {sectors}\n").as_bytes());
    disk.truncate(SECTOR);
    disk.extend_from_slice(&body);
    disk
}

/// `bytes` padded with `\n` to whole sectors, at least one.
fn pad(bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len().max(1).next_multiple_of(SECTOR);
    let mut padded = bytes.to_vec();
    padded.resize(len, b'\n');
    padded
}

/// Where `vmlane image build` installs vmlane-relay (`vmlane_guest_freebsd::relay_binary`) in
/// the image, mode 0555.
pub const RELAY_PATH: &str = "usr/libexec/vmlane-relay";

/// The script the hook runs on a VM without a channel (bhyve): prints `vmlane:TOKEN:start`,
/// runs `argv` in `cwd` with `env` (`KEY=VALUE` entries) added to the environment, reports how
/// it ended, and ends the VM. The command's output goes to the console and how it ended is a
/// line after it (on a line of its own: the output may not end with a line break):
/// `vmlane:TOKEN:exit N`, `vmlane:TOKEN:notfound` (the shell's status 127),
/// `vmlane:TOKEN:noexec` (126) or `vmlane:TOKEN:signal N` (a status above 128); a failure
/// before it runs is a `vmlane:TOKEN:failed STEP: WHY` line.
///
/// Every word is single-quoted, so nothing in it is expanded; words that are not UTF-8 are
/// rebuilt from octal escapes with printf.
pub fn run_script(
    token: &str,
    cwd: &[u8],
    argv: &[Vec<u8>],
    env: &[Vec<u8>],
) -> Result<String, ImageError> {
    script_for(token, Hooked::Command { cwd, argv, env }, &guest())
}

/// The script the hook runs on a VM with a channel (its second serial port, `/dev/cuau1`):
/// prints `vmlane:TOKEN:start` and runs vmlane-relay on the channel, which takes the command,
/// its directory, environment and input from the host there and sends back its output and
/// status, as vmlane's minimal guest does; then ends the VM. A failure before the relay has
/// the channel is a `vmlane:TOKEN:failed STEP: WHY` line: the image has no relay, or one
/// older than this vmlane, or the relay could not open the channel.
pub fn relay_script(token: &str, channel: &str) -> Result<String, ImageError> {
    script_for(token, Hooked::Relay { device: channel }, &guest())
}

/// What the hook's script runs.
pub(crate) enum Hooked<'a> {
    /// This command, reporting on the console.
    Command {
        cwd: &'a [u8],
        argv: &'a [Vec<u8>],
        env: &'a [Vec<u8>],
    },
    /// vmlane-relay on this device, which gets the command from the host.
    Relay { device: &'a str },
}

fn guest() -> Guest<'static> {
    Guest {
        relay: RELAY_IN_GUEST,
        end: END_VM,
    }
}

/// [`RELAY_PATH`] from the guest's root.
const RELAY_IN_GUEST: &str = "/usr/libexec/vmlane-relay";

/// What the script runs besides the command, which tests stand in for on the host.
pub(crate) struct Guest<'a> {
    /// vmlane-relay's path.
    pub relay: &'a str,
    /// What ends the VM.
    pub end: &'a str,
}

/// The script for `hooked`, calling `guest`'s relay and ending with `guest`'s end.
pub(crate) fn script_for(
    token: &str,
    hooked: Hooked<'_>,
    guest: &Guest<'_>,
) -> Result<String, ImageError> {
    check_token(token)?;
    let mut words = Words::default();
    let marker = |what: &str| format!("printf '\\nvmlane:%s:{what}\\n' {token}");
    let run = match hooked {
        Hooked::Command { cwd, argv, env } => {
            if argv.is_empty() {
                return Err(ImageError::NoCommand);
            }
            let cwd = words.word("working directory", cwd)?;
            let command = command_line(&mut words, argv, env)?;
            marked(&marker, &cwd, &command)
        }
        Hooked::Relay { device } => {
            let device = words.word("channel device", device.as_bytes())?;
            relayed(&marker, guest.relay, &device)
        }
    };
    Ok(format!(
        "# vmlane run {token}\n\
         {prelude}\
         {start}\n\
         {run}\
         # The console's output queue drains by interrupts; let it before the VM ends.\n\
         sleep 0.1\n\
         {end}\n",
        prelude = words.prelude,
        start = marker("start"),
        end = guest.end,
    ))
}

/// The token goes into marker lines as it is, so it must be a plain word.
fn check_token(token: &str) -> Result<(), ImageError> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if token.is_empty() || !token.bytes().all(plain) {
        return Err(ImageError::Token {
            token: token.to_string(),
        });
    }
    Ok(())
}

/// `env -- KEY=VALUE... COMMAND ARGUMENT...` as shell words.
fn command_line(
    words: &mut Words,
    argv: &[Vec<u8>],
    env: &[Vec<u8>],
) -> Result<String, ImageError> {
    let mut command = vec!["env".to_string(), "--".to_string()];
    for (i, entry) in env.iter().enumerate() {
        let key = entry.split(|&b| b == b'=').next().unwrap_or_default();
        if key.is_empty() || key.len() == entry.len() {
            return Err(ImageError::Env {
                entry: String::from_utf8_lossy(entry).into_owned(),
            });
        }
        command.push(words.word(&format!("environment entry {}", i + 1), entry)?);
    }
    // env takes a first word with `=` in it for one more variable: such a command goes
    // through sh, which takes it as the program.
    if argv[0].contains(&b'=') {
        command.extend(["/bin/sh", "-c", "'exec \"$@\"'", "sh"].map(String::from));
    }
    for (i, arg) in argv.iter().enumerate() {
        let what = if i == 0 {
            "command".to_string()
        } else {
            format!("argument {i}")
        };
        command.push(words.word(&what, arg)?);
    }
    Ok(command.join(" "))
}

/// The command writing to the console, its ending a marker line after it.
fn marked(marker: &dyn Fn(&str) -> String, cwd: &str, command: &str) -> String {
    format!(
        "if cd -- {cwd}; then\n\
         \t{command}\n\
         \tvmlane_status=$?\n\
         else\n\
         \tvmlane_status=cwd\n\
         fi\n\
         if [ \"$vmlane_status\" = cwd ]; then\n\
         \t{cwd_failed}\n\
         elif [ \"$vmlane_status\" -eq 127 ]; then\n\
         \t{notfound}\n\
         elif [ \"$vmlane_status\" -eq 126 ]; then\n\
         \t{noexec}\n\
         elif [ \"$vmlane_status\" -gt 128 ]; then\n\
         \t{signal} \"$((vmlane_status - 128))\"\n\
         else\n\
         \t{exit} \"$vmlane_status\"\n\
         fi\n",
        cwd_failed = marker(CWD_FAILED),
        notfound = marker("notfound"),
        noexec = marker("noexec"),
        signal = marker("signal %d"),
        exit = marker("exit %d"),
    )
}

/// What the script says when the working directory is not there.
const CWD_FAILED: &str = "failed change to the working directory: cd failed";

/// vmlane-relay on the channel, which takes the run from the host and sends back its output
/// and ending. Its exit status says whether the channel has the result (0: the Exit frame,
/// 1: a Failed frame); otherwise its one line on stderr, `vmlane-relay: STEP: WHY`, becomes
/// the failure line on the console. A relay older than this vmlane wants a command in its
/// arguments and says how it is used instead.
fn relayed(marker: &dyn Fn(&str) -> String, relay: &str, device: &str) -> String {
    let relay_word = single_quote(relay);
    let failed = marker("failed %s");
    let no_relay = single_quote(&format!(
        "start vmlane-relay: {relay} is not in this image (built by a vmlane without it): \
         build the image again with vmlane image build"
    ));
    let old_relay = single_quote(&format!(
        "start vmlane-relay: {relay} is older than this vmlane: \
         build the image again with vmlane image build"
    ));
    format!(
        "if [ ! -x {relay_word} ]; then\n\
         \t{failed} {no_relay}\n\
         else\n\
         \tvmlane_why=$({relay_word} {device} 2>&1)\n\
         \tvmlane_status=$?\n\
         \tif [ \"$vmlane_status\" -gt 1 ]; then\n\
         \t\tcase \"$vmlane_why\" in\n\
         \t\t*\"usage: vmlane-relay DEVICE -- COMMAND\"*) vmlane_why={old_relay} ;;\n\
         \t\t\"vmlane-relay: \"*) vmlane_why=${{vmlane_why#vmlane-relay: }} ;;\n\
         \t\t*) vmlane_why=\"run vmlane-relay: exit status $vmlane_status${{vmlane_why:+: $vmlane_why}}\" ;;\n\
         \t\tesac\n\
         \t\t{failed} \"$vmlane_why\"\n\
         \tfi\n\
         fi\n",
    )
}

/// Shell words for the script, and the assignments that rebuild the non-UTF-8 ones.
#[derive(Default)]
struct Words {
    prelude: String,
    count: usize,
}

impl Words {
    fn word(&mut self, what: &str, bytes: &[u8]) -> Result<String, ImageError> {
        if bytes.contains(&0) {
            return Err(ImageError::Nul {
                what: what.to_string(),
            });
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            return Ok(single_quote(text));
        }
        // printf's octal escapes can make any byte; the `x` keeps the command substitution
        // from eating trailing newlines, and is taken off after.
        self.count += 1;
        let var = format!("vmlane_w{}", self.count);
        let octal: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
        self.prelude
            .push_str(&format!("{var}=$(printf '{octal}x'); {var}=${{{var}%x}}\n"));
        Ok(format!("\"${var}\""))
    }
}

/// `text` as one shell word, expanding nothing: `'` ends the quote, so it is written as
/// `'\''`.
pub fn single_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn bytes(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    /// The hook's `vmlane_start` with rc.subr's parts and the devices stubbed: `ifconfig -l`
    /// lists `interfaces`, and running the command echoes instead; what it printed.
    fn start_hook(script: &str, interfaces: &str) -> String {
        let body = script
            .replace(". /etc/rc.subr", "")
            .replace("load_rc_config $name", "")
            .replace("run_rc_command \"$1\"", "vmlane_start")
            .replace("dd if=", "vmlane_dd if=")
            .replace(
                "/bin/sh \"${script}\" < /dev/null > /dev/console 2>&1",
                "echo ran",
            )
            .replace("> /dev/console", "")
            .replace(END_VM, "echo ended");
        let stubs = format!(
            "ifconfig() {{ echo '{interfaces}'; }}\n\
             vmlane_dd() {{ case \"$*\" in *of=*) ;; *) printf '{RUN_DISK_MAGIC} 1\\n' ;; esac; }}\n"
        );
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{stubs}{body}"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn a_run_without_a_network_is_run_early_and_one_with_a_network_late() {
        let (early, late) = (rc_script(), rc_late_script());
        assert!(
            early.contains("# REQUIRE: FILESYSTEMS ldconfig\n# BEFORE: iovctl "),
            "{early}"
        );
        assert!(early.contains(" hostname ") && early.contains(" netif\n"));
        assert!(
            late.contains("# PROVIDE: vmlane_late\n# REQUIRE: LOGIN\n# KEYWORD"),
            "the late hook waits for everything: {late}"
        );
        assert_eq!(start_hook(&early, "lo0"), "ran\nended\n");
        assert_eq!(start_hook(&late, "lo0"), "", "the early hook has run it");
        assert_eq!(start_hook(&early, "vtnet0 lo0"), "", "left for the network");
        assert_eq!(start_hook(&late, "vtnet0 lo0"), "ran\nended\n");
    }

    /// What ends the VM in scripts run on this host.
    const TEST_END: &str = "echo vmlane-test-end";

    /// Runs a script without a channel on this host with `sh`, ending with an echo instead of
    /// a reboot; its stdout.
    fn run_on_host(cwd: &[u8], argv: &[Vec<u8>], env: &[Vec<u8>]) -> String {
        let guest = Guest {
            relay: "/nonexistent/vmlane-relay",
            end: TEST_END,
        };
        let script = script_for("t0k", Hooked::Command { cwd, argv, env }, &guest).unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env_remove("VMLANE_X")
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    }

    /// Stands in for vmlane-relay: checks its arguments as the relay does and writes what it
    /// would have sent (`sent`); `$VMLANE_FAKE` makes it fail instead, as the real one can, or
    /// act as a relay older than vmlane-relay's request on the channel.
    const FAKE_RELAY: &str = r#"#!/bin/sh
here=$(dirname "$0")
device=$1
usage='vmlane-relay: read the arguments: usage: vmlane-relay DEVICE -- COMMAND [ARGUMENT ...]'
case "$VMLANE_FAKE" in
old) [ "$#" -lt 3 ] && { echo "$usage" >&2; exit 2; } ;;
open) echo "vmlane-relay: open the channel $device: errno 2 (ENOENT)" >&2; exit 2 ;;
fork) echo failed > "$here/sent"; echo 'vmlane-relay: fork: errno 35 (EAGAIN)' >&2; exit 1 ;;
crash) kill -SEGV $$ ;;
esac
[ "$#" -eq 1 ] || { echo "$usage" >&2; exit 2; }
printf 'exit 0 on %s\n' "$device" > "$here/sent"
"#;

    /// What a script with a channel did on this host with [`FAKE_RELAY`] (failing as `fake`
    /// says): what it printed, and the fake's files (`sent`, `stdout`, `stderr`).
    struct Relayed {
        printed: String,
        dir: tempfile::TempDir,
    }

    impl Relayed {
        fn file(&self, name: &str) -> Option<String> {
            std::fs::read_to_string(self.dir.path().join(name)).ok()
        }
    }

    fn relay_on_host(fake: &str) -> Relayed {
        relay_at(fake, None)
    }

    /// [`relay_on_host`] with the relay at `path` instead of the fake.
    fn relay_at(fake: &str, path: Option<&str>) -> Relayed {
        let dir = tempfile::tempdir().unwrap();
        let relay = dir.path().join("vmlane-relay");
        std::fs::write(&relay, FAKE_RELAY).unwrap();
        let chmod = Command::new("chmod").arg("755").arg(&relay).status();
        assert!(chmod.unwrap().success());
        let guest = Guest {
            relay: path.unwrap_or(relay.to_str().unwrap()),
            end: TEST_END,
        };
        let hooked = Hooked::Relay {
            device: "/dev/cuau1",
        };
        let script = script_for("t0k", hooked, &guest).unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("VMLANE_FAKE", fake)
            .output()
            .unwrap();
        Relayed {
            printed: String::from_utf8(output.stdout).unwrap(),
            dir,
        }
    }

    #[test]
    fn markers_report_exit_statuses_missing_commands_and_signals() {
        let cases: [(&[&str], &str); 4] = [
            (&["true"], "exit 0"),
            (&["sh", "-c", "exit 3"], "exit 3"),
            (&["vmlane-no-such-command"], "notfound"),
            (&["sh", "-c", "kill -TERM $$"], "signal 15"),
        ];
        for (argv, ending) in cases {
            let out = run_on_host(b"/", &bytes(argv), &[]);
            assert!(out.starts_with("\nvmlane:t0k:start\n"), "{argv:?}: {out:?}");
            assert!(
                out.ends_with(&format!("\nvmlane:t0k:{ending}\nvmlane-test-end\n")),
                "{argv:?}: {out:?}"
            );
        }
    }

    #[test]
    fn every_word_reaches_the_command_as_it_was() {
        let tricky = [
            "printf",
            "%s|",
            "it's",
            "$HOME",
            "`id`",
            "a b\tc",
            "line\nbreak",
            "\\",
            "\"",
            "*",
            "",
            "-n",
        ];
        let out = run_on_host(b"/", &bytes(&tricky), &[]);
        let expected = tricky[2..].join("|") + "|";
        assert!(
            out.contains(&format!(
                "\nvmlane:t0k:start\n{expected}\nvmlane:t0k:exit 0\n"
            )),
            "{out:?}"
        );
    }

    #[test]
    fn the_command_runs_in_cwd_with_exactly_the_added_environment() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("it's here");
        std::fs::create_dir(&cwd).unwrap();
        let argv = bytes(&[
            "sh",
            "-c",
            "pwd; printf '%s\\n' \"$VMLANE_X\" \"${VMLANE_Y-unset}\"",
        ]);
        let env = bytes(&["VMLANE_X=a 'b' $c=d"]);
        let out = run_on_host(cwd.as_os_str().as_encoded_bytes(), &argv, &env);
        let expected = format!("{}\na 'b' $c=d\nunset\n", cwd.display());
        assert!(out.contains(&expected), "{out:?}");
        assert!(
            out.ends_with("vmlane:t0k:exit 0\nvmlane-test-end\n"),
            "{out:?}"
        );
    }

    #[test]
    fn a_missing_directory_fails_the_run_without_running_the_command() {
        let out = run_on_host(b"/nonexistent/vmlane", &bytes(&["echo", "ran"]), &[]);
        assert!(!out.contains("ran"), "{out:?}");
        assert!(
            out.ends_with(
                "\nvmlane:t0k:failed change to the working directory: cd failed\nvmlane-test-end\n"
            ),
            "{out:?}"
        );
    }

    #[test]
    fn a_command_that_cannot_be_executed_is_noexec() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("not-executable");
        std::fs::write(&program, "data").unwrap();
        let argv = vec![program.as_os_str().as_encoded_bytes().to_vec()];
        let out = run_on_host(b"/", &argv, &[]);
        assert!(
            out.ends_with("\nvmlane:t0k:noexec\nvmlane-test-end\n"),
            "{out:?}"
        );
    }

    /// An argv that writes `word` into `file` exactly, through `sh -c printf`.
    fn write_word_argv(word: &[u8], file: &std::path::Path) -> Vec<Vec<u8>> {
        vec![
            b"sh".to_vec(),
            b"-c".to_vec(),
            b"printf %s \"$1\" > \"$2\"".to_vec(),
            b"sh".to_vec(),
            word.to_vec(),
            file.as_os_str().as_encoded_bytes().to_vec(),
        ]
    }

    #[test]
    fn bytes_that_are_not_utf8_survive_including_trailing_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let out_file = dir.path().join("out");
        let word = b"\xff\xfe%d\n\n".to_vec();
        let argv = write_word_argv(&word, &out_file);
        let out = run_on_host(b"/", &argv, &[]);
        assert!(out.contains("vmlane:t0k:exit 0"), "{out:?}");
        assert_eq!(std::fs::read(&out_file).unwrap(), word);
    }

    #[test]
    fn a_command_with_an_equals_sign_is_still_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("a=b");
        std::fs::write(&program, "#!/bin/sh\necho \"ran $1\"\n").unwrap();
        let chmod = Command::new("chmod").arg("755").arg(&program).status();
        assert!(chmod.unwrap().success());
        let argv = vec![
            program.as_os_str().as_encoded_bytes().to_vec(),
            b"x".to_vec(),
        ];
        let out = run_on_host(b"/", &argv, &bytes(&["K=V"]));
        assert!(out.contains("ran x\n"), "{out:?}");
    }

    #[test]
    fn nul_bytes_bad_tokens_and_bad_env_entries_are_refused() {
        let argv = bytes(&["true"]);
        let nul = run_script("t", b"/", &[b"a\0b".to_vec()], &[]).unwrap_err();
        assert!(nul.to_string().contains("command contains a NUL"), "{nul}");
        let nul = run_script("t", b"/\0", &argv, &[]).unwrap_err();
        assert!(nul.to_string().contains("working directory"), "{nul}");
        for token in ["", "a b", "a\nb", "a:b"] {
            assert!(matches!(
                run_script(token, b"/", &argv, &[]),
                Err(ImageError::Token { .. })
            ));
        }
        for entry in ["=x", "novalue"] {
            assert!(matches!(
                run_script("t", b"/", &argv, &bytes(&[entry])),
                Err(ImageError::Env { .. })
            ));
        }
        assert!(matches!(
            run_script("t", b"/", &[], &[]),
            Err(ImageError::NoCommand)
        ));
    }

    #[test]
    fn the_real_script_ends_the_vm_without_syncing() {
        let scripts = [
            run_script("t", b"/", &bytes(&["true"]), &[]).unwrap(),
            relay_script("t", "/dev/cuau1").unwrap(),
        ];
        for script in scripts {
            assert!(script.trim_end().ends_with("\nreboot -nq"), "{script}");
        }
    }

    #[test]
    fn with_a_channel_the_real_script_runs_the_installed_relay_alone() {
        let script = relay_script("t", "/dev/cuau1").unwrap();
        assert!(
            script.contains("\tvmlane_why=$('/usr/libexec/vmlane-relay' '/dev/cuau1' 2>&1)\n"),
            "{script}"
        );
        assert!(!script.contains("vmlane:%s:exit"), "{script}");
        assert!(relay_script("a b", "/dev/cuau1").is_err());
    }

    #[test]
    fn with_a_channel_the_console_only_says_the_run_started() {
        let ran = relay_on_host("");
        assert_eq!(ran.printed, "\nvmlane:t0k:start\nvmlane-test-end\n");
        assert_eq!(ran.file("sent").as_deref(), Some("exit 0 on /dev/cuau1\n"));
    }

    #[test]
    fn a_relay_that_could_not_send_the_result_fails_the_run_on_the_console() {
        let ran = relay_on_host("open");
        assert_eq!(
            ran.printed,
            "\nvmlane:t0k:start\n\
             \nvmlane:t0k:failed open the channel /dev/cuau1: errno 2 (ENOENT)\n\
             vmlane-test-end\n"
        );
        assert_eq!(ran.file("sent"), None, "nothing went on the channel");
        let ran = relay_on_host("crash");
        assert!(
            ran.printed.ends_with(
                "\nvmlane:t0k:failed run vmlane-relay: exit status 139\nvmlane-test-end\n"
            ),
            "{:?}",
            ran.printed
        );
        // A failure the relay sent on the channel is the host's already.
        let ran = relay_on_host("fork");
        assert_eq!(ran.printed, "\nvmlane:t0k:start\nvmlane-test-end\n");
        assert_eq!(ran.file("sent").as_deref(), Some("failed\n"));
    }

    #[test]
    fn an_image_without_the_relay_or_with_an_old_one_says_to_build_it_again() {
        let ran = relay_at("", Some("/nonexistent/vmlane-relay"));
        assert_eq!(
            ran.printed,
            "\nvmlane:t0k:start\n\
             \nvmlane:t0k:failed start vmlane-relay: /nonexistent/vmlane-relay is not in this \
             image (built by a vmlane without it): build the image again with vmlane image \
             build\nvmlane-test-end\n"
        );
        let ran = relay_on_host("old");
        assert!(
            ran.printed.contains(
                "is older than this vmlane: build the image again with vmlane image build\n"
            ),
            "{:?}",
            ran.printed
        );
    }

    #[test]
    fn a_run_disk_is_a_header_sector_then_the_script_in_whole_sectors() {
        let script = "echo hi\n".repeat(100); // 800 bytes: two sectors
        let disk = run_disk(&script);
        assert_eq!(disk.len(), 3 * SECTOR);
        assert!(disk[..SECTOR].starts_with(b"vmlane-run 2\n"));
        assert!(disk[13..SECTOR].iter().all(|&b| b == b'\n'));
        assert_eq!(&disk[SECTOR..SECTOR + 800], script.as_bytes());
        assert!(disk[SECTOR + 800..].iter().all(|&b| b == b'\n'));
        assert_eq!(run_disk(&"x".repeat(SECTOR)).len(), 2 * SECTOR);
        assert!(run_disk("").starts_with(b"vmlane-run 1\n"));
    }

    #[test]
    fn the_rc_script_reads_the_run_disk_by_sectors() {
        let dir = tempfile::tempdir().unwrap();
        // The hook's own parsing, on this host, against a run disk file.
        let disk = dir.path().join("disk");
        std::fs::write(&disk, run_disk("echo from the run disk\n")).unwrap();
        let hook = rc_script();
        let body = hook
            .split("vmlane_start()\n{\n")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .unwrap()
            .replace("local ", "")
            .replace("/dev/console", "/dev/stdout")
            .replace(
                "/tmp/vmlane-run.sh",
                &dir.path().join("s").display().to_string(),
            )
            .replace(END_VM, "echo ended");
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "vmlane_has_network() {{ return 1; }}\nvmlane_disk={}\n{body}",
                disk.display()
            ))
            .output()
            .unwrap();
        let out = String::from_utf8(output.stdout).unwrap();
        assert!(out.starts_with("from the run disk\n"), "{out:?}");
        assert!(out.ends_with("ended\n"), "{out:?}");
        for line in [
            "# PROVIDE: vmlane",
            "# REQUIRE: FILESYSTEMS ldconfig",
            "# KEYWORD: nojail",
            ". /etc/rc.subr",
        ] {
            assert!(hook.lines().any(|l| l == line), "{line}");
        }
    }
}
