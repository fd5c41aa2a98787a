//! Step 2, the host: what this machine has to run VMs with, probed once and then only read.
//! Planning decides from these facts; nothing later probes the host again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vmlane_backend::BackendError;
use vmlane_bhyve::BhyveBackend;
use vmlane_qemu::{find_qemu, find_qemu_for, find_virtiofsd, host_tsc_khz, qemu_version, HostKvm};
use vmlane_spec::Arch;

/// `ip` where distributions install it: the guest runs the host's programs.
const IP_PROGRAMS: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// What the host offers.
#[derive(Debug, Clone)]
pub struct Host {
    /// What `/dev/kvm` is, which decides the accelerator `auto` picks.
    pub kvm: HostKvm,
    /// QEMU, or what to install.
    pub qemu: Result<QemuBinary, Missing>,
    /// The QEMU of each other architecture vmlane boots guests of, or what it needs.
    pub foreign_qemu: BTreeMap<Arch, Result<QemuBinary, Missing>>,
    /// A virtiofsd to serve virtio-fs shares with.
    pub virtiofsd: Option<PathBuf>,
    /// bhyve (FreeBSD hosts), or what it needs.
    pub bhyve: Result<BhyveBackend, Missing>,
    /// Whether this is a FreeBSD host, where bhyve is the default VMM for FreeBSD guests.
    pub freebsd_host: bool,
    /// The host's TSC frequency in kHz, told to guests under TCG so they skip calibrating it.
    pub tsc_khz: Option<u64>,
    /// The `ip` program a guest brings its network up with.
    pub ip: Option<PathBuf>,
    /// The host's `TERM`, which guest shells get too.
    pub term: Option<OsString>,
    /// vmlane's cache: kernels, initramfs, images, boot stubs.
    pub cache_dir: PathBuf,
}

/// The QEMU binary and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuBinary {
    /// The program.
    pub path: PathBuf,
    /// The first line of its `--version`, when it answered.
    pub version: Option<String>,
}

/// A program the host lacks, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{program} is not installed: {hint}")]
pub struct Missing {
    /// The program (or file) missing.
    pub program: String,
    /// How to get it.
    pub hint: String,
}

/// The QEMU for guests of `arch` is not installed.
pub(crate) fn missing_qemu(arch: Arch) -> Missing {
    let (program, hint) = vmlane_qemu::qemu_program(arch);
    Missing {
        program: program.into(),
        hint: hint.into(),
    }
}

impl Host {
    /// This machine, probed the first time it is asked for and shared by every run of the
    /// process afterwards.
    pub fn shared() -> &'static Host {
        static HOST: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
        HOST.get_or_init(Host::probe)
    }

    /// Probes this machine.
    pub fn probe() -> Host {
        let cache_dir = vmlane_kernel::cache_dir();
        let qemu = find_qemu()
            .map(|path| QemuBinary {
                version: qemu_version(&path, &cache_dir),
                path,
            })
            .ok_or_else(|| Missing {
                program: vmlane_qemu::QEMU_PROGRAM.into(),
                hint: vmlane_qemu::QEMU_HINT.into(),
            });
        let foreign_qemu = Arch::ALL
            .into_iter()
            .filter(|&arch| arch != Arch::host())
            .map(|arch| {
                let found = find_qemu_for(arch).map(|path| QemuBinary {
                    version: qemu_version(&path, &cache_dir),
                    path,
                });
                (arch, found.ok_or_else(|| missing_qemu(arch)))
            })
            .collect();
        Host {
            kvm: HostKvm::probe(Path::new("/")),
            qemu,
            foreign_qemu,
            virtiofsd: find_virtiofsd(),
            bhyve: BhyveBackend::detect().map_err(missing),
            freebsd_host: cfg!(target_os = "freebsd"),
            tsc_khz: host_tsc_khz(&cache_dir),
            ip: IP_PROGRAMS.iter().map(PathBuf::from).find(|p| p.is_file()),
            term: std::env::var_os("TERM"),
            cache_dir,
        }
    }
}

fn missing(error: BackendError) -> Missing {
    match error {
        BackendError::MissingProgram { program, hint } => Missing { program, hint },
        other => Missing {
            program: "bhyve".into(),
            hint: other.to_string(),
        },
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A made-up host for planning tests.
    use super::*;

    /// A Linux host with QEMU 7.2 (Debian 12's), virtiofsd and `ip`, no bhyve, and this KVM.
    pub fn host(kvm: HostKvm) -> Host {
        Host {
            kvm,
            qemu: Ok(QemuBinary {
                path: "/usr/bin/qemu-system-x86_64".into(),
                version: Some("QEMU emulator version 7.2.19".into()),
            }),
            foreign_qemu: [
                (Arch::Aarch64, "qemu-system-aarch64"),
                (Arch::S390x, "qemu-system-s390x"),
                (Arch::Riscv64, "qemu-system-riscv64"),
                (Arch::Ppc64le, "qemu-system-ppc64"),
                (Arch::Ppc64, "qemu-system-ppc64"),
            ]
            .map(|(arch, program)| {
                let qemu = QemuBinary {
                    path: Path::new("/usr/bin").join(program),
                    version: Some("QEMU emulator version 7.2.19".into()),
                };
                (arch, Ok(qemu))
            })
            .into(),
            virtiofsd: Some("/usr/lib/qemu/virtiofsd".into()),
            bhyve: Err(Missing {
                program: "bhyve".into(),
                hint: vmlane_bhyve::HOST_HINT.into(),
            }),
            freebsd_host: false,
            tsc_khz: Some(2_445_404),
            ip: Some("/usr/sbin/ip".into()),
            term: Some("xterm".into()),
            cache_dir: "/cache".into(),
        }
    }

    /// A FreeBSD host with bhyve (and QEMU), without KVM.
    pub fn bhyve_host() -> Host {
        let mut host = host(HostKvm::Missing);
        host.bhyve = Ok(BhyveBackend {
            programs: vmlane_bhyve::Programs {
                bhyve: "/usr/sbin/bhyve".into(),
                bhyveload: "/usr/sbin/bhyveload".into(),
                bhyvectl: "/usr/sbin/bhyvectl".into(),
            },
            host_root: "/".into(),
            stop_grace: std::time::Duration::from_millis(500),
            load_timeout: std::time::Duration::from_secs(60),
            destroy_timeout: std::time::Duration::from_secs(10),
        });
        host.freebsd_host = true;
        host
    }
}
