//! What the engine has to say while it works. It prints nothing itself: callers show these
//! (the CLI on stderr) or ignore them (a library caller gets no stray output).

use std::fmt;
use std::path::PathBuf;
use vmlane_kernel::Origin;

/// Something a run did or decided, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchEvent {
    /// The kernel was found.
    Kernel {
        /// Its image.
        image: PathBuf,
        /// How it was chosen.
        origin: Origin,
        /// Its release (`uname -r`), when known: reports name the kernel by it.
        release: Option<String>,
        /// Its `.config`, when known.
        config: Option<PathBuf>,
        /// The architecture it runs on, which is the guest's.
        arch: vmlane_spec::Arch,
    },
    /// Worth telling the user once per process whatever the verbosity: a slow fallback.
    Notice(String),
    /// A decision or a staged file, for those who asked to see them (`-v`).
    Detail(String),
    /// The VM starts halted until a debugger attaches and continues it.
    WaitingForDebugger {
        /// The gdb stub's port on 127.0.0.1.
        port: u16,
        /// The vmlinux with the kernel's symbols, when one was found.
        symbols: Option<PathBuf>,
        /// The kernel image.
        kernel: PathBuf,
        /// Its release, for the name of a debug-symbols package.
        release: Option<String>,
    },
}

impl fmt::Display for LaunchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchEvent::Kernel { image, origin, .. } => {
                write!(f, "kernel {} ({origin})", image.display())
            }
            LaunchEvent::Notice(text) | LaunchEvent::Detail(text) => f.write_str(text),
            LaunchEvent::WaitingForDebugger {
                port,
                symbols,
                kernel,
                release,
            } => {
                let target = format!("-ex 'target remote 127.0.0.1:{port}'");
                writeln!(f, "the VM is halted until a debugger attaches to 127.0.0.1:{port} and continues it:")?;
                match symbols {
                    Some(vmlinux) => write!(f, "  gdb {target} {}", vmlane_profile::quote(vmlinux)),
                    None => write!(
                        f,
                        "  gdb {target}\nno vmlinux with symbols was found for {}; a build tree's vmlinux has them, and Debian's come in linux-image-{}-dbg",
                        kernel.display(),
                        release.as_deref().unwrap_or("RELEASE")
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debugger_event_names_the_attach_command_or_where_symbols_come_from() {
        let with = LaunchEvent::WaitingForDebugger {
            port: 1234,
            symbols: Some("/src/linux/vmlinux".into()),
            kernel: "/src/linux/arch/x86/boot/bzImage".into(),
            release: None,
        };
        assert_eq!(
            with.to_string().lines().last(),
            Some("  gdb -ex 'target remote 127.0.0.1:1234' /src/linux/vmlinux")
        );
        let without = LaunchEvent::WaitingForDebugger {
            port: 4321,
            symbols: None,
            kernel: "/boot/vmlinuz-6.1.0-57-amd64".into(),
            release: Some("6.1.0-57-amd64".into()),
        };
        let text = without.to_string();
        assert!(text.contains("linux-image-6.1.0-57-amd64-dbg"), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
    }
}
