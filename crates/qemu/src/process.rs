//! QEMU as a child process that cannot outlive vmlane.

use crate::qmp::{Qmp, SharePlug};
use crate::ram::HeldRam;
use crate::virtiofsd::Virtiofsd;
use rustix::process::{Pid, PidfdFlags, Signal};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use vmlane_backend::{BackendError, Machine, RunningVm};

/// Asks the kernel to SIGKILL the calling child when vmlane dies, even by SIGKILL.
pub fn die_with_parent() -> io::Result<()> {
    Ok(rustix::process::set_parent_process_death_signal(Some(
        Signal::KILL,
    ))?)
}

/// A running QEMU and the helpers serving it.
pub struct QemuVm {
    child: Child,
    pidfd: OwnedFd,
    stderr_log: PathBuf,
    virtiofsd: Vec<Virtiofsd>,
    exited: bool,
    /// The QMP socket, when the VM may be saved or have its shares plugged in.
    control: Option<PathBuf>,
    /// The share devices still to be plugged in.
    shares_to_plug: Vec<SharePlug>,
    /// The saved state to load, for a VM restored from one.
    restore_from: Option<PathBuf>,
    /// Whether the guest's RAM is in a file (held here or saved), not streamed when saved or
    /// restored.
    ram_in_file: bool,
    /// The guest's RAM, when vmlane holds it.
    ram: Option<HeldRam>,
}

impl QemuVm {
    /// Starts QEMU in its own process group, so a Ctrl-C at the terminal reaches vmlane, which
    /// then ends the VM in order.
    pub fn spawn(
        qemu: &Path,
        args: &[OsString],
        machine: &Machine,
        virtiofsd: Vec<Virtiofsd>,
        ram: Option<HeldRam>,
    ) -> Result<QemuVm, BackendError> {
        let stderr_log = machine.run_dir.join("qemu.log");
        let stderr = File::create(&stderr_log).map_err(|source| BackendError::Io {
            action: format!("create {}", stderr_log.display()),
            source,
        })?;
        let mut command = Command::new(qemu);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let inherited = ram.as_ref().map(HeldRam::fd);
        // SAFETY: the closure only calls prctl and fcntl in the forked child.
        unsafe {
            command.pre_exec(move || {
                die_with_parent()?;
                if let Some(fd) = inherited {
                    // QEMU maps the guest's RAM through /proc/self/fd/N: N must stay open.
                    let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                }
                Ok(())
            })
        };
        let child = command.spawn().map_err(|source| BackendError::Spawn {
            program: qemu.display().to_string(),
            source,
        })?;
        let pidfd = pidfd_open(&child).map_err(|source| BackendError::Io {
            action: "watch the QEMU process".into(),
            source,
        })?;
        Ok(QemuVm {
            child,
            pidfd,
            stderr_log,
            virtiofsd,
            exited: false,
            control: machine.control_socket.clone(),
            shares_to_plug: crate::argv::share_devices(machine)
                .iter()
                .filter(|device| device.share.plugged_later)
                .map(SharePlug::from)
                .collect(),
            restore_from: machine.restore_from.clone(),
            ram_in_file: machine.guest_ram.is_some(),
            ram,
        })
    }

    fn stop_helpers(&mut self) {
        for helper in &mut self.virtiofsd {
            let _ = helper.child.kill();
            let _ = helper.child.wait();
        }
    }

    fn read_logs(&self) -> String {
        let mut said = String::new();
        let _ = File::open(&self.stderr_log).and_then(|mut f| f.read_to_string(&mut said));
        for helper in &self.virtiofsd {
            let mut helper_said = String::new();
            let _ = File::open(&helper.log).and_then(|mut f| f.read_to_string(&mut helper_said));
            if !helper_said.trim().is_empty() {
                said.push_str("\nvirtiofsd: ");
                said.push_str(helper_said.trim());
            }
        }
        said
    }
}

impl QemuVm {
    fn qmp(&self) -> Result<Qmp, BackendError> {
        let Some(socket) = &self.control else {
            return Err(BackendError::Unsupported {
                backend: "qemu",
                what: "control a VM started without a QMP socket",
            });
        };
        Qmp::connect(socket).map_err(refused("connect to its QMP socket".into()))
    }
}

fn refused(action: String) -> impl FnOnce(io::Error) -> BackendError {
    move |source| BackendError::Refused {
        program: "QEMU".into(),
        action,
        message: source.to_string(),
    }
}

impl RunningVm for QemuVm {
    fn exit_fd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    fn try_wait(&mut self) -> io::Result<Option<String>> {
        match self.child.try_wait()? {
            Some(status) => {
                self.exited = true;
                self.stop_helpers();
                let said = self.read_logs();
                Ok(Some(if said.trim().is_empty() && !status.success() {
                    format!("QEMU exited with {status}")
                } else {
                    said
                }))
            }
            None => Ok(None),
        }
    }

    fn helper_fds(&self) -> Vec<RawFd> {
        self.virtiofsd.iter().map(|h| h.pidfd.as_raw_fd()).collect()
    }

    fn helper_exited(&mut self) -> Option<String> {
        let exited = self
            .virtiofsd
            .iter_mut()
            .position(|h| h.child.try_wait().ok().flatten().is_some())?;
        let helper = &self.virtiofsd[exited];
        let mut said = String::new();
        let _ = File::open(&helper.log).and_then(|mut f| f.read_to_string(&mut said));
        let last = said
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("nothing");
        Some(format!(
            "virtiofsd, which shares {} with the guest, stopped while the guest ran; its last words: {last} (--share 9p avoids it)",
            helper.share.display()
        ))
    }

    fn kill(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.exited = true;
        }
        self.stop_helpers();
    }

    fn save(&mut self, state: &Path, ram: &Path) -> Result<(), BackendError> {
        let refused = refused(format!("save the VM to {}", state.display()));
        let mut qmp = self.qmp()?;
        crate::snapshot::save(&mut qmp, state, self.ram.as_ref().map(HeldRam::file), ram)
            .map_err(refused)
    }

    fn resume(&mut self) -> Result<(), BackendError> {
        let Some(state) = self.restore_from.clone() else {
            return Ok(());
        };
        if let Some(ram) = self.ram.as_mut() {
            ram.filled()?;
        }
        let mut qmp = self.qmp()?;
        crate::snapshot::restore(&mut qmp, &state, self.ram_in_file)
            .map_err(refused(format!("restore the VM from {}", state.display())))?;
        drop(qmp);
        self.plug_share()
    }

    fn plug_share(&mut self) -> Result<(), BackendError> {
        let plugs = std::mem::take(&mut self.shares_to_plug);
        if plugs.is_empty() {
            return Ok(());
        }
        let mut qmp = self.qmp()?;
        for plug in &plugs {
            crate::qmp::plug_virtiofs(&mut qmp, plug)
                .map_err(refused(format!("plug in the virtio-fs share {}", plug.tag)))?;
        }
        Ok(())
    }
}

impl Drop for QemuVm {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn pidfd_open(child: &Child) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(
        Pid::from_child(child),
        PidfdFlags::empty(),
    )?)
}
