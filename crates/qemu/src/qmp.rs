//! QEMU's machine protocol (QMP), as much of it as saving a running guest takes: a JSON
//! object per line each way, commands answered in order, events interleaved.

use crate::argv::ShareDevice;
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long QEMU may take to create its QMP socket after it started.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to QEMU's QMP socket, past the greeting and capability negotiation.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, waiting for QEMU to create the socket.
    pub fn connect(path: &Path) -> io::Result<Qmp> {
        let started = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if started.elapsed() > CONNECT_TIMEOUT => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        qmp.read_object()?;
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs a command and returns its `return` value, or QEMU's error text.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> io::Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        writeln!(self.writer, "{request}")?;
        loop {
            let mut answer = self.read_object()?;
            if let Some(value) = answer.get_mut("return") {
                return Ok(value.take());
            }
            if let Some(error) = answer.get("error") {
                let desc = error["desc"].as_str().unwrap_or("no description");
                return Err(io::Error::other(format!("{command}: {desc}")));
            }
            // An event, not the answer.
        }
    }

    fn read_object(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "QEMU closed its QMP socket",
            ));
        }
        serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Migrates the running VM into `to` and lets it run on. The guest keeps running while its
/// memory is copied, and QEMU stops it only for the last pages, so the saved guest is the
/// one that was waiting at that moment.
pub fn save(qmp: &mut Qmp, to: &Path) -> io::Result<()> {
    let status = migrate(qmp, to);
    // The VM stops when the migration ends, successful or not; the run goes on.
    qmp.execute("cont", None)?;
    status
}

/// Leaves RAM in a shared memory file out of a migration: the file is the RAM.
pub fn ignore_shared_memory(qmp: &mut Qmp) -> io::Result<()> {
    let capability = json!({ "capability": "x-ignore-shared", "state": true });
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({ "capabilities": [capability] })),
    )
    .map(drop)
}

/// How long a saved state may take to load. It takes tens of milliseconds; one that never
/// loads fails the restore, and the run boots instead of hanging.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until an incoming migration has been loaded; the VM's state then.
pub fn wait_until_loaded(qmp: &mut Qmp) -> io::Result<String> {
    wait_until_loaded_within(qmp, LOAD_TIMEOUT)
}

fn wait_until_loaded_within(qmp: &mut Qmp, limit: Duration) -> io::Result<String> {
    let started = Instant::now();
    loop {
        let status = qmp.execute("query-status", None)?;
        match status["status"].as_str() {
            Some("inmigrate") if started.elapsed() >= limit => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the saved state was still loading after {} s",
                        limit.as_secs_f64()
                    ),
                ))
            }
            Some("inmigrate") => std::thread::sleep(Duration::from_millis(1)),
            Some(other) => return Ok(other.to_string()),
            None => return Err(io::Error::other("query-status gave no status")),
        }
    }
}

/// Migrates the VM into the file `to` and waits for the end.
pub fn migrate(qmp: &mut Qmp, to: &Path) -> io::Result<()> {
    let uri = format!("exec:cat > {}", shell_quote(to));
    qmp.execute("migrate", Some(json!({ "uri": uri })))?;
    loop {
        let info = qmp.execute("query-migrate", None)?;
        match info["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed") | Some("cancelled") => {
                let why = info["error-desc"].as_str().unwrap_or("no reason given");
                return Err(io::Error::other(format!("the migration failed: {why}")));
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// A virtio-fs device to plug into a running VM: virtiofsd's socket, the tag, and the names
/// of its chardev, device and free PCIe slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePlug {
    /// virtiofsd's socket.
    pub socket: PathBuf,
    /// The tag the guest mounts it by.
    pub tag: String,
    /// The chardev's id.
    pub chardev: String,
    /// The device's id.
    pub device: String,
    /// The PCIe root port it goes into.
    pub bus: String,
}

impl From<&ShareDevice<'_>> for SharePlug {
    fn from(device: &ShareDevice<'_>) -> SharePlug {
        SharePlug {
            socket: device.socket.clone(),
            tag: device.share.tag.clone(),
            chardev: device.id.clone(),
            device: device.device.clone(),
            bus: device.port.clone(),
        }
    }
}

/// Plugs a vhost-user virtio-fs device for virtiofsd's socket into its free PCIe slot; a
/// restored VM must have loaded its state first, which would otherwise overwrite the slot's
/// hotplug event.
pub fn plug_virtiofs(qmp: &mut Qmp, plug: &SharePlug) -> io::Result<()> {
    let backend = json!({
        "type": "socket",
        "data": {
            "addr": { "type": "unix", "data": { "path": plug.socket.to_string_lossy() } },
            "server": false
        }
    });
    qmp.execute(
        "chardev-add",
        Some(json!({ "id": plug.chardev, "backend": backend })),
    )?;
    qmp.execute(
        "device_add",
        Some(json!({
            "driver": "vhost-user-fs-pci",
            "id": plug.device,
            "chardev": plug.chardev,
            "tag": plug.tag,
            "bus": plug.bus,
        })),
    )?;
    Ok(())
}

/// `path` as one word for the shell QEMU runs `exec:` commands with.
pub fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/a b/it's")), "'/a b/it'\\''s'");
    }

    /// A QMP server that answers as QEMU does, events included.
    fn fake_qemu(dir: &Path, answers: Vec<&'static str>) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(dir.join("qmp.sock")).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            writeln!(
                writer,
                r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#
            )
            .unwrap();
            let mut asked = Vec::new();
            for answer in answers {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                asked.push(line.trim().to_string());
                writeln!(writer, r#"{{"event": "STOP", "timestamp": {{}}}}"#).unwrap();
                writeln!(writer, "{answer}").unwrap();
            }
            asked
        })
    }

    #[test]
    fn a_save_migrates_waits_for_completion_and_continues_the_vm() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_qemu(
            dir.path(),
            vec![
                r#"{"return": {}}"#,
                r#"{"return": {}}"#,
                r#"{"return": {"status": "active"}}"#,
                r#"{"return": {"status": "completed"}}"#,
                r#"{"return": {}}"#,
            ],
        );
        let mut qmp = Qmp::connect(&dir.path().join("qmp.sock")).unwrap();
        save(&mut qmp, Path::new("/cache/s/state")).unwrap();
        let asked = server.join().unwrap();
        assert!(asked[0].contains("qmp_capabilities"));
        assert!(
            asked[1].contains(r#""uri":"exec:cat > '/cache/s/state'""#),
            "{}",
            asked[1]
        );
        assert!(asked[2].contains("query-migrate"));
        assert!(asked[4].contains(r#""execute":"cont""#));
    }

    #[test]
    fn a_restore_waits_for_the_state_and_runs_a_guest_saved_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_qemu(
            dir.path(),
            vec![
                r#"{"return": {}}"#,
                r#"{"return": {}}"#,
                r#"{"return": {}}"#,
                r#"{"return": {"status": "inmigrate", "running": false}}"#,
                r#"{"return": {"status": "paused", "running": false}}"#,
                r#"{"return": {}}"#,
            ],
        );
        let mut qmp = Qmp::connect(&dir.path().join("qmp.sock")).unwrap();
        crate::snapshot::restore(&mut qmp, Path::new("/s/state"), true).unwrap();
        let asked = server.join().unwrap();
        assert!(asked[1].contains("x-ignore-shared"), "{}", asked[1]);
        assert!(
            asked[2].contains(r#""uri":"exec:cat '/s/state'""#),
            "{}",
            asked[2]
        );
        assert!(asked[5].contains(r#""execute":"cont""#), "{}", asked[5]);
    }

    #[test]
    fn a_state_that_never_loads_fails_the_restore_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let loading = r#"{"return": {"status": "inmigrate", "running": false}}"#;
        let server = fake_qemu(
            dir.path(),
            [r#"{"return": {}}"#; 1]
                .into_iter()
                .chain([loading; 400])
                .collect(),
        );
        let mut qmp = Qmp::connect(&dir.path().join("qmp.sock")).unwrap();
        let error = wait_until_loaded_within(&mut qmp, Duration::from_millis(50)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("still loading"), "{error}");
        drop(qmp);
        let _ = server.join();
    }

    #[test]
    fn a_share_is_plugged_in_once_the_vm_has_loaded_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_qemu(
            dir.path(),
            vec![
                r#"{"return": {}}"#,
                r#"{"return": {}}"#,
                r#"{"return": {}}"#,
            ],
        );
        let mut qmp = Qmp::connect(&dir.path().join("qmp.sock")).unwrap();
        let plug = SharePlug {
            socket: "/run/x/virtiofs-rwdir0.sock".into(),
            tag: "vmlane-rw0".into(),
            chardev: "rwdir0".into(),
            device: "vmlane-rwdir0".into(),
            bus: "vmlane-rwdir0-port".into(),
        };
        plug_virtiofs(&mut qmp, &plug).unwrap();
        let asked = server.join().unwrap();
        assert!(asked[1].contains("chardev-add"), "{}", asked[1]);
        assert!(asked[1].contains(r#""id":"rwdir0""#), "{}", asked[1]);
        assert!(
            asked[1].contains("/run/x/virtiofs-rwdir0.sock"),
            "{}",
            asked[1]
        );
        for part in [
            r#""driver":"vhost-user-fs-pci""#,
            r#""bus":"vmlane-rwdir0-port""#,
            r#""chardev":"rwdir0""#,
            r#""id":"vmlane-rwdir0""#,
            r#""tag":"vmlane-rw0""#,
        ] {
            assert!(asked[2].contains(part), "{part}: {}", asked[2]);
        }
    }

    #[test]
    fn a_failed_migration_is_an_error_and_the_vm_still_continues() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_qemu(
            dir.path(),
            vec![
                r#"{"return": {}}"#,
                r#"{"return": {}}"#,
                r#"{"return": {"status": "failed", "error-desc": "disk full"}}"#,
                r#"{"return": {}}"#,
            ],
        );
        let mut qmp = Qmp::connect(&dir.path().join("qmp.sock")).unwrap();
        let error = save(&mut qmp, Path::new("/x")).unwrap_err().to_string();
        assert!(error.contains("disk full"), "{error}");
        assert!(server.join().unwrap()[3].contains("cont"));
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let refused = fake_qemu(
            &dir.path().join("b"),
            vec![
                r#"{"return": {}}"#,
                r#"{"error": {"class": "GenericError", "desc": "Migration is disabled when VirtFS export path '/' is mounted"}}"#,
            ],
        );
        let mut qmp = Qmp::connect(&dir.path().join("b/qmp.sock")).unwrap();
        let error = qmp.execute("migrate", None).unwrap_err().to_string();
        assert!(error.contains("VirtFS export path"), "{error}");
        refused.join().unwrap();
    }
}
