//! Tiny x86 kernels built from C at build time. They stand in for FreeBSD kernels in vmlane's
//! end-to-end tests, since no real FreeBSD kernel can be downloaded in CI; `vmlane_test.action=`
//! says what they print, and where a run gives them COM2 they send the results there in the
//! frames of vmlane's FreeBSD init.
//!
//! The actions (`common/common.c`), with results under `vmlane.token=`:
//!
//! - `exit:N` (the default, `exit:0`), `signal:N`, `notfound`, `noexec`: the command ends so,
//!   after a line of output for `exit:N`.
//! - `streams`: stdout and stderr in turns, a kernel message between them; `big:N`: N bytes of
//!   a pattern on stdout; `flood`: stdout lines forever.
//! - `fail-early:STEP`, `fail:STEP`: a step of the init fails before or after the channel opens.
//! - `panic:MESSAGE`, `panic-mid:MESSAGE` (after some output), `trap`, `trap-hang`: FreeBSD's
//!   panic report, then a reset, or the debugger's prompt with `vmlane_test.debugger=1`.
//! - `mountroot`, `hang`: the kernel waits for good.
//! - `multiuser`, `single-user`: a full image's boot as `vmlane image check` reads it: rc's
//!   steps, a failure, then getty's `login:` prompt, or init asking for a single-user shell;
//!   then the kernel waits.
//! - `request` (COM2 only): plays the init's side of the host's requests. It sends Ready; a
//!   Prepare before the Run prints `vmlane-test: prepare clock=<seconds> entropy=<n>` on the
//!   console; the Run gets one stdout line
//!   `argv=<arg0>,<arg1>,... cwd=<cwd> input=<null|pipe|terminal RxC>`. With null input the
//!   command exits 0; else each Stdin comes back as stdout and each WindowSize as a line
//!   `winsize RxC`, until StdinClosed (exit 0) or a Ctrl-C in Stdin (signal 2, after echoing
//!   what came before it). Other frames are dropped; a malformed one fails the run.
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
