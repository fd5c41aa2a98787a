//! The `/etc/fstab` of a vmlane FreeBSD image.

/// The root disk: the image is a bare UFS2 file system (no partition table) on the first
/// virtio disk.
pub const ROOT_DEVICE: &str = "/dev/vtbd0";

/// vmlane's fstab, replacing any the source had (it names the source machine's disks).
///
/// Only UFS entries have a non-zero fsck pass: fsck runs `fsck_<type>` for every entry with
/// one, and there is no `fsck_devfs`, so a pseudo-filesystem with a pass aborts the boot.
/// procfs and fdescfs are `failok`: fdescfs is a module, which a custom kernel may not be able
/// to load, and a failed mount would otherwise drop the boot to single user.
pub fn fstab() -> String {
    let entries: [(&str, &str, &str, &str, u8); 5] = [
        (ROOT_DEVICE, "/", "ufs", "rw", 1),
        ("devfs", "/dev", "devfs", "rw", 0),
        ("tmpfs", "/tmp", "tmpfs", "rw,mode=1777", 0),
        ("proc", "/proc", "procfs", "rw,failok", 0),
        ("fdesc", "/dev/fd", "fdescfs", "rw,failok", 0),
    ];
    let mut text = String::from(
        "# Written by vmlane for a throwaway VM: the image is the first virtio disk.\n\
         # Device\tMountpoint\tFStype\tOptions\tDump\tPass#\n",
    );
    for (device, mountpoint, fstype, options, pass) in entries {
        let dump = u8::from(fstype == "ufs");
        text.push_str(&format!(
            "{device}\t{mountpoint}\t{fstype}\t{options}\t{dump}\t{pass}\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (fstype, pass) of each entry.
    fn passes(text: &str) -> Vec<(String, u32)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(fields.len(), 6, "{l}");
                (fields[2].to_string(), fields[5].parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn only_ufs_entries_have_an_fsck_pass() {
        let passes = passes(&fstab());
        assert_eq!(passes.len(), 5);
        for (fstype, pass) in &passes {
            assert_eq!(*pass != 0, fstype == "ufs", "{fstype} has pass {pass}");
        }
        assert_eq!(passes[0], ("ufs".to_string(), 1));
    }

    #[test]
    fn root_is_the_first_virtio_disk_and_pseudo_filesystems_are_all_there() {
        let text = fstab();
        assert!(text.contains("/dev/vtbd0\t/\tufs\trw\t1\t1\n"), "{text}");
        for (fstype, mountpoint) in [
            ("devfs", "/dev"),
            ("tmpfs", "/tmp"),
            ("procfs", "/proc"),
            ("fdescfs", "/dev/fd"),
        ] {
            assert!(
                text.lines().any(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    f.get(1) == Some(&mountpoint)
                        && f.get(2) == Some(&fstype)
                        && f[4..] == ["0", "0"]
                }),
                "{fstype} on {mountpoint} with 0 0: {text}"
            );
        }
    }
}
