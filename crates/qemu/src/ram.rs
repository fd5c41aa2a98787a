//! Guest RAM vmlane holds for QEMU: a memfd QEMU maps through `/proc/self/fd`, so a stopped
//! guest's RAM is copied out (a save) or filled from a saved file (a restore whose RAM
//! virtiofsd maps too) without streaming it through QEMU, and goes when the run's last
//! descriptor does.

use crate::argv::RamBacking;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use vmlane_backend::{BackendError, GuestRam, Machine, ShareTransport};

/// The memfd behind a guest's RAM.
pub struct HeldRam {
    file: File,
    /// The copy of a saved guest's RAM still under way while QEMU starts.
    filling: Option<Filling>,
}

/// A copy into the held RAM on a thread of its own, and what it copies from.
struct Filling {
    copy: std::thread::JoinHandle<std::io::Result<()>>,
    from: PathBuf,
}

impl HeldRam {
    /// Waits for the saved RAM to be in place: QEMU's device state refers to it (virtqueues
    /// live in guest RAM), so it must be complete before the state is loaded.
    pub fn filled(&mut self) -> Result<(), BackendError> {
        let Some(filling) = self.filling.take() else {
            return Ok(());
        };
        let copied = filling
            .copy
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the copy panicked")));
        copied.map_err(|source| BackendError::Io {
            action: format!("copy the saved guest's RAM from {}", filling.from.display()),
            source,
        })
    }

    /// The memory the guest's RAM is in, to copy out of it.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The descriptor QEMU inherits.
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    fn backing(&self) -> RamBacking {
        RamBacking {
            path: format!("/proc/self/fd/{}", self.fd()).into(),
            shared: true,
        }
    }
}

/// The RAM `machine` asks for: memory held here (empty, or a saved file's copy), or a saved
/// file QEMU maps itself; with what QEMU's command line says of it. virtiofsd maps guest RAM
/// too, and a private map would hide the guest's writes from it: such a guest gets a copy.
pub fn prepare(machine: &Machine) -> Result<(Option<HeldRam>, Option<RamBacking>), BackendError> {
    let virtiofs = machine
        .shares()
        .any(|share| share.transport == ShareTransport::VirtioFs);
    let held = match &machine.guest_ram {
        None => return Ok((None, None)),
        Some(GuestRam::SavedIn(saved)) if !virtiofs => {
            let backing = RamBacking {
                path: saved.clone(),
                shared: false,
            };
            return Ok((None, Some(backing)));
        }
        Some(GuestRam::Saveable) => hold(machine.memory_mib, None)?,
        Some(GuestRam::SavedIn(saved)) => hold(machine.memory_mib, Some(saved))?,
    };
    let backing = held.backing();
    Ok((Some(held), Some(backing)))
}

fn hold(memory_mib: u32, copy_of: Option<&Path>) -> Result<HeldRam, BackendError> {
    let io = |action: String| move |source| BackendError::Io { action, source };
    let fd = rustix::fs::memfd_create("vmlane-guest-ram", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| io("hold the guest's RAM in memory".into())(e.into()))?;
    let file = File::from(fd);
    let Some(saved) = copy_of else {
        file.set_len(u64::from(memory_mib) << 20)
            .map_err(io("size the guest's RAM".into()))?;
        return Ok(HeldRam {
            file,
            filling: None,
        });
    };
    // Sized as the saved file is, so QEMU refuses one of the wrong size as it starts; filled
    // while QEMU starts, on a core QEMU's start leaves free.
    let source = File::open(saved).map_err(io(format!(
        "open the saved guest's RAM {}",
        saved.display()
    )))?;
    let len = source
        .metadata()
        .map_err(io(format!("read the size of {}", saved.display())))?
        .len();
    file.set_len(len)
        .map_err(io("size the guest's RAM".into()))?;
    let target = file
        .try_clone()
        .map_err(io("hold the guest's RAM in memory".into()))?;
    let copy = std::thread::spawn(move || crate::snapshot::copy_sparse(&source, &target));
    let filling = Some(Filling {
        copy,
        from: saved.to_path_buf(),
    });
    Ok(HeldRam { file, filling })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    use vmlane_backend::{GuestOs, Share};

    fn machine(guest_ram: Option<GuestRam>) -> Machine {
        Machine {
            os: GuestOs::Linux,
            kernel: "/k".into(),
            initrd: None,
            cmdline: String::new(),
            cpus: 1,
            memory_mib: 64,
            console_socket: "/run/x/console.sock".into(),
            port_socket: None,
            share: None,
            rwdirs: Vec::new(),
            disks: Vec::new(),
            run_dir: "/run/x".into(),
            restore_from: None,
            control_socket: None,
            guest_ram,
        }
    }

    #[test]
    fn ram_to_save_is_memory_of_the_guests_size_shared_through_proc() {
        let (held, backing) = prepare(&machine(Some(GuestRam::Saveable))).unwrap();
        let held = held.unwrap();
        assert_eq!(held.file().metadata().unwrap().len(), 64 << 20);
        let backing = backing.unwrap();
        assert!(backing.shared);
        assert_eq!(
            backing.path,
            Path::new(&format!("/proc/self/fd/{}", held.fd()))
        );
        // QEMU opens that path: it is the same memory.
        held.file().write_all_at(b"guest", 4096).unwrap();
        let mut seen = [0u8; 5];
        let mut reopened = File::open(&backing.path).unwrap();
        std::io::Seek::seek(&mut reopened, std::io::SeekFrom::Start(4096)).unwrap();
        reopened.read_exact(&mut seen).unwrap();
        assert_eq!(&seen, b"guest");
    }

    /// `machine` sharing the host's files over `transport`.
    fn sharing(guest_ram: GuestRam, transport: ShareTransport) -> Machine {
        Machine {
            share: Some(Share {
                host_dir: "/".into(),
                tag: "vmlane-root".into(),
                transport,
                writable: false,
                plugged_later: true,
            }),
            ..machine(Some(guest_ram))
        }
    }

    #[test]
    fn a_restored_guest_maps_its_saved_ram_or_runs_on_a_copy_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("ram");
        let file = File::create(&saved).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(b"saved page", 8 << 20).unwrap();

        let ninep = sharing(GuestRam::SavedIn(saved.clone()), ShareTransport::NineP);
        let (held, backing) = prepare(&ninep).unwrap();
        assert!(held.is_none());
        let backing = backing.unwrap();
        assert_eq!(
            (backing.path.as_path(), backing.shared),
            (saved.as_path(), false)
        );

        // virtiofsd maps guest RAM too: a private map would hide the guest's writes from it.
        let virtiofs = sharing(GuestRam::SavedIn(saved.clone()), ShareTransport::VirtioFs);
        let (held, backing) = prepare(&virtiofs).unwrap();
        let mut held = held.unwrap();
        held.filled().unwrap();
        assert!(backing.unwrap().shared);
        let mut copied = [0u8; 10];
        held.file().read_exact_at(&mut copied, 8 << 20).unwrap();
        assert_eq!(&copied, b"saved page");
        assert_eq!(held.file().metadata().unwrap().len(), 64 << 20);
    }

    #[test]
    fn a_saved_ram_file_of_the_wrong_size_is_held_at_its_size_for_qemu_to_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("ram");
        File::create(&saved).unwrap().set_len(21 << 20).unwrap();
        let virtiofs = sharing(GuestRam::SavedIn(saved), ShareTransport::VirtioFs);
        let (held, _) = prepare(&virtiofs).unwrap();
        let mut held = held.unwrap();
        held.filled().unwrap();
        assert_eq!(held.file().metadata().unwrap().len(), 21 << 20);
    }

    #[test]
    fn a_missing_saved_ram_file_is_an_error_naming_it() {
        let missing = GuestRam::SavedIn("/nonexistent/ram".into());
        let Err(error) = prepare(&sharing(missing, ShareTransport::VirtioFs)) else {
            panic!("a missing file was copied");
        };
        assert!(error.to_string().contains("/nonexistent/ram"), "{error}");
    }
}
