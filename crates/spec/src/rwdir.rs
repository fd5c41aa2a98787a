//! Writable host directories (`--rwdir HOST[=GUEST]`): the one part of the host the guest may
//! write to; everything else stays read-only under the throwaway overlay.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A host directory the guest mounts writable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RwDir {
    /// The host directory, relative to the run's directory unless absolute.
    pub host: PathBuf,
    /// Where the guest mounts it (absolute); `None`: at the host directory's own path.
    pub guest: Option<PathBuf>,
}

impl RwDir {
    /// Reads `HOST` or `HOST=GUEST` (split at the first `=`). GUEST must be absolute and not
    /// `/`; whether HOST exists is checked when the run starts.
    pub fn parse(value: &OsStr) -> Result<RwDir, String> {
        let shown = value.to_string_lossy();
        let bytes = value.as_bytes();
        let (host, guest) = match bytes.iter().position(|&b| b == b'=') {
            Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
            None => (bytes, None),
        };
        if host.is_empty() {
            return Err(match guest {
                Some(_) => format!("`{shown}` names no host directory before `=`; give HOST=GUEST"),
                None => "an empty --rwdir; give a host directory, HOST or HOST=GUEST".into(),
            });
        }
        let guest = match guest {
            None => None,
            Some(guest) => {
                let guest = Path::new(OsStr::from_bytes(guest));
                check_guest(guest).map_err(|why| format!("`{shown}`: {why}"))?;
                Some(guest.to_path_buf())
            }
        };
        Ok(RwDir {
            host: PathBuf::from(OsStr::from_bytes(host)),
            guest,
        })
    }

    /// The host directory taken from `cwd` when relative, and where the guest mounts it
    /// (GUEST, else the host directory's path); both without `.` and `..` components.
    pub fn resolve(&self, cwd: &Path) -> Result<(PathBuf, PathBuf), String> {
        let host = normalize(&cwd.join(&self.host));
        if !host.is_absolute() {
            return Err(format!(
                "--rwdir {}: the host directory must be an absolute path, or relative to an absolute working directory (got {})",
                self.host.display(),
                cwd.display()
            ));
        }
        let guest = match &self.guest {
            Some(guest) => normalize(guest),
            None => host.clone(),
        };
        check_guest(&guest).map_err(|why| format!("--rwdir {}: {why}", self.host.display()))?;
        Ok((host, guest))
    }
}

impl std::str::FromStr for RwDir {
    type Err = String;

    /// [`RwDir::parse`], for command-line parsers.
    fn from_str(value: &str) -> Result<RwDir, String> {
        RwDir::parse(OsStr::new(value))
    }
}

/// Where the guest may mount a writable directory: an absolute path other than its root,
/// which is the host root under the overlay.
fn check_guest(guest: &Path) -> Result<(), String> {
    if !guest.is_absolute() {
        return Err(format!(
            "the guest path `{}` must be absolute",
            guest.display()
        ));
    }
    if normalize(guest) == Path::new("/") {
        return Err("the guest's / is the host root under a throwaway overlay; mount the directory elsewhere (HOST=/some/dir)".into());
    }
    Ok(())
}

/// `path` without `.` components and with each `..` taking away the component before it, as
/// the guest's mount point is made (no symbolic links are followed here).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                // `/..` is `/`; a relative path keeps the `..` it cannot resolve.
                if !out.pop() && !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<RwDir, String> {
        RwDir::parse(OsStr::new(value))
    }

    fn dir(host: &str, guest: Option<&str>) -> RwDir {
        RwDir {
            host: host.into(),
            guest: guest.map(PathBuf::from),
        }
    }

    #[test]
    fn host_alone_or_host_then_guest() {
        assert_eq!(parse("out"), Ok(dir("out", None)));
        assert_eq!(parse("/abs/dir"), Ok(dir("/abs/dir", None)));
        assert_eq!(
            parse("/abs/dir=/guest/dir"),
            Ok(dir("/abs/dir", Some("/guest/dir")))
        );
        // The first `=` splits, so a guest path may hold one.
        assert_eq!(parse("out=/mnt/a=b"), Ok(dir("out", Some("/mnt/a=b"))));
    }

    #[test]
    fn unusable_values_say_what_to_give() {
        let error = |value| parse(value).unwrap_err();
        assert!(error("").contains("give a host directory"), "{}", error(""));
        assert!(error("=/mnt").contains("names no host directory"));
        assert!(
            error("out=").contains("must be absolute"),
            "{}",
            error("out=")
        );
        assert!(error("out=rel/dir").contains("`rel/dir` must be absolute"));
        assert!(error("out=/").contains("mount the directory elsewhere"));
        assert!(error("out=/a/..").contains("mount the directory elsewhere"));
    }

    #[test]
    fn relative_hosts_are_taken_from_the_working_directory_and_guests_default_to_them() {
        let cwd = Path::new("/work/proj");
        let resolve = |value| parse(value).unwrap().resolve(cwd);
        assert_eq!(
            resolve("out"),
            Ok(("/work/proj/out".into(), "/work/proj/out".into()))
        );
        assert_eq!(
            resolve("./a/../out/."),
            Ok(("/work/proj/out".into(), "/work/proj/out".into()))
        );
        assert_eq!(
            resolve("../shared=/mnt/shared/"),
            Ok(("/work/shared".into(), "/mnt/shared".into()))
        );
        assert_eq!(
            resolve("/data=/mnt/./x"),
            Ok(("/data".into(), "/mnt/x".into()))
        );
        assert_eq!(resolve("."), Ok((cwd.into(), cwd.into())));
    }

    #[test]
    fn a_relative_working_directory_or_a_host_root_default_is_refused() {
        let error = parse("out").unwrap().resolve(Path::new("rel")).unwrap_err();
        assert!(error.contains("must be an absolute path"), "{error}");
        // `/` as the host directory is writable host root; its guest path needs naming.
        let error = parse("/").unwrap().resolve(Path::new("/w")).unwrap_err();
        assert!(error.contains("mount the directory elsewhere"), "{error}");
        assert_eq!(
            parse("/=/mnt/host").unwrap().resolve(Path::new("/w")),
            Ok(("/".into(), "/mnt/host".into()))
        );
    }
}
