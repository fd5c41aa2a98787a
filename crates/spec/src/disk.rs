//! The disks a run attaches, and the `--disk` syntax every front end shares: `SIZE`, `FILE`,
//! `FILE,ro`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One disk for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSpec {
    /// An empty sparse disk of this many bytes, made for the run and gone with it.
    Scratch {
        /// Its size.
        bytes: u64,
    },
    /// An existing raw or qcow2 image, relative to the run's directory unless absolute.
    Image {
        /// The image file.
        path: PathBuf,
        /// The guest sees a read-only device; otherwise its writes go to a throwaway
        /// snapshot. Either way the file never changes.
        read_only: bool,
    },
}

impl DiskSpec {
    /// Reads `SIZE` (`512M`, `1G`: when no file of that name exists), `FILE,ro` or `FILE`.
    /// `exists` says whether a path names a file, so a file called `1G` is still an image;
    /// whether an image really exists is checked when the run starts.
    pub fn parse(value: &OsStr, exists: impl Fn(&Path) -> bool) -> Result<DiskSpec, String> {
        let shown = value.to_string_lossy();
        if value.is_empty() {
            return Err("an empty disk; give an image file or a size such as 1G".into());
        }
        if exists(Path::new(value)) {
            return Ok(image(value, false));
        }
        let bytes = value.as_bytes();
        if let Some(comma) = bytes.iter().rposition(|&b| b == b',') {
            let stem = OsStr::from_bytes(&bytes[..comma]);
            let option = &bytes[comma + 1..];
            if option == b"ro" {
                if stem.is_empty() {
                    return Err(format!("`{shown}` names no image before `,ro`"));
                }
                if !exists(Path::new(stem)) && parse_size(stem).is_some() {
                    return Err(format!(
                        "`{shown}`: a scratch disk starts empty, so it cannot be read-only"
                    ));
                }
                return Ok(image(stem, true));
            }
            if exists(Path::new(stem)) {
                return Err(format!(
                    "unknown disk option `{}` in `{shown}`; the only one is `ro`",
                    String::from_utf8_lossy(option)
                ));
            }
        }
        match parse_size(value) {
            Some(Ok(bytes)) => Ok(DiskSpec::Scratch { bytes }),
            Some(Err(why)) => Err(format!("`{shown}`: {why}")),
            None => Ok(image(value, false)),
        }
    }
}

fn image(path: &OsStr, read_only: bool) -> DiskSpec {
    DiskSpec::Image {
        path: PathBuf::from(OsString::from(path)),
        read_only,
    }
}

/// `64K`, `512M`, `1G`, `2T` (binary units, case-insensitive; a unit is required, so a
/// missing image named `1024` is not taken for a 1 KiB disk). `None` when it is not a size at
/// all; an error when it is one but unusable.
pub fn parse_size(text: &OsStr) -> Option<Result<u64, String>> {
    let text = text.to_str()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shift = match unit {
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    let size = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&bytes| bytes <= MAX_SCRATCH_BYTES);
    Some(match size {
        Some(0) => Err("a scratch disk needs a size above zero".into()),
        Some(bytes) => Ok(bytes),
        None => Err("too large for a scratch disk (at most 16T)".into()),
    })
}

/// ext4's largest file; larger sparse files fail to be made on most hosts anyway.
const MAX_SCRATCH_BYTES: u64 = 16 << 40;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str, files: &[&str]) -> Result<DiskSpec, String> {
        DiskSpec::parse(OsStr::new(value), |p| {
            files.iter().any(|f| Path::new(f) == p)
        })
    }

    fn img(path: &str, read_only: bool) -> DiskSpec {
        DiskSpec::Image {
            path: path.into(),
            read_only,
        }
    }

    #[test]
    fn sizes_are_scratch_disks_unless_a_file_has_that_name() {
        assert_eq!(parse("1G", &[]), Ok(DiskSpec::Scratch { bytes: 1 << 30 }));
        assert_eq!(
            parse("512m", &[]),
            Ok(DiskSpec::Scratch { bytes: 512 << 20 })
        );
        assert_eq!(parse("64K", &[]), Ok(DiskSpec::Scratch { bytes: 64 << 10 }));
        assert_eq!(parse("1G", &["1G"]), Ok(img("1G", false)));
    }

    #[test]
    fn files_are_images_and_ro_makes_them_read_only() {
        assert_eq!(parse("disk.img", &["disk.img"]), Ok(img("disk.img", false)));
        assert_eq!(
            parse("disk.img,ro", &["disk.img"]),
            Ok(img("disk.img", true))
        );
        assert_eq!(parse("a,b.img,ro", &[]), Ok(img("a,b.img", true)));
        // Commas in names still work when the file exists, and a missing one is an image
        // whose absence the launch reports.
        assert_eq!(parse("a,b.img", &["a,b.img"]), Ok(img("a,b.img", false)));
        assert_eq!(parse("missing.img", &[]), Ok(img("missing.img", false)));
        assert_eq!(
            parse("1024", &[]),
            Ok(img("1024", false)),
            "no unit, no size"
        );
        assert_eq!(parse("x,ro", &["x,ro"]), Ok(img("x,ro", false)));
    }

    #[test]
    fn unusable_specs_are_errors_that_say_why() {
        let error = |value, files: &[&str]| parse(value, files).unwrap_err();
        assert!(error("", &[]).contains("empty"));
        assert!(error("0M", &[]).contains("above zero"));
        assert!(error("99999999T", &[]).contains("too large"));
        assert!(error("1G,ro", &[]).contains("cannot be read-only"));
        assert!(error(",ro", &[]).contains("names no image"));
        let unknown = error("disk.img,rw", &["disk.img"]);
        assert!(unknown.contains("unknown disk option `rw`"), "{unknown}");
    }

    #[test]
    fn sizes_need_digits_and_a_unit() {
        let size = |s: &str| parse_size(OsStr::new(s));
        assert_eq!(size("2T"), Some(Ok(2 << 40)));
        assert_eq!(size("G"), None);
        assert_eq!(size("1.5G"), None);
        assert_eq!(size("-1G"), None);
        assert_eq!(size("10"), None);
        assert_eq!(size("1GB"), None);
        assert_eq!(size(""), None);
    }
}
