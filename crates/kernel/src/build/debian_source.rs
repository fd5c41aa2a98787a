//! Which of Debian's kernel source packages a `--debian` build takes: Debian's own release,
//! unless that release builds a kernel of the architecture that vmlane cannot trust.

use crate::compare_releases;
use vmlane_spec::Arch;

/// The oldest Linux series whose Debian source builds a trustworthy kernel of `arch`. 6.1
/// builds big-endian ppc64 for ELFv1, and that kernel crashes now and then under TCG; 6.12
/// builds it for ELFv2.
pub fn oldest_series(arch: Arch) -> Option<&'static str> {
    match arch {
        Arch::Ppc64 => Some("6.12"),
        _ => None,
    }
}

/// The apt package that brings the source for `arch`: Debian's own release (`linux-source`),
/// or the named series where that is too old.
pub fn source_package(arch: Arch) -> String {
    match oldest_series(arch) {
        Some(series) => format!("linux-source-{series}"),
        None => "linux-source".to_string(),
    }
}

/// Of tarball names such as `linux-source-6.1.tar.xz`, the one a build of `arch` takes: the
/// oldest new enough. That is Debian's own release even where a newer source was installed
/// beside it (for ppc64), so one machine's other kernels keep their source.
pub fn pick_tarball<'a>(names: impl IntoIterator<Item = &'a str>, arch: Arch) -> Option<&'a str> {
    let oldest = oldest_series(arch);
    names
        .into_iter()
        .filter_map(|name| Some((name, series_of(name)?)))
        .filter(|(_, series)| oldest.is_none_or(|oldest| compare_releases(series, oldest).is_ge()))
        .min_by(|(_, a), (_, b)| compare_releases(a, b))
        .map(|(name, _)| name)
}

/// `6.12` of `linux-source-6.12.tar.xz`.
fn series_of(name: &str) -> Option<&str> {
    name.strip_prefix("linux-source-")?.strip_suffix(".tar.xz")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [&str; 3] = [
        "linux-source-6.12.tar.xz",
        "linux-source-6.1.tar.xz",
        "linux-source-6.1.tar.xz.sig",
    ];

    #[test]
    fn every_architecture_but_ppc64_takes_debians_own_release() {
        for arch in Arch::ALL.into_iter().filter(|a| *a != Arch::Ppc64) {
            assert_eq!(
                pick_tarball(BOTH, arch),
                Some("linux-source-6.1.tar.xz"),
                "{arch:?}"
            );
            assert_eq!(source_package(arch), "linux-source");
        }
    }

    #[test]
    fn ppc64_takes_6_12_or_newer_and_nothing_older() {
        assert_eq!(
            pick_tarball(BOTH, Arch::Ppc64),
            Some("linux-source-6.12.tar.xz")
        );
        assert_eq!(pick_tarball(["linux-source-6.1.tar.xz"], Arch::Ppc64), None);
        assert_eq!(
            pick_tarball(["linux-source-6.16.tar.xz"], Arch::Ppc64),
            Some("linux-source-6.16.tar.xz")
        );
        assert_eq!(source_package(Arch::Ppc64), "linux-source-6.12");
    }

    #[test]
    fn the_only_source_there_is_taken_whatever_its_release() {
        assert_eq!(
            pick_tarball(["linux-source-6.12.tar.xz"], Arch::X86_64),
            Some("linux-source-6.12.tar.xz")
        );
        assert_eq!(pick_tarball(["README"], Arch::X86_64), None);
    }
}
