//! FreeBSD kernels are built by FreeBSD's own build system, out of tree: `make buildkernel` on
//! FreeBSD hosts, `tools/build/make.py` with the host's clang and lld on Linux hosts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The host the build runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreeBsdHost {
    /// A FreeBSD host: its own make and toolchain.
    FreeBsd,
    /// A Linux host: FreeBSD's make.py bootstraps bmake and the build tools, and uses the
    /// LLVM tools in this directory (Debian: `/usr/lib/llvm-19/bin`).
    Linux {
        /// Where clang, ld.lld and the other LLVM tools are.
        llvm_bin: PathBuf,
    },
}

/// What to build.
#[derive(Debug, Clone)]
pub struct FreeBsdBuild {
    /// The FreeBSD source tree (never written to).
    pub source: PathBuf,
    /// The kernel config, e.g. `FIRECRACKER` or `GENERIC`.
    pub kernconf: String,
    /// Where objects go (`MAKEOBJDIRPREFIX`).
    pub objdir: PathBuf,
    /// Parallel jobs.
    pub jobs: u32,
}

/// One command of the build: program, arguments, environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment.
    pub env: Vec<(OsString, OsString)>,
}

/// The commands that build the kernel, in order, and where the kernel ends up. On Linux the
/// first command builds the cross tools (`kernel-toolchain`), the second the kernel.
pub fn freebsd_build_commands(
    build: &FreeBsdBuild,
    host: &FreeBsdHost,
) -> (Vec<BuildCommand>, PathBuf) {
    let env = vec![(
        "MAKEOBJDIRPREFIX".into(),
        build.objdir.clone().into_os_string(),
    )];
    let kernel_args = |first: &str| -> Vec<OsString> {
        vec![
            format!("-j{}", build.jobs).into(),
            first.into(),
            format!("KERNCONF={}", build.kernconf).into(),
            "NO_MODULES=yes".into(),
        ]
    };
    let commands = match host {
        FreeBsdHost::FreeBsd => {
            let mut args: Vec<OsString> = vec!["-C".into(), build.source.clone().into_os_string()];
            args.extend(kernel_args("buildkernel"));
            vec![BuildCommand {
                program: "make".into(),
                args,
                env,
            }]
        }
        FreeBsdHost::Linux { llvm_bin } => {
            let make_py = build.source.join("tools/build/make.py");
            let mut cross = OsString::from("--cross-bindir=");
            cross.push(llvm_bin);
            let prefix: Vec<OsString> =
                vec![cross, "TARGET=amd64".into(), "TARGET_ARCH=amd64".into()];
            let with = |mut tail: Vec<OsString>| {
                let mut args = prefix.clone();
                args.append(&mut tail);
                BuildCommand {
                    program: make_py.clone(),
                    args,
                    env: env.clone(),
                }
            };
            vec![
                with(vec![
                    format!("-j{}", build.jobs).into(),
                    "kernel-toolchain".into(),
                ]),
                with(kernel_args("buildkernel")),
            ]
        }
    };
    (commands, kernel_path(build))
}

/// `$MAKEOBJDIRPREFIX/<source>/amd64.amd64/sys/<KERNCONF>/kernel`.
fn kernel_path(build: &FreeBsdBuild) -> PathBuf {
    let source = build.source.strip_prefix("/").unwrap_or(&build.source);
    build
        .objdir
        .join(source)
        .join("amd64.amd64/sys")
        .join(&build.kernconf)
        .join("kernel")
}

/// Checks that `source` looks like a FreeBSD tree before minutes of bootstrap start.
pub fn check_freebsd_source(source: &Path) -> Result<(), String> {
    for needed in ["sys/amd64/conf", "tools/build/make.py", "Makefile.inc1"] {
        if !source.join(needed).exists() {
            return Err(format!("no {needed}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> FreeBsdBuild {
        FreeBsdBuild {
            source: "/src/freebsd".into(),
            kernconf: "FIRECRACKER".into(),
            objdir: "/cache/obj".into(),
            jobs: 2,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn freebsd_hosts_use_make_buildkernel_without_modules() {
        let (commands, kernel) = freebsd_build_commands(&build(), &FreeBsdHost::FreeBsd);
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].program, PathBuf::from("make"));
        assert_eq!(
            strings(&commands[0].args),
            [
                "-C",
                "/src/freebsd",
                "-j2",
                "buildkernel",
                "KERNCONF=FIRECRACKER",
                "NO_MODULES=yes"
            ]
        );
        assert_eq!(
            commands[0].env,
            [("MAKEOBJDIRPREFIX".into(), "/cache/obj".into())]
        );
        assert_eq!(
            kernel,
            PathBuf::from("/cache/obj/src/freebsd/amd64.amd64/sys/FIRECRACKER/kernel")
        );
    }

    #[test]
    fn linux_hosts_bootstrap_the_toolchain_then_build_with_make_py() {
        let host = FreeBsdHost::Linux {
            llvm_bin: "/usr/lib/llvm-19/bin".into(),
        };
        let (commands, _) = freebsd_build_commands(&build(), &host);
        assert_eq!(commands.len(), 2);
        for command in &commands {
            assert_eq!(
                command.program,
                PathBuf::from("/src/freebsd/tools/build/make.py")
            );
            let args = strings(&command.args);
            assert_eq!(
                &args[..3],
                [
                    "--cross-bindir=/usr/lib/llvm-19/bin",
                    "TARGET=amd64",
                    "TARGET_ARCH=amd64"
                ]
            );
        }
        assert_eq!(strings(&commands[0].args)[3..], ["-j2", "kernel-toolchain"]);
        assert_eq!(
            strings(&commands[1].args)[3..],
            [
                "-j2",
                "buildkernel",
                "KERNCONF=FIRECRACKER",
                "NO_MODULES=yes"
            ]
        );
    }

    #[test]
    fn a_tree_without_make_py_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            check_freebsd_source(dir.path()).unwrap_err(),
            "no sys/amd64/conf"
        );
    }
}
