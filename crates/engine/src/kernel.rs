//! Step 3, the kernel: find it, and read once everything planning needs to know about it
//! (its OS, modules, config, symbols), so the plan itself can be pure.

use crate::request::Request;
use std::path::PathBuf;
use vmlane_freebsd_boot::BootError;
use vmlane_kernel::{
    debug_info_file, find_kernel, freebsd_traits, symbols_file, FreeBsdTraits, ImageFormat, Kernel,
    KernelConfig, Search, Tristate,
};
use vmlane_payload::modules::{ModuleIndex, ModuleStatus};
use vmlane_payload::PayloadError;

/// The kernel to boot and what it has.
#[derive(Debug)]
pub struct GuestKernel {
    /// Where it is and how it was found.
    pub kernel: Kernel,
    /// What it was built with, by OS.
    pub traits: KernelTraits,
    /// The file with its symbols and DWARF, when there is one: backtraces in its splats get
    /// source lines from it.
    pub debug_info: Option<PathBuf>,
}

/// What a kernel was built with; the variant is the guest OS.
#[derive(Debug)]
pub enum KernelTraits {
    /// A Linux kernel.
    Linux(LinuxKernel),
    /// A FreeBSD kernel.
    FreeBsd(FreeBsdKernel),
}

/// What a Linux kernel has.
#[derive(Debug, Default)]
pub struct LinuxKernel {
    /// Its modules, when it has a modules directory.
    pub modules: Option<ModuleIndex>,
    /// Its `.config`, when known.
    pub config: Option<KernelConfig>,
    /// A vmlinux with its symbols, looked for only when a debugger will attach.
    pub symbols: Option<PathBuf>,
}

impl LinuxKernel {
    /// Whether the kernel can use `module`: built in or loadable. Without a modules directory
    /// only built-in support counts; without a config nothing is known, and only 9p (the usual
    /// built-in choice of small kernels, and virtio-net) is assumed.
    pub fn has(&self, module: &str) -> bool {
        if let Some(index) = &self.modules {
            return index.status(module) != ModuleStatus::Absent;
        }
        let option = match module {
            "9p" => "9P_FS",
            "9pnet_virtio" => "NET_9P_VIRTIO",
            "virtiofs" => "VIRTIO_FS",
            "virtio_net" => "VIRTIO_NET",
            _ => return false,
        };
        match &self.config {
            Some(config) => config.option(option) == Tristate::Yes,
            None => module != "virtiofs",
        }
    }

    /// Whether `CONFIG_<option>` is built in (`=y`).
    pub fn built_in(&self, option: &str) -> bool {
        self.config
            .as_ref()
            .is_some_and(|config| config.option(option) == Tristate::Yes)
    }
}

/// What a FreeBSD kernel has.
#[derive(Debug)]
pub struct FreeBsdKernel {
    /// Its devices, entry points and symbols.
    pub traits: FreeBsdTraits,
    /// Memory vmlane's boot stub needs to lay it out, or why the stub cannot enter it.
    pub native_entry: Result<u64, BootError>,
}

/// Why no kernel can be booted.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// None was found, or the one named is not a kernel.
    #[error(transparent)]
    Find(#[from] vmlane_kernel::KernelError),
    /// Its modules directory cannot be read.
    #[error("cannot read the modules of the kernel {kernel}")]
    Modules {
        /// The kernel image.
        kernel: PathBuf,
        /// Why.
        #[source]
        source: PayloadError,
    },
    /// The kernel could not be read for its traits.
    #[error("cannot read the kernel {kernel}")]
    Unreadable {
        /// The kernel image.
        kernel: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Finds the request's kernel and reads what it has.
pub fn find(request: &Request) -> Result<GuestKernel, KernelError> {
    let search = Search {
        arch: request.arch(),
        ..Search::new(
            request.kernel.clone(),
            request.modules_dir.clone(),
            request.cwd.clone(),
        )
    };
    let kernel = find_kernel(&search)?;
    let traits = match kernel.format {
        ImageFormat::FreeBsd => KernelTraits::FreeBsd(freebsd(&kernel)?),
        ImageFormat::BzImage
        | ImageFormat::Elf { .. }
        | ImageFormat::PowerElf { .. }
        | ImageFormat::Arm64Image
        | ImageFormat::RiscvImage
        | ImageFormat::S390Image => KernelTraits::Linux(linux(&kernel, request.gdb.is_some())?),
    };
    let debug_info = debug_info_file(&kernel);
    Ok(GuestKernel {
        kernel,
        traits,
        debug_info,
    })
}

fn linux(kernel: &Kernel, debugged: bool) -> Result<LinuxKernel, KernelError> {
    let modules = kernel
        .modules
        .as_deref()
        .map(ModuleIndex::open)
        .transpose()
        .map_err(|source| KernelError::Modules {
            kernel: kernel.image.clone(),
            source,
        })?;
    Ok(LinuxKernel {
        modules,
        // An unreadable config is an unknown one, as a missing one is.
        config: kernel
            .config
            .as_deref()
            .and_then(|path| KernelConfig::read(path).ok()),
        symbols: debugged.then(|| symbols_file(kernel)).flatten(),
    })
}

fn freebsd(kernel: &Kernel) -> Result<FreeBsdKernel, KernelError> {
    let traits = freebsd_traits(&kernel.image).map_err(|source| KernelError::Unreadable {
        kernel: kernel.image.clone(),
        source,
    })?;
    Ok(FreeBsdKernel {
        traits,
        native_entry: vmlane_freebsd_boot::memory_needed(&kernel.image, &[]),
    })
}

#[cfg(test)]
pub(crate) mod fake {
    //! Made-up kernels for planning tests: nothing is read from disk.
    use super::*;
    use vmlane_kernel::Origin;

    /// A Linux kernel with this config and, when given, these modules (`(name, built in)`).
    pub fn linux(config: &str, modules: Option<&[(&str, bool)]>) -> GuestKernel {
        let index = modules.map(|list| {
            let builtin: Vec<&str> = list.iter().filter(|m| m.1).map(|m| m.0).collect();
            let files: Vec<(&str, &std::path::Path)> = list
                .iter()
                .filter(|m| !m.1)
                .map(|m| (m.0, std::path::Path::new("/lib/modules/x.ko")))
                .collect();
            ModuleIndex::from_parts("/lib/modules/6.1.0".as_ref(), &builtin, &files)
        });
        GuestKernel {
            kernel: Kernel {
                image: "/k/vmlinuz".into(),
                format: ImageFormat::BzImage,
                release: Some("6.1.0".into()),
                modules: index.as_ref().map(|i| i.dir().to_path_buf()),
                config: None,
                origin: Origin::Cache,
            },
            traits: KernelTraits::Linux(LinuxKernel {
                modules: index,
                config: Some(KernelConfig::parse(config)),
                symbols: None,
            }),
            debug_info: None,
        }
    }

    /// What a FIRECRACKER-style kernel has: devices from its command line, an MP table.
    pub const FIRECRACKER: FreeBsdTraits = FreeBsdTraits {
        virtio_mmio_cmdline: true,
        mptable: true,
        pvh: true,
        p9fs: false,
        vtnet: true,
        symbols: true,
    };

    /// What a GENERIC-style kernel has: it needs ACPI and PCI.
    pub const GENERIC: FreeBsdTraits = FreeBsdTraits {
        virtio_mmio_cmdline: false,
        ..FIRECRACKER
    };

    /// A FreeBSD kernel with these traits whose stub entry needs `memory_needed` bytes.
    pub fn freebsd(traits: FreeBsdTraits, memory_needed: u64) -> GuestKernel {
        GuestKernel {
            kernel: Kernel {
                image: "/k/kernel".into(),
                format: ImageFormat::FreeBsd,
                release: Some("15.1-RELEASE".into()),
                modules: None,
                config: None,
                origin: Origin::Explicit,
            },
            traits: KernelTraits::FreeBsd(FreeBsdKernel {
                traits,
                native_entry: Ok(memory_needed),
            }),
            debug_info: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_support_comes_from_the_index_or_else_from_built_in_options() {
        let indexed = fake::linux("", Some(&[("9p", false), ("virtio_net", true)]));
        let KernelTraits::Linux(linux) = &indexed.traits else {
            unreachable!()
        };
        assert!(linux.has("9p") && linux.has("virtio_net"));
        assert!(!linux.has("virtiofs"));

        let configured = fake::linux(
            "CONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\nCONFIG_VIRTIO_FS=m\n",
            None,
        );
        let KernelTraits::Linux(linux) = &configured.traits else {
            unreachable!()
        };
        assert!(linux.has("9p") && linux.has("9pnet_virtio"));
        assert!(
            !linux.has("virtiofs"),
            "a module without a modules directory"
        );
        assert!(!linux.has("zfs"));

        let unknown = LinuxKernel::default();
        assert!(unknown.has("9p") && !unknown.has("virtiofs"));
    }
}
