//! The virtio-serial port to the host: framed messages both ways.

use crate::console::{Failure, StepContext};
use crate::sys;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};
use vmlane_proto::{encode, Decoder, GuestMessage, HostMessage, PORT_NAME};

/// How long the port may take to appear after virtio_console is loaded.
const APPEAR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the host to end the VM after the last message.
const HANG_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// The open port.
pub struct Port {
    file: File,
    decoder: Decoder,
}

impl Port {
    /// Waits for the host's port to show up in sysfs and opens its device node.
    pub fn open() -> Result<Port, Failure> {
        let started = Instant::now();
        loop {
            if let Some(device) = find_port()? {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&device)
                    .step(|| format!("open the host port {device}"))?;
                return Ok(Port {
                    file,
                    decoder: Decoder::new(),
                });
            }
            if started.elapsed() > APPEAR_TIMEOUT {
                return Err(Failure::new(
                    "find the host port",
                    format!("no virtio port named {PORT_NAME} appeared within {APPEAR_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends one message, blocking until the kernel has taken all of it.
    pub fn send(&mut self, message: &GuestMessage) -> Result<(), Failure> {
        self.file
            .write_all(&encode(message))
            .step(|| "write to the host port".into())
    }

    /// Records that a named point was reached.
    pub fn mark(&mut self, name: &str) -> Result<(), Failure> {
        self.send(&GuestMessage::Mark {
            name: name.into(),
            boot_ns: sys::boot_ns(),
        })
    }

    /// Blocks until the host's next message.
    pub fn receive(&mut self) -> Result<HostMessage, Failure> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(message) = self
                .decoder
                .next_message::<HostMessage>()
                .map_err(|e| Failure::new("read the run request", e))?
            {
                return Ok(message);
            }
            let n = self
                .file
                .read(&mut buf)
                .step(|| "read from the host port".into())?;
            if n == 0 {
                // No host on the other end yet; virtio ports read 0 until it connects.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// The descriptor to poll for the host's messages.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Messages that arrived with earlier reads and are already buffered.
    pub fn buffered(&mut self) -> Result<Vec<HostMessage>, Failure> {
        let mut messages = Vec::new();
        while let Some(message) = self
            .decoder
            .next_message::<HostMessage>()
            .map_err(|e| Failure::new("read the host's messages", e))?
        {
            messages.push(message);
        }
        Ok(messages)
    }

    /// One read of what the port has, as whole messages; `None` once the host has gone.
    /// Call only when the port polled readable, or it blocks.
    pub fn read_messages(&mut self) -> Result<Option<Vec<HostMessage>>, Failure> {
        let mut buf = [0u8; 64 * 1024];
        let n = match self.file.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(Failure::new("read from the host port", e)),
        };
        self.decoder.push(&buf[..n]);
        self.buffered().map(Some)
    }

    /// The host ends the VM once it has the last message; leaving earlier could drop output
    /// still queued in the port, so wait a bounded time for that.
    pub fn wait_for_host_to_hang_up(&mut self) {
        let deadline = Instant::now() + HANG_UP_TIMEOUT;
        let mut buf = [0u8; 64];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let mut fd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut fd, 1, left.as_millis().max(1) as libc::c_int) };
            if ready > 0 && !matches!(self.file.read(&mut buf), Ok(n) if n > 0) {
                return;
            }
        }
    }
}

fn find_port() -> Result<Option<String>, Failure> {
    let entries = match fs::read_dir("/sys/class/virtio-ports") {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::new("list /sys/class/virtio-ports", e)),
    };
    for entry in entries.flatten() {
        let name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim_end() == PORT_NAME {
            let device = format!("/dev/{}", entry.file_name().to_string_lossy());
            if fs::metadata(&device).is_ok() {
                return Ok(Some(device));
            }
        }
    }
    Ok(None)
}
