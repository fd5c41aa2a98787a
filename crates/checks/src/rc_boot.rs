//! How far a FreeBSD boot got, read from its serial console: where `rc` started, the last step
//! it announced, the first line that reads like a failure, and whether the system reached
//! multi-user (rc's closing date line, or getty's `login:` prompt). `vmlane image check`
//! prints these, so an image that stops half-way names the step and the reason.

use regex::Regex;
use std::sync::OnceLock;

/// The kernel's last line before it starts init: what follows is rc's.
const ROOT_MOUNT: &str = "Trying to mount root from";

/// How rc announces its steps (`Starting sshd.`, `Setting hostname: vm.`, ...).
const STEP_PREFIXES: &[&str] = &[
    "Starting ",
    "Setting ",
    "Mounting ",
    "Generating ",
    "Creating ",
    "Updating ",
    "Configuring ",
    "Clearing ",
    "Loading ",
    "Performing ",
    "Checking ",
    "Launching ",
    "Waiting ",
    "Recovering ",
    "Writing ",
    "Entropy ",
    "ELF ldconfig",
    "Local package initialization",
];

/// What marks a line as something that went wrong: rc.subr's `warn`/`err`, the shell's and
/// the run-time linker's complaints, mount and fsck failures, crashed programs.
const FAILURE_MARKS: &[&str] = &[
    "WARNING",
    "ERROR",
    "not found",
    "Cannot ",
    "cannot ",
    "failed",
    "Failed",
    "Permission denied",
    "No such file or directory",
    "Invalid",
    "core dumped",
    "Segmentation fault",
    "Abort trap",
    "UNEXPECTED INCONSISTENCY",
    "Enter full pathname of shell",
];

/// What init asks when rc failed and the system fell back to single-user mode.
const SINGLE_USER: &str = "Enter full pathname of shell";

/// Where a boot stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcProgress {
    /// The kernel mounted root and handed over to init.
    pub rc_started: bool,
    /// The last step rc announced.
    pub last_step: Option<String>,
    /// The first line after the root mount that reads like a failure.
    pub first_failure: Option<String>,
    /// rc finished: its closing date line, or a getty prompt, came.
    pub multi_user: bool,
    /// getty's `login:` prompt came on the console.
    pub login_prompt: bool,
    /// rc failed and init asks for a single-user shell: the boot will go no further.
    pub single_user: bool,
}

/// A line longer than this is judged in pieces: the guest decides how long its lines are.
const MAX_LINE: usize = 4096;

/// Reads a console as it comes, a line at a time, so a long boot (or a guest flooding its
/// console) is read once rather than again at every look.
#[derive(Debug, Clone, Default)]
pub struct RcReader {
    progress: RcProgress,
    partial: String,
}

impl RcReader {
    /// Takes the next piece of the console (CR-LF or LF).
    pub fn push(&mut self, text: &str) {
        self.partial.push_str(text);
        while let Some(at) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=at).collect();
            judge(&mut self.progress, &line[..line.len() - 1]);
        }
        if self.partial.len() > MAX_LINE {
            let cut = (0..=MAX_LINE)
                .rev()
                .find(|&i| self.partial.is_char_boundary(i))
                .unwrap_or(0);
            let piece: String = self.partial.drain(..cut).collect();
            judge(&mut self.progress, &piece);
        }
    }

    /// Where the boot stands, the unfinished last line (a prompt) included.
    pub fn progress(&self) -> RcProgress {
        let mut progress = self.progress.clone();
        judge(&mut progress, &self.partial);
        progress
    }
}

/// Reads a whole console log (CR-LF or LF; the last line may lack its newline, as a prompt
/// does).
pub fn rc_progress(console: &str) -> RcProgress {
    let mut reader = RcReader::default();
    reader.push(console);
    reader.progress()
}

/// What one console line says about the boot.
fn judge(progress: &mut RcProgress, raw: &str) {
    let line = raw.trim_end_matches('\r').trim_end();
    if !progress.rc_started {
        progress.rc_started = line.contains(ROOT_MOUNT);
        return;
    }
    if line.is_empty() {
        return;
    }
    if line.starts_with("login:") || is_getty_banner(line) {
        progress.login_prompt |= line.starts_with("login:");
        progress.multi_user = true;
        return;
    }
    if is_date_line(line) {
        progress.multi_user = true;
        return;
    }
    if line.contains(SINGLE_USER) {
        progress.single_user = true;
    }
    if STEP_PREFIXES.iter().any(|prefix| line.starts_with(prefix)) {
        progress.last_step = Some(line.to_string());
    }
    if progress.first_failure.is_none() && FAILURE_MARKS.iter().any(|m| line.contains(m)) {
        progress.first_failure = Some(line.to_string());
    }
}

/// `date`'s default output, which /etc/rc prints as its last line: `Sat Dec  5 10:00:00 UTC
/// 2026`.
fn is_date_line(line: &str) -> bool {
    static DATE: OnceLock<Regex> = OnceLock::new();
    DATE.get_or_init(|| {
        Regex::new(
            r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d [A-Z][A-Za-z0-9+-]* \d{4}$",
        )
        .expect("a valid pattern")
    })
    .is_match(line)
}

/// getty's greeting: `FreeBSD/amd64 (host) (ttyu0)`.
fn is_getty_banner(line: &str) -> bool {
    static BANNER: OnceLock<Regex> = OnceLock::new();
    BANNER
        .get_or_init(|| Regex::new(r"^\S+/\S+ \(.*\) \(tty\w+\)$").expect("a valid pattern"))
        .is_match(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: &str = "FreeBSD 15.1-RELEASE-p1 GENERIC amd64\r\n\
        WARNING: WITNESS option enabled, expect reduced performance.\r\n\
        Trying to mount root from ufs:/dev/vtbd0 []...\r\n";

    #[test]
    fn a_boot_to_login_is_multi_user_with_its_last_step_and_first_failure() {
        let console = format!(
            "{KERNEL}Setting hostuuid: 1234.\r\n\
             Starting file system checks:\r\n\
             Mounting local filesystems:.\r\n\
             mount: fdesc: Invalid fstype\r\n\
             vmlane: no run disk on /dev/vtbd1; booting on\r\n\
             Starting sshd.\r\n\
             /etc/rc: WARNING: run_rc_command: cannot run /usr/sbin/cron\r\n\
             Sat Dec  5 10:00:00 UTC 2026\r\n\
             \r\n\
             FreeBSD/amd64 (deploy) (ttyu0)\r\n\
             \r\n\
             login: "
        );
        let progress = rc_progress(&console);
        assert!(progress.rc_started && progress.multi_user && progress.login_prompt);
        assert_eq!(progress.last_step.as_deref(), Some("Starting sshd."));
        assert_eq!(
            progress.first_failure.as_deref(),
            Some("mount: fdesc: Invalid fstype"),
            "the kernel's WITNESS warning comes before rc and is not rc's"
        );
        assert!(!progress.single_user);
    }

    #[test]
    fn a_boot_that_stops_names_its_last_step_and_is_not_multi_user() {
        let console = format!(
            "{KERNEL}Starting devd.\n\
             ld-elf.so.1: Shared object \"libgeom.so.5\" not found, required by \"devd\"\n\
             Starting dhclient.\n"
        );
        let progress = rc_progress(&console);
        assert!(progress.rc_started);
        assert!(!progress.multi_user && !progress.login_prompt);
        assert_eq!(progress.last_step.as_deref(), Some("Starting dhclient."));
        assert!(progress
            .first_failure
            .as_deref()
            .is_some_and(|l| l.contains("libgeom.so.5")));
    }

    #[test]
    fn rc_falling_back_to_single_user_is_seen() {
        let console = format!(
            "{KERNEL}Automatic file system check failed; help!\n\
             Enter full pathname of shell or RETURN for /bin/sh: "
        );
        let progress = rc_progress(&console);
        assert!(progress.single_user && !progress.multi_user);
        assert_eq!(
            progress.first_failure.as_deref(),
            Some("Automatic file system check failed; help!")
        );
    }

    #[test]
    fn nothing_counts_before_the_root_mount() {
        let progress = rc_progress("Starting CPU 1\nlogin: \nSat Dec  5 10:00:00 UTC 2026\n");
        assert_eq!(progress, RcProgress::default());
        assert!(!rc_progress(KERNEL).multi_user);
        assert!(rc_progress(KERNEL).rc_started);
    }

    #[test]
    fn only_dates_in_dates_format_end_rc() {
        assert!(is_date_line("Thu Jan  1 00:00:07 UTC 1970"));
        assert!(is_date_line("Sat Dec 05 10:00:00 CET 2026"));
        assert!(!is_date_line("Sat Dec  5 10:00:00 UTC 2026 and more"));
        assert!(!is_date_line("Starting Sat Dec  5"));
    }

    #[test]
    fn read_in_pieces_it_says_what_read_whole_says() {
        let console = format!(
            "{KERNEL}Starting devd.\r\nmount: fdesc: Invalid fstype\r\n\
             Sat Dec  5 10:00:00 UTC 2026\r\nlogin: "
        );
        let whole = rc_progress(&console);
        for size in [1, 2, 7, 64] {
            let mut reader = RcReader::default();
            let chars: Vec<char> = console.chars().collect();
            for piece in chars.chunks(size) {
                reader.push(&piece.iter().collect::<String>());
            }
            assert_eq!(reader.progress(), whole, "pieces of {size}");
        }
        assert!(whole.login_prompt);
    }

    #[test]
    fn an_endless_line_is_read_in_bounded_pieces() {
        let mut reader = RcReader::default();
        reader.push(KERNEL);
        for _ in 0..1000 {
            reader.push(&"x".repeat(1000));
        }
        assert!(reader.partial.len() <= MAX_LINE);
        assert!(reader.progress().rc_started);
    }
}
