//! Tiny x86 kernels built from C at build time. They stand in for FreeBSD kernels in vmlane's
//! end-to-end tests, since no real FreeBSD kernel can be downloaded in CI; `vmlane_test.action=`
//! says what they print, and where a run gives them COM2 they send the results there in the
//! frames of vmlane's FreeBSD init.
#![deny(missing_docs)]

use std::path::Path;

/// Why the kernels were not built, if they were not.
const MISSING: Option<&str> = option_env!("VMLANE_TESTKERNEL_MISSING");

/// The PVH test kernel, which QEMU boots at its PVH entry, or why it could not be built.
pub fn pvh_kernel() -> Result<&'static Path, &'static str> {
    match MISSING {
        Some(why) => Err(why),
        None => Ok(Path::new(concat!(env!("OUT_DIR"), "/pvh-test-kernel"))),
    }
}

/// The native test kernel, entered at `btext` as FreeBSD's loader enters an amd64 kernel; it
/// prints the metadata it was handed. Or why it could not be built.
pub fn native_kernel() -> Result<&'static Path, &'static str> {
    match MISSING {
        Some(why) => Err(why),
        None => Ok(Path::new(concat!(env!("OUT_DIR"), "/native-test-kernel"))),
    }
}
