//! Failures and crashes of init itself, written to the console before the VM goes down.

use crate::port::Port;
use crate::sys;
use std::fmt;
use std::io;
use vmlane_proto::GuestMessage;

/// A step of init that failed, and why.
#[derive(Debug)]
pub struct Failure {
    /// The step, phrased to follow "failed to".
    pub step: String,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure of `step` caused by `error`.
    pub fn new(step: impl Into<String>, error: impl fmt::Display) -> Self {
        Failure {
            step: step.into(),
            message: error.to_string(),
        }
    }
}

/// Lets `?` turn an `io::Result` into a failure of a named step.
pub trait StepContext<T> {
    /// Names the step an error came from.
    fn step(self, step: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> StepContext<T> for io::Result<T> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|error| Failure::new(step(), error))
    }
}

/// Writes a line to init's stderr, which the kernel connected to the console.
pub fn say(line: &str) {
    let text = format!("vmlane-init: {line}\n");
    // SAFETY: writes a valid buffer to fd 2; failure is ignored because there is nowhere else.
    unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
}

/// Reports a failed step on the console and, when it is open, to the host.
pub fn report(failure: &Failure, port: Option<&mut Port>) {
    say(&format!("failed to {}: {}", failure.step, failure.message));
    if let Some(port) = port {
        let _ = port.send(&GuestMessage::Failed {
            step: failure.step.clone(),
            message: failure.message.clone(),
        });
    }
}

/// A panic or fatal signal in PID 1 would otherwise reach the host only as "init exited".
pub fn install_crash_reporting() {
    std::panic::set_hook(Box::new(|info| {
        say(&format!("PANIC: {info}"));
        sys::power_off();
    }));
    for signal in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        // SAFETY: the handler only calls async-signal-safe functions (write, reboot).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as usize;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    let mut line = *b"vmlane-init: PANIC: fatal signal 00\n";
    let len = line.len();
    line[len - 3] = b'0' + (signal / 10 % 10) as u8;
    line[len - 2] = b'0' + (signal % 10) as u8;
    // SAFETY: write and reboot are async-signal-safe; the buffer is valid.
    unsafe {
        libc::write(2, line.as_ptr().cast(), len);
        libc::reboot(libc::RB_AUTOBOOT);
    }
}
