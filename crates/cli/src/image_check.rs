//! `vmlane image check`: flags in, the boot check's findings out, one `name: value` line each
//! on stdout.

use crate::image::ImageCheckArgs;
use crate::vm::Events;
use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::time::Duration;
use vmlane::check::{check_boot, BootCheck, CheckReport};
use vmlane::{OsChoice, Request};
use vmlane_spec::{Network, Outcome, PortForward};

/// sshd's port in the guest.
const SSH_PORT: u16 = 22;

pub fn check(args: &ImageCheckArgs) -> Result<i32> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!(
            "--timeout must be a positive number of seconds, got {}",
            args.timeout
        );
    }
    let image = std::path::absolute(&args.image)
        .with_context(|| format!("cannot use the image path {}", args.image.display()))?;
    let sshd = vmlane_image::rc_enabled(&image, "sshd_enable")
        .with_context(|| format!("cannot read {}", image.display()))?;
    let ssh_port = match sshd {
        Some(true) => Some(match args.ssh_port {
            Some(port) => port,
            None => free_port()?,
        }),
        Some(false) | None => None,
    };
    let request = request(args, &image, ssh_port)?;
    let check = BootCheck { ssh_port };
    let events = Events::new(args.verbose);
    let log = args
        .log
        .clone()
        .unwrap_or_else(|| crate::run::default_log_path(&vmlane_kernel::cache_dir()));
    let report = match check_boot(request, &check, &log, &|event| events.show(event)) {
        Ok(report) => report,
        Err(error) => {
            // Most errors come before any VM: an empty log goes, unless --log asked for it.
            let empty = std::fs::metadata(&log).is_ok_and(|m| m.len() == 0);
            if empty && args.log.is_none() {
                let _ = std::fs::remove_file(&log);
            } else if log.exists() {
                eprintln!("vmlane: console log: {}", log.display());
            }
            return Err(error.into());
        }
    };
    let passed = report.passed(&check);
    for line in findings(&report, &check, args.timeout) {
        println!("{line}");
    }
    if passed && args.log.is_none() {
        let _ = std::fs::remove_file(&log);
    } else {
        eprintln!("vmlane: console log: {}", log.display());
    }
    Ok(match report.ended {
        Some(Outcome::Interrupted(signal)) => 128 + signal,
        _ if passed => 0,
        _ => 1,
    })
}

/// The boot, as `vmlane run --os freebsd --image IMG --net user [--forward P:22]` would ask for
/// it.
fn request(
    args: &ImageCheckArgs,
    image: &std::path::Path,
    ssh_port: Option<u16>,
) -> Result<Request> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let mut request = Request::new(Vec::new(), cwd);
    request.kernel = args.kernel.clone();
    request.os = OsChoice::FreeBsd;
    request.freebsd.image = Some(image.to_path_buf());
    request.freebsd.boot = args.boot.into();
    request.accel = args.accel.into();
    request.machine = args.machine.into();
    request.memory_mib = args.memory;
    request.append = args.append.clone();
    request.cold = true;
    request.network = Network::User {
        forwards: ssh_port
            .map(|host| PortForward {
                host,
                guest: SSH_PORT,
            })
            .into_iter()
            .collect(),
    };
    request.timeout = Some(Duration::from_secs_f64(args.timeout));
    Ok(request)
}

/// A port nothing on this host listens on now.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port for sshd")?;
    Ok(listener.local_addr()?.port())
}

/// What the check found, a line each.
fn findings(report: &CheckReport, check: &BootCheck, timeout: f64) -> Vec<String> {
    let progress = &report.progress;
    let mut lines = vec![match (report.multi_user_after, &report.ended) {
        (Some(after), _) => format!("multi-user: reached after {:.1} s", after.as_secs_f64()),
        (None, _) if progress.single_user => {
            "multi-user: not reached; rc failed and init asks for a single-user shell".into()
        }
        (None, Some(Outcome::TimedOut)) => format!("multi-user: not reached in {timeout} s"),
        (None, Some(outcome)) => format!("multi-user: not reached; {outcome}"),
        (None, None) => "multi-user: not reached".into(),
    }];
    lines.push(match &progress.last_step {
        Some(step) => format!("rc's last step: {step}"),
        None if progress.rc_started => "rc's last step: none announced".into(),
        None => "rc's last step: rc never started (the kernel did not mount root)".into(),
    });
    if let Some(port) = check.ssh_port {
        lines.push(match &report.ssh_banner {
            Some((banner, after)) => format!(
                "sshd: {banner} on 127.0.0.1:{port} after {:.1} s",
                after.as_secs_f64()
            ),
            None => format!("sshd: no banner on 127.0.0.1:{port} (rc.conf enables sshd)"),
        });
    }
    if let Some(failure) = &progress.first_failure {
        lines.push(format!("first failure on the console: {failure}"));
    }
    if let Some(outcome) = &report.ended {
        if report.multi_user_after.is_some() {
            lines.push(format!("the boot ended before the check did: {outcome}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmlane_checks::rc_boot::rc_progress;

    fn report(console: &str, ended: Option<Outcome>, ssh: Option<&str>) -> CheckReport {
        let progress = rc_progress(console);
        CheckReport {
            multi_user_after: progress.multi_user.then(|| Duration::from_millis(24_300)),
            progress,
            ssh_banner: ssh.map(|b| (b.to_string(), Duration::from_secs(26))),
            ended,
            elapsed: Duration::from_secs(27),
        }
    }

    const UP: &str = "Trying to mount root from ufs:/dev/vtbd0 []...\n\
        mount: fdesc: Invalid fstype\nStarting sshd.\nSat Dec  5 10:00:00 UTC 2026\nlogin: ";

    #[test]
    fn an_image_that_came_up_says_when_and_quotes_sshd_and_the_first_failure() {
        let check = BootCheck {
            ssh_port: Some(2222),
        };
        let report = report(UP, None, Some("SSH-2.0-OpenSSH_9.9"));
        assert!(report.passed(&check));
        assert_eq!(
            findings(&report, &check, 300.0),
            [
                "multi-user: reached after 24.3 s",
                "rc's last step: Starting sshd.",
                "sshd: SSH-2.0-OpenSSH_9.9 on 127.0.0.1:2222 after 26.0 s",
                "first failure on the console: mount: fdesc: Invalid fstype",
            ]
        );
    }

    #[test]
    fn an_image_that_did_not_come_up_says_how_far_it_got() {
        let check = BootCheck::default();
        let stuck = "Trying to mount root from ufs:/dev/vtbd0 []...\nStarting devd.\n";
        let report = report(stuck, Some(Outcome::TimedOut), None);
        assert!(!report.passed(&check));
        assert_eq!(
            findings(&report, &check, 60.0),
            [
                "multi-user: not reached in 60 s",
                "rc's last step: Starting devd."
            ]
        );
        let no_root = report_for_kernel_only();
        assert_eq!(
            findings(&no_root, &check, 60.0)[1],
            "rc's last step: rc never started (the kernel did not mount root)"
        );
        let sshd = BootCheck {
            ssh_port: Some(2222),
        };
        let silent = super::tests::report(UP, Some(Outcome::TimedOut), None);
        assert!(!silent.passed(&sshd), "multi-user without sshd's banner");
        assert!(findings(&silent, &sshd, 60.0)
            .contains(&"sshd: no banner on 127.0.0.1:2222 (rc.conf enables sshd)".to_string()));
    }

    fn report_for_kernel_only() -> CheckReport {
        report("FreeBSD 15.1\n", Some(Outcome::TimedOut), None)
    }
}
