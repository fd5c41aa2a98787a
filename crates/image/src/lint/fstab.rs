//! Check 3: `/etc/fstab` as the boot uses it. `fsck -p` runs `fsck_TYPE` for every entry
//! with a pass number and drops the boot to single user when there is none (devfs with
//! pass 2 is the classic); `mount -a` needs each mount point; the loader takes the root
//! file system from the `/` entry.

use super::finding::Findings;
use super::image::Image;
use super::settings::MAX_CONFIG;

const FSTAB: &str = "etc/fstab";

/// File systems without an fsck, whose pass number must be 0.
const NO_FSCK: &[&str] = &[
    "devfs",
    "tmpfs",
    "procfs",
    "nullfs",
    "fdescfs",
    "linprocfs",
    "linsysfs",
    "mqueuefs",
    "fusefs",
    "unionfs",
    "zfs",
    "nfs",
    "smbfs",
    "cd9660",
];

/// Entries read, at most: fstabs are short, and each entry is checked against the others.
const MAX_ENTRIES: usize = 1024;

/// Where fsck looks for `fsck_TYPE`.
const FSCK_DIRS: &[&str] = &["/sbin", "/usr/sbin"];

/// One fstab line's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    device: String,
    mount_point: String,
    fstype: String,
    options: Vec<String>,
    pass: Option<u32>,
}

/// Runs check 3 over `image` (an image without an fstab is check 4's to report).
pub(crate) fn check(image: &Image, findings: &mut Findings) {
    let Some(bytes) = image.read(FSTAB.as_bytes(), MAX_CONFIG) else {
        return;
    };
    let entries = parse(&String::from_utf8_lossy(&bytes));
    if !entries.iter().any(|e| e.mount_point == "/") {
        findings.add(
            FSTAB,
            "no entry for /, where the loader finds the root file system",
        );
    }
    for entry in &entries {
        check_pass(image, entry, findings);
        check_mount_point(image, entry, &entries, findings);
    }
    check_fsck(image, &entries, findings);
}

/// rc.d/fsck runs `fsck -p` when any entry has a pass number.
fn check_fsck(image: &Image, entries: &[Entry], findings: &mut Findings) {
    let checked = entries.iter().find(|e| {
        e.pass.is_some_and(|p| p > 0) && e.fstype != "swap" && !NO_FSCK.contains(&e.fstype.as_str())
    });
    if let Some(entry) = checked {
        if !image.has_file(b"/sbin/fsck") {
            findings.add(
                FSTAB,
                format!(
                    "{} has an fsck pass, but the image lacks /sbin/fsck, which rc.d/fsck runs",
                    entry.mount_point
                ),
            );
        }
    }
}

fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(MAX_ENTRIES)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| fields.get(i).map(|f| f.to_string());
            Some(Entry {
                device: field(0)?,
                mount_point: field(1)?,
                fstype: field(2)?,
                options: field(3)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
                // Missing means 0; a field that is no number is fsck's to complain about.
                pass: match fields.get(5) {
                    Some(pass) => pass.parse().ok(),
                    None => Some(0),
                },
            })
        })
        .collect()
}

fn check_pass(image: &Image, entry: &Entry, findings: &mut Findings) {
    let Some(pass) = entry.pass.filter(|&p| p > 0) else {
        return;
    };
    if entry.fstype == "swap" || entry.options.iter().any(|o| o == "sw") {
        return;
    }
    let Entry {
        mount_point,
        fstype,
        ..
    } = entry;
    if NO_FSCK.contains(&fstype.as_str()) {
        findings.add(
            FSTAB,
            format!("{fstype} on {mount_point} has fsck pass {pass}; {fstype} has no fsck, so it must be 0"),
        );
        return;
    }
    let programs = fsck_programs(fstype);
    let present = programs.iter().any(|program| {
        FSCK_DIRS
            .iter()
            .any(|dir| image.has_file(format!("{dir}/{program}").as_bytes()))
    });
    if !present {
        let wanted: Vec<String> = programs.iter().map(|p| format!("/sbin/{p}")).collect();
        findings.add(
            FSTAB,
            format!(
                "{fstype} on {mount_point} has fsck pass {pass}, but the image lacks {}",
                wanted.join(" and ")
            ),
        );
    }
}

/// The programs fsck can check `fstype` with.
fn fsck_programs(fstype: &str) -> Vec<String> {
    match fstype {
        "ufs" | "ffs" => vec!["fsck_ufs".into(), "fsck_ffs".into()],
        "msdos" | "msdosfs" => vec!["fsck_msdosfs".into()],
        other => vec![format!("fsck_{other}")],
    }
}

/// Mount points `mount -a` needs: not for swap, `noauto` or `failok` (whose failure the
/// boot shrugs off), and not under another entry's mount point or /dev, which only exist
/// once that is mounted.
fn check_mount_point(image: &Image, entry: &Entry, entries: &[Entry], findings: &mut Findings) {
    let point = entry.mount_point.trim_end_matches('/');
    let skipped = point.is_empty()
        || !point.starts_with('/')
        || entry.fstype == "swap"
        || entry
            .options
            .iter()
            .any(|o| matches!(o.as_str(), "noauto" | "sw" | "failok"));
    if skipped {
        return;
    }
    let under = |parent: &str| {
        let parent = parent.trim_end_matches('/');
        !parent.is_empty() && point != parent && point.starts_with(&format!("{parent}/"))
    };
    if under("/dev") || entries.iter().any(|e| under(&e.mount_point)) {
        return;
    }
    if !image.has_dir(point.as_bytes()) {
        findings.add(
            FSTAB,
            format!(
                "mount point {point} (for {}) is not a directory in the image",
                entry.device
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_comments_and_missing_passes() {
        let entries =
            parse("# c\n/dev/vtbd0 / ufs rw 1 1\n\nproc /proc procfs rw\nx /y z rw 0 no\n");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].pass, Some(1));
        assert_eq!(entries[1].pass, Some(0));
        assert_eq!(entries[2].pass, None);
        assert_eq!(entries[0].options, ["rw"]);
    }
}
