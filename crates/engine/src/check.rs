//! A boot check (`vmlane image check`): a FreeBSD image boots as it would when deployed, with
//! no command and no run disk, so `rc` runs all the way; the check watches the console for
//! multi-user and, when the image runs sshd, waits for its banner through a forwarded port,
//! then ends the VM. The boot goes through [`launch`](crate::launch::launch) like any run, so
//! it leaves nothing behind and panics, hangs and Ctrl-C end it the usual way.

use crate::boot::Io;
use crate::event::LaunchEvent;
use crate::request::Request;
use crate::Error;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use vmlane_backend::{ConsoleLog, StopSignals};
use vmlane_checks::rc_boot::{rc_progress, RcProgress, RcReader};
use vmlane_spec::Outcome;

/// How often the console is read again.
const POLL: Duration = Duration::from_millis(100);
/// How long one try at the SSH banner may take.
const BANNER_WAIT: Duration = Duration::from_secs(2);
/// The most of a banner line read.
const MAX_BANNER: usize = 255;

/// What the check waits for besides multi-user.
#[derive(Debug, Clone, Default)]
pub struct BootCheck {
    /// The host port forwarded to the guest's port 22, when the image runs sshd: the check
    /// then waits for its `SSH-` banner.
    pub ssh_port: Option<u16>,
}

/// How a boot check went.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// How far rc got, read from the whole console log.
    pub progress: RcProgress,
    /// When multi-user was seen, from the start of the check.
    pub multi_user_after: Option<Duration>,
    /// The SSH banner and when it came.
    pub ssh_banner: Option<(String, Duration)>,
    /// How the boot ended: `None` when the check ended it, having seen what it waited for
    /// (or rc falling back to single-user).
    pub ended: Option<Outcome>,
    /// The whole check.
    pub elapsed: Duration,
}

impl CheckReport {
    /// Multi-user reached, and sshd answered where it was expected.
    pub fn passed(&self, check: &BootCheck) -> bool {
        self.multi_user_after.is_some() && (check.ssh_port.is_none() || self.ssh_banner.is_some())
    }
}

/// Boots `request`'s image to multi-user (and sshd's banner), writing the console to
/// `console_log`; `request.timeout` bounds the whole boot.
pub fn check_boot(
    mut request: Request,
    check: &BootCheck,
    console_log: &Path,
    events: &(dyn Fn(LaunchEvent) + Sync),
) -> Result<CheckReport, Error> {
    request.freebsd.boot_only = true;
    let log_error = |source| Error::ConsoleLog {
        path: console_log.to_path_buf(),
        source,
    };
    let mut console = ConsoleLog::create(console_log).map_err(log_error)?;
    let signals = StopSignals::register().map_err(Error::Signals)?;
    let stop = signals.handle().map_err(Error::Signals)?;
    let started = Instant::now();
    let mut watch = Watch::default();
    let finished = std::thread::scope(|scope| {
        let booting = scope.spawn(|| {
            let (mut stdout, mut stderr) = (std::io::sink(), std::io::sink());
            let io = Io {
                stdout: &mut stdout,
                stderr: &mut stderr,
                console: &mut console,
                signals: &signals,
                turn: None,
            };
            crate::launch::launch(request, io, events)
        });
        let mut stopped = false;
        let mut read = 0;
        while !booting.is_finished() {
            std::thread::sleep(POLL);
            if stopped {
                continue;
            }
            let new = read_from(console_log, &mut read);
            if watch.look(&String::from_utf8_lossy(&new), check, started) {
                stop.stop();
                stopped = true;
            }
        }
        booting.join().map(|finished| (finished, stopped))
    });
    let (finished, stopped) = match finished {
        Ok((finished, stopped)) => (finished?, stopped),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let text = std::fs::read(console_log).map_err(log_error)?;
    let progress = rc_progress(&String::from_utf8_lossy(&text));
    Ok(CheckReport {
        multi_user_after: watch
            .multi_user_after
            .or_else(|| progress.multi_user.then(|| started.elapsed())),
        progress,
        ssh_banner: watch.ssh_banner,
        ended: (!stopped).then_some(finished.outcome),
        elapsed: started.elapsed(),
    })
}

/// What the console log has past `offset`, which moves past it; nothing when it cannot be read.
fn read_from(path: &Path, offset: &mut u64) -> Vec<u8> {
    let mut new = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(*offset))?;
        file.read_to_end(&mut new)
    });
    match read {
        Ok(n) => *offset += n as u64,
        Err(_) => new.clear(),
    }
    new
}

/// What the check has seen so far.
#[derive(Debug, Default)]
struct Watch {
    console: RcReader,
    multi_user_after: Option<Duration>,
    ssh_banner: Option<(String, Duration)>,
}

impl Watch {
    /// Takes the console's `new` text and looks at the boot so far (and at sshd, once
    /// multi-user); true when the boot can end.
    fn look(&mut self, new: &str, check: &BootCheck, started: Instant) -> bool {
        self.console.push(new);
        let progress = self.console.progress();
        if progress.single_user {
            return true;
        }
        if progress.multi_user && self.multi_user_after.is_none() {
            self.multi_user_after = Some(started.elapsed());
        }
        if self.multi_user_after.is_none() {
            return false;
        }
        match check.ssh_port {
            None => true,
            Some(port) => {
                if let Some(banner) = ssh_banner(port) {
                    self.ssh_banner = Some((banner, started.elapsed()));
                }
                self.ssh_banner.is_some()
            }
        }
    }
}

/// sshd's greeting on 127.0.0.1:`port`, if a server there sends one (`SSH-2.0-...`).
pub fn ssh_banner(port: u16) -> Option<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, BANNER_WAIT).ok()?;
    stream.set_read_timeout(Some(BANNER_WAIT)).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_BANNER {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    // Said politely, so sshd does not log a failed connection as an attack.
    let _ = stream.write_all(b"SSH-2.0-vmlane-check\r\n");
    let line = String::from_utf8_lossy(&line).trim_end().to_string();
    line.starts_with("SSH-").then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_banner_is_read_and_anything_else_is_not_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for greeting in [
                &b"SSH-2.0-OpenSSH_9.9 FreeBSD\r\n"[..],
                b"HTTP/1.0 200\r\n",
                b"",
            ] {
                let (mut client, _) = listener.accept().unwrap();
                client.write_all(greeting).unwrap();
            }
        });
        assert_eq!(
            ssh_banner(port).as_deref(),
            Some("SSH-2.0-OpenSSH_9.9 FreeBSD")
        );
        assert_eq!(ssh_banner(port), None, "not sshd");
        assert_eq!(
            ssh_banner(port),
            None,
            "closed at once, as QEMU's forward does"
        );
        server.join().unwrap();
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(ssh_banner(port), None, "nobody listening");
    }

    #[test]
    fn the_watch_ends_at_multi_user_or_single_user_and_waits_for_sshd_when_asked() {
        let started = Instant::now();
        let booting = "Trying to mount root from ufs:/dev/vtbd0 []...\nStarting devd.\n";
        let date = "Sat Dec  5 10:00:00 UTC 2026\n";
        let up = format!("{booting}{date}");
        let mut watch = Watch::default();
        assert!(!watch.look(booting, &BootCheck::default(), started));
        assert!(watch.look(date, &BootCheck::default(), started));
        assert!(watch.multi_user_after.is_some());

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let sshd = BootCheck {
            ssh_port: Some(port),
        };
        let mut watch = Watch::default();
        assert!(!watch.look(&up, &sshd, started), "no sshd yet");
        assert!(!watch.look("", &sshd, started), "still none");
        assert!(watch.multi_user_after.is_some() && watch.ssh_banner.is_none());

        let failed = format!("{booting}Enter full pathname of shell or RETURN for /bin/sh: ");
        assert!(Watch::default().look(&failed, &sshd, started));
    }
}

#[cfg(test)]
mod reading {
    use super::*;

    #[test]
    fn the_log_is_read_from_where_the_last_look_ended() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut offset = 0;
        assert!(read_from(&log, &mut offset).is_empty(), "not there yet");
        std::fs::write(&log, "one\n").unwrap();
        assert_eq!(read_from(&log, &mut offset), b"one\n");
        assert!(read_from(&log, &mut offset).is_empty());
        std::fs::write(&log, "one\ntwo").unwrap();
        assert_eq!(read_from(&log, &mut offset), b"two");
        assert_eq!(offset, 7);
    }
}
