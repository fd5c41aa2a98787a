//! vmlane's bhyve backend: FreeBSD guests on FreeBSD hosts. bhyveload creates the VM and loads
//! the kernel, bhyve runs it with the console on its stdio, and bhyvectl destroys the VM's
//! kernel instance afterwards, whatever happened. The command lines are pure functions (tested
//! on any host); the rest keeps the three programs and the VM from outliving a run.
#![deny(missing_docs)]

mod argv;
mod bootdir;
mod ctl;
mod disk;
mod loader;
mod programs;
mod relay;
mod status;
mod sys;
mod vm;

pub use argv::{
    bhyve_args, bhyveload_args, destroy_args, loader_env, machine_env, next_vm_name, vm_name,
    ArgvError, NinePShare, VmSpec, BOOT_FLAGS, LOADER_DEFAULTS,
};
pub use programs::{check_host, Programs, HOST_HINT};
pub use status::BhyveExit;

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmlane_backend::{Backend, BackendError, GuestOs, Machine, RunningVm, ShareTransport};

/// Starts FreeBSD guests with bhyveload and bhyve.
#[derive(Debug, Clone)]
pub struct BhyveBackend {
    /// The three programs.
    pub programs: Programs,
    /// The host's root, where `/boot` (the loader's files) and `/dev/vmm` are looked for.
    pub host_root: PathBuf,
    /// How long bhyve gets after SIGTERM, which asks the guest to power off by ACPI, before
    /// SIGKILL.
    pub stop_grace: Duration,
    /// How long bhyveload may take; a loader that fails to boot waits at its prompt forever.
    pub load_timeout: Duration,
    /// How long `bhyvectl --destroy` may take.
    pub destroy_timeout: Duration,
}

impl BhyveBackend {
    /// Finds the programs on `PATH` (or in `/usr/sbin`) and checks that this host can run VMs.
    pub fn detect() -> Result<BhyveBackend, BackendError> {
        BhyveBackend::detect_in(std::env::var_os("PATH").as_deref(), Path::new("/"))
    }

    /// [`BhyveBackend::detect`] with the `PATH` value and the host root given.
    pub fn detect_in(path: Option<&OsStr>, host_root: &Path) -> Result<BhyveBackend, BackendError> {
        let programs = Programs::find(path, host_root)?;
        check_host(host_root)?;
        let mut backend = BhyveBackend::with_programs(programs);
        backend.host_root = host_root.to_path_buf();
        Ok(backend)
    }

    /// Uses these programs as they are, on the real root, without checking the host.
    pub fn with_programs(programs: Programs) -> BhyveBackend {
        BhyveBackend {
            programs,
            host_root: PathBuf::from("/"),
            stop_grace: Duration::from_millis(500),
            load_timeout: Duration::from_secs(60),
            destroy_timeout: Duration::from_secs(10),
        }
    }

    fn destroyer(&self, name: &str) -> ctl::Destroy {
        ctl::Destroy {
            bhyvectl: self.programs.bhyvectl.clone(),
            name: name.to_string(),
            timeout: self.destroy_timeout,
        }
    }
}

impl Backend for BhyveBackend {
    fn name(&self) -> &str {
        "bhyve"
    }

    fn start(&self, machine: &Machine) -> Result<Box<dyn RunningVm>, BackendError> {
        let spec = prepare(machine, self)?;
        let bhyve_args = bhyve_args(&spec).map_err(invalid)?;
        let console =
            UnixStream::connect(&machine.console_socket).map_err(|source| BackendError::Io {
                action: format!(
                    "connect to the console socket {}",
                    machine.console_socket.display()
                ),
                source,
            })?;
        // Only after a crash and a reused process id: bhyveload would reuse the old instance.
        if self.host_root.join("dev/vmm").join(&spec.name).exists() {
            self.destroyer(&spec.name).run();
        }
        let loaded = loader::run(
            &self.programs.bhyveload,
            &bhyveload_args(&spec),
            &machine.run_dir.join("bhyveload.log"),
            self.load_timeout,
        )?;
        let loader_console = match loaded {
            loader::Loaded::Ready(console) => console,
            loader::Loaded::Failed(error) => {
                self.destroyer(&spec.name).run();
                return Err(error);
            }
        };
        let launch = vm::Launch {
            bhyve: &self.programs.bhyve,
            args: &bhyve_args,
            stderr_log: machine.run_dir.join("bhyve.log"),
            console,
            loader_console,
            stop_grace: self.stop_grace,
            destroy: self.destroyer(&spec.name),
        };
        match vm::BhyveVm::spawn(launch) {
            Ok(vm) => Ok(Box::new(vm)),
            Err(error) => {
                self.destroyer(&spec.name).run();
                Err(error)
            }
        }
    }
}

/// Checks the machine fits this backend and stages its files in the run directory: the boot
/// directory and a private copy of each disk.
fn prepare(machine: &Machine, backend: &BhyveBackend) -> Result<VmSpec, BackendError> {
    let unsupported = |what: &str| BackendError::Io {
        action: "boot this machine with bhyve".into(),
        source: io::Error::new(io::ErrorKind::Unsupported, what.to_string()),
    };
    if machine.os != GuestOs::FreeBsd {
        return Err(unsupported("bhyveload boots FreeBSD guests only"));
    }
    if machine.initrd.is_some() {
        return Err(unsupported("FreeBSD guests take no initramfs"));
    }
    if machine.port_socket.is_some() {
        return Err(unsupported(
            "the bhyve backend has no vmlane port; FreeBSD guests report on the console",
        ));
    }
    let share = match &machine.share {
        None => None,
        Some(share) if share.transport == ShareTransport::NineP => Some(NinePShare {
            tag: share.tag.clone(),
            dir: share.host_dir.clone(),
        }),
        Some(_) => return Err(unsupported("bhyve serves shares over virtio-9p only")),
    };
    let env = machine_env(&machine.cmdline).map_err(invalid)?;
    let boot_dir = machine.run_dir.join("bhyve-boot");
    bootdir::prepare(&backend.host_root, &machine.kernel, &boot_dir)?;
    let mut disks = Vec::with_capacity(machine.disks.len());
    for (i, image) in machine.disks.iter().enumerate() {
        // bhyve has no snapshots: a disk whose writes are not kept is a copy in the run dir.
        if image.keep_writes {
            disks.push(image.path.clone());
            continue;
        }
        let copy = machine.run_dir.join(format!("disk{i}.img"));
        disk::sparse_copy(&image.path, &copy).map_err(|source| BackendError::Io {
            action: format!("copy the disk image {}", image.path.display()),
            source,
        })?;
        disks.push(copy);
    }
    Ok(VmSpec {
        name: next_vm_name(),
        cpus: machine.cpus,
        memory_mib: machine.memory_mib,
        boot_dir,
        env,
        disks,
        share,
    })
}

fn invalid(error: ArgvError) -> BackendError {
    BackendError::Io {
        action: "build bhyve's command line".into(),
        source: io::Error::new(io::ErrorKind::InvalidInput, error),
    }
}
