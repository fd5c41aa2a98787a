//! Choosing an accelerator that will actually boot the kernel.

use std::path::Path;
use vmlane_spec::Accel;

/// The accelerator a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// Hardware KVM.
    Kvm,
    /// KVM forced on a host whose /dev/kvm is kvm_pvm; needs a CPU model that QEMU can set up.
    KvmPvm,
    /// QEMU's TCG.
    Tcg,
}

/// What the host's /dev/kvm is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKvm {
    /// Hardware-backed KVM (kvm_intel or kvm_amd).
    Hardware,
    /// kvm_pvm: software nested virtualisation that crashes or crawls on stock kernels.
    Pvm,
    /// /dev/kvm exists but this user cannot open it.
    NoPermission,
    /// No /dev/kvm.
    Missing,
}

impl HostKvm {
    /// Looks at /dev/kvm and the loaded modules under `root` (`/` on a real host).
    pub fn probe(root: &Path) -> HostKvm {
        let dev = root.join("dev/kvm");
        if !dev.exists() {
            return HostKvm::Missing;
        }
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dev)
            .is_err()
        {
            return HostKvm::NoPermission;
        }
        if root.join("sys/module/kvm_pvm").exists() {
            return HostKvm::Pvm;
        }
        HostKvm::Hardware
    }
}

/// Resolves the user's request against the host. Returns the choice and, when `auto` had to fall
/// back to the slow path, the one-line notice to print.
pub fn resolve_accel(requested: Accel, host: &HostKvm) -> (AccelChoice, Option<String>) {
    match (requested, host) {
        (Accel::Tcg, _) => (AccelChoice::Tcg, None),
        (Accel::Kvm, HostKvm::Pvm) => (AccelChoice::KvmPvm, None),
        (Accel::Kvm, _) => (AccelChoice::Kvm, None),
        (Accel::Auto, HostKvm::Hardware) => (AccelChoice::Kvm, None),
        (Accel::Auto, HostKvm::Pvm) => (
            AccelChoice::Tcg,
            Some("/dev/kvm is kvm_pvm (software nested virtualisation), which cannot boot stock kernels; using TCG (--accel kvm forces KVM)".into()),
        ),
        (Accel::Auto, HostKvm::NoPermission) => (
            AccelChoice::Tcg,
            Some("cannot open /dev/kvm (add yourself to the kvm group); using TCG, which is much slower".into()),
        ),
        (Accel::Auto, HostKvm::Missing) => (
            AccelChoice::Tcg,
            Some("no /dev/kvm on this host; using TCG, which is much slower".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_host(kvm: bool, modules: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        if kvm {
            std::fs::write(root.path().join("dev/kvm"), b"").unwrap();
        }
        for module in modules {
            std::fs::create_dir_all(root.path().join("sys/module").join(module)).unwrap();
        }
        root
    }

    #[test]
    fn pvm_host_is_recognised_and_auto_falls_back_to_tcg_with_a_notice() {
        let root = fake_host(true, &["kvm", "kvm_pvm"]);
        let host = HostKvm::probe(root.path());
        assert_eq!(host, HostKvm::Pvm);
        let (choice, notice) = resolve_accel(Accel::Auto, &host);
        assert_eq!(choice, AccelChoice::Tcg);
        assert!(notice.unwrap().contains("kvm_pvm"));
    }

    #[test]
    fn hardware_kvm_is_used_silently() {
        let root = fake_host(true, &["kvm", "kvm_amd"]);
        let host = HostKvm::probe(root.path());
        assert_eq!(host, HostKvm::Hardware);
        assert_eq!(resolve_accel(Accel::Auto, &host), (AccelChoice::Kvm, None));
    }

    #[test]
    fn forcing_kvm_on_pvm_keeps_kvm() {
        assert_eq!(
            resolve_accel(Accel::Kvm, &HostKvm::Pvm).0,
            AccelChoice::KvmPvm
        );
    }

    #[test]
    fn missing_kvm_falls_back_with_a_notice() {
        let root = fake_host(false, &[]);
        let host = HostKvm::probe(root.path());
        assert_eq!(host, HostKvm::Missing);
        let (choice, notice) = resolve_accel(Accel::Auto, &host);
        assert_eq!(choice, AccelChoice::Tcg);
        assert!(notice.is_some());
        assert_eq!(resolve_accel(Accel::Tcg, &host), (AccelChoice::Tcg, None));
    }
}
