//! Image lint: what `rc` needs that an image lacks, found before the image boots. FreeBSD
//! images cut down by hand lose days to the long tail of it (a missing `mktemp`, a
//! `devd.conf`, a `libgeom.so.5`, an fsck pass on devfs), each showing up as a boot that
//! stops or a service that never started. Four checks, each in a file of its own:
//!
//! 1. `libs`: dynamically linked programs and libraries find their run-time linker and
//!    the libraries they need where `ld-elf.so.1` looks;
//! 2. `rcd`: the commands `rc`, `rc.subr` and the enabled rc.d scripts run are there;
//! 3. `fstab`: pass numbers only where an fsck exists, mount points, the root entry;
//! 4. `files`: the files init, rc and the enabled services read.
//!
//! Every check errs towards silence: what it cannot read or work out, it does not report.

mod elf;
mod error;
mod files;
mod finding;
mod fstab;
mod image;
mod input;
mod libs;
mod rcd;
mod settings;
mod shell;
mod ufs_view;
mod view;

#[cfg(test)]
mod tests;

pub use error::LintError;
pub use finding::Finding;

use finding::Findings;
use image::Image;
use input::Input;
use settings::Settings;
use std::path::Path;
use view::{DirView, View};

/// Lints `input`: a FreeBSD root tree, a base.txz (unpacked under `scratch`, a directory
/// with room for a FreeBSD system, and removed after) or a UFS image `vmlane image build`
/// wrote. The findings come sorted, each once.
pub fn lint(input: &Path, scratch: &Path) -> Result<Vec<Finding>, LintError> {
    match Input::open(input)? {
        Input::Dir(root) => Ok(lint_tree(&root)),
        Input::Txz(archive) => {
            let unpacked = input::unpack(&archive, scratch)?;
            Ok(lint_tree(unpacked.path()))
        }
        Input::Ufs(fs) => Ok(lint_view(&ufs_view::UfsView::new(fs))),
    }
}

/// Lints the FreeBSD root tree at `root`, a host directory; symlinks in it are followed
/// inside it only, as the image's own kernel would follow them.
pub fn lint_tree(root: &Path) -> Vec<Finding> {
    lint_view(&DirView::new(root))
}

/// Whether the image or tree at `input` enables `rcvar` (`sshd_enable`) the way rc.subr's
/// `checkyesno` reads it; `None` when the value cannot be worked out, or for a base.txz
/// (which has no rc.conf of its own).
pub fn rc_enabled(input: &Path, rcvar: &str) -> Result<Option<bool>, LintError> {
    let enabled = |view: &dyn View| Settings::load(&Image::new(view)).enabled(rcvar);
    match Input::open(input)? {
        Input::Dir(root) => Ok(enabled(&DirView::new(&root))),
        Input::Txz(_) => Ok(None),
        Input::Ufs(fs) => Ok(enabled(&ufs_view::UfsView::new(fs))),
    }
}

fn lint_view(view: &dyn View) -> Vec<Finding> {
    let image = Image::new(view);
    let settings = Settings::load(&image);
    let mut findings = Findings::default();
    libs::check(&image, &settings, &mut findings);
    rcd::check(&image, &settings, &mut findings);
    fstab::check(&image, &mut findings);
    files::check(&image, &settings, &mut findings);
    findings.into_vec()
}
