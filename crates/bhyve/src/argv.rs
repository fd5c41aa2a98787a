//! The command lines of bhyveload, bhyve and bhyvectl, built by pure functions so they can be
//! checked on any host.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Loader settings every VM gets, each with the reason; the machine's own words come after
/// them and win.
pub const LOADER_DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "autoboot_delay",
        "0",
        "boot at once instead of counting down 10 s for a key nobody presses",
    ),
    (
        "beastie_disable",
        "YES",
        "no boot menu drawn onto the console log",
    ),
];

/// The FreeBSD boot flags (`-v` …) and the loader variables that stand for them, as FreeBSD's
/// own command-line parser maps them (sys/kern/subr_boot.c, `boot_parse_arg`).
pub const BOOT_FLAGS: &[(char, &str)] = &[
    ('a', "boot_askname"),
    ('C', "boot_cdrom"),
    ('d', "boot_ddb"),
    ('D', "boot_multicons"),
    ('g', "boot_gdb"),
    ('h', "boot_serial"),
    ('m', "boot_mute"),
    ('p', "boot_pause"),
    ('r', "boot_dfltroot"),
    ('s', "boot_single"),
    ('v', "boot_verbose"),
];

/// PCI slots: the host bridge first and the LPC bridge (with com1) last, as bhyve(8)'s
/// examples place them; disks and the share take the slots between, in order.
const HOSTBRIDGE_SLOT: usize = 0;
const LPC_SLOT: usize = 31;
const FIRST_DEVICE_SLOT: usize = 1;

/// A machine that cannot be expressed on bhyve's command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    /// bhyve parses `-s` options by splitting at commas.
    #[error("{what} must not contain a comma, bhyve would split the option there: {value}")]
    Comma {
        /// Which value.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The 9p share option is `tag=path`.
    #[error("a 9p share tag must not contain `=`: {0}")]
    TagWithEquals(String),
    /// A `=value` word.
    #[error("kernel environment word `{0}` has no name before `=`")]
    EmptyName(String),
    /// More devices than PCI slots.
    #[error("this machine needs {needed} PCI slots for disks and shares, bhyve has {free}")]
    TooManyDevices {
        /// Slots needed.
        needed: usize,
        /// Slots free.
        free: usize,
    },
}

/// A host directory bhyve serves to the guest over virtio-9p, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NinePShare {
    /// The tag the guest mounts it by.
    pub tag: String,
    /// The host directory.
    pub dir: PathBuf,
}

/// Everything the three command lines are made from, after the run directory is prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The VM's name in the kernel (`/dev/vmm/NAME`).
    pub name: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB; bhyveload and bhyve must be given the same.
    pub memory_mib: u32,
    /// The directory bhyveload's loader boots from (`-h`).
    pub boot_dir: PathBuf,
    /// Loader variables, in order, each name once.
    pub env: Vec<(String, String)>,
    /// Disk images in guest order (`vtbd0`, `vtbd1`, ...).
    pub disks: Vec<PathBuf>,
    /// The host share, if any.
    pub share: Option<NinePShare>,
}

/// A VM name unique within this host: the process id and a per-process counter.
pub fn next_vm_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    vm_name(std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `vmlane-<pid>-<n>`: within the 32-byte name limit of older FreeBSD releases, and
/// recognisable in `/dev/vmm` if a crash leaves one behind.
pub fn vm_name(pid: u32, n: u64) -> String {
    format!("vmlane-{pid}-{n}")
}

/// The loader environment a kernel command line stands for, read the way FreeBSD's kernel reads
/// its own command line: `-` words are boot flags (`-S<speed>` sets `comconsole_speed`, letters
/// it does not know are skipped), `name=value` sets a variable, a bare `name` sets it to `1`.
/// A later word for the same name wins.
pub fn loader_env(words: &str) -> Result<Vec<(String, String)>, ArgvError> {
    let mut env = Env::default();
    for word in words.split_ascii_whitespace() {
        if let Some(flags) = word.strip_prefix('-') {
            for (i, flag) in flags.char_indices() {
                if flag == 'S' {
                    env.set("comconsole_speed", &flags[i + 1..]);
                    break;
                }
                if let Some((_, name)) = BOOT_FLAGS.iter().find(|(f, _)| *f == flag) {
                    env.set(name, "YES");
                }
            }
        } else if let Some((name, value)) = word.split_once('=') {
            if name.is_empty() {
                return Err(ArgvError::EmptyName(word.to_string()));
            }
            env.set(name, value);
        } else {
            env.set(word, "1");
        }
    }
    Ok(env.0)
}

/// The loader environment for a machine: [`LOADER_DEFAULTS`], then its command line.
pub fn machine_env(cmdline: &str) -> Result<Vec<(String, String)>, ArgvError> {
    let mut env = Env::default();
    for (name, value, _) in LOADER_DEFAULTS {
        env.set(name, value);
    }
    for (name, value) in loader_env(cmdline)? {
        env.set(&name, &value);
    }
    Ok(env.0)
}

/// Ordered variables, each name once. bhyveload itself would let the first `-e` of a name win
/// (it stacks them), so duplicates are resolved here, where the rule is vmlane's.
#[derive(Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, name: &str, value: &str) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((name.to_string(), value.to_string())),
        }
    }
}

/// `bhyveload -c stdio -m MEM -h BOOTDIR -e NAME=VALUE... VMNAME`: creates the VM and loads the
/// kernel from the boot directory; no `-d`, so the loader's files come from that directory too.
pub fn bhyveload_args(spec: &VmSpec) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "-c".into(),
        "stdio".into(),
        "-m".into(),
        memory(spec).into(),
        "-h".into(),
        spec.boot_dir.clone().into(),
    ];
    for (name, value) in &spec.env {
        args.push("-e".into());
        args.push(format!("{name}={value}").into());
    }
    args.push(spec.name.clone().into());
    args
}

/// `bhyve -c CPUS -m MEM -H -A -P -u -s 0,hostbridge -s N,virtio-blk,DISK... -s 31,lpc
/// -l com1,stdio VMNAME`.
pub fn bhyve_args(spec: &VmSpec) -> Result<Vec<OsString>, ArgvError> {
    let needed = spec.disks.len() + usize::from(spec.share.is_some());
    let free = LPC_SLOT - FIRST_DEVICE_SLOT;
    if needed > free {
        return Err(ArgvError::TooManyDevices { needed, free });
    }
    let mut args: Vec<OsString> = vec![
        "-c".into(),
        spec.cpus.to_string().into(),
        "-m".into(),
        memory(spec).into(),
        // Yield the host CPU when the guest halts, instead of spinning at 100%.
        "-H".into(),
        // ACPI tables: required before FreeBSD 14, accepted as a no-op since.
        "-A".into(),
        // Exit on PAUSE so a spinning vCPU does not hold a host CPU.
        "-P".into(),
        // The RTC holds UTC, which FreeBSD assumes when /etc/wall_cmos_clock is absent.
        "-u".into(),
        "-s".into(),
        format!("{HOSTBRIDGE_SLOT},hostbridge").into(),
    ];
    let mut slot = FIRST_DEVICE_SLOT;
    for disk in &spec.disks {
        no_comma("a disk path", disk.as_os_str())?;
        let mut device = OsString::from(format!("{slot},virtio-blk,"));
        device.push(disk);
        args.push("-s".into());
        args.push(device);
        slot += 1;
    }
    if let Some(share) = &spec.share {
        no_comma("a share tag", OsStr::new(&share.tag))?;
        no_comma("a share directory", share.dir.as_os_str())?;
        if share.tag.contains('=') {
            return Err(ArgvError::TagWithEquals(share.tag.clone()));
        }
        let mut device = OsString::from(format!("{slot},virtio-9p,{}=", share.tag));
        device.push(&share.dir);
        device.push(",ro");
        args.push("-s".into());
        args.push(device);
    }
    args.extend(
        [
            "-s".to_string(),
            format!("{LPC_SLOT},lpc"),
            "-l".into(),
            "com1,stdio".into(),
            spec.name.clone(),
        ]
        .map(OsString::from),
    );
    Ok(args)
}

/// `bhyvectl --destroy --vm=NAME`: frees the VM's kernel instance and memory, which outlive
/// the bhyve process.
pub fn destroy_args(name: &str) -> Vec<OsString> {
    vec!["--destroy".into(), format!("--vm={name}").into()]
}

fn memory(spec: &VmSpec) -> String {
    format!("{}M", spec.memory_mib)
}

fn no_comma(what: &'static str, value: &OsStr) -> Result<(), ArgvError> {
    if value.as_bytes().contains(&b',') {
        return Err(ArgvError::Comma {
            what,
            value: value.to_string_lossy().into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            name: "vmlane-42-0".into(),
            cpus: 2,
            memory_mib: 512,
            boot_dir: "/run/x/bhyve-boot".into(),
            env: vec![("autoboot_delay".into(), "0".into())],
            disks: vec!["/run/x/disk0.img".into(), "/run/x/disk1.img".into()],
            share: None,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bhyveload_gets_memory_boot_dir_env_and_name() {
        assert_eq!(
            strings(&bhyveload_args(&spec())),
            [
                "-c",
                "stdio",
                "-m",
                "512M",
                "-h",
                "/run/x/bhyve-boot",
                "-e",
                "autoboot_delay=0",
                "vmlane-42-0"
            ]
        );
    }

    #[test]
    fn bhyve_gets_cpus_memory_disks_in_slot_order_and_the_console() {
        assert_eq!(
            strings(&bhyve_args(&spec()).unwrap()),
            [
                "-c",
                "2",
                "-m",
                "512M",
                "-H",
                "-A",
                "-P",
                "-u",
                "-s",
                "0,hostbridge",
                "-s",
                "1,virtio-blk,/run/x/disk0.img",
                "-s",
                "2,virtio-blk,/run/x/disk1.img",
                "-s",
                "31,lpc",
                "-l",
                "com1,stdio",
                "vmlane-42-0"
            ]
        );
    }

    #[test]
    fn both_programs_get_the_same_memory_size() {
        let mut spec = spec();
        spec.memory_mib = 2048;
        let load = strings(&bhyveload_args(&spec));
        let run = strings(&bhyve_args(&spec).unwrap());
        let after_m =
            |args: &[String]| args[args.iter().position(|a| a == "-m").unwrap() + 1].clone();
        assert_eq!(after_m(&load), "2048M");
        assert_eq!(after_m(&run), "2048M");
    }

    #[test]
    fn a_share_follows_the_disks_read_only() {
        let mut spec = spec();
        spec.share = Some(NinePShare {
            tag: "vmlane-root".into(),
            dir: "/".into(),
        });
        let args = strings(&bhyve_args(&spec).unwrap());
        assert!(args.contains(&"3,virtio-9p,vmlane-root=/,ro".to_string()));
    }

    #[test]
    fn paths_with_spaces_pass_through_as_they_are() {
        let mut spec = spec();
        spec.disks = vec!["/tmp/my dir/disk 0.img".into()];
        spec.boot_dir = "/tmp/my dir/boot".into();
        let args = strings(&bhyve_args(&spec).unwrap());
        assert!(args.contains(&"1,virtio-blk,/tmp/my dir/disk 0.img".to_string()));
        assert!(strings(&bhyveload_args(&spec)).contains(&"/tmp/my dir/boot".to_string()));
    }

    #[test]
    fn commas_in_device_paths_are_refused() {
        let mut spec = spec();
        spec.disks = vec!["/tmp/a,ro/disk.img".into()];
        assert!(matches!(
            bhyve_args(&spec),
            Err(ArgvError::Comma {
                what: "a disk path",
                ..
            })
        ));
        let mut spec = self::tests::spec();
        spec.share = Some(NinePShare {
            tag: "a=b".into(),
            dir: "/".into(),
        });
        assert_eq!(
            bhyve_args(&spec),
            Err(ArgvError::TagWithEquals("a=b".into()))
        );
    }

    #[test]
    fn thirty_devices_fit_and_thirty_one_do_not() {
        let mut spec = spec();
        spec.disks = (0..30).map(|i| format!("/d{i}").into()).collect();
        let args = strings(&bhyve_args(&spec).unwrap());
        assert!(args.contains(&"30,virtio-blk,/d29".to_string()));
        spec.share = Some(NinePShare {
            tag: "t".into(),
            dir: "/".into(),
        });
        assert_eq!(
            bhyve_args(&spec),
            Err(ArgvError::TooManyDevices {
                needed: 31,
                free: 30
            })
        );
    }

    #[test]
    fn env_words_become_pairs() {
        let env = loader_env(
            "vfs.root.mountfrom=ufs:/dev/vtbd0 init_path=/vmlane/init boot_verbose kern.panic_reboot_wait_time=0",
        )
        .unwrap();
        assert_eq!(
            env,
            pairs(&[
                ("vfs.root.mountfrom", "ufs:/dev/vtbd0"),
                ("init_path", "/vmlane/init"),
                ("boot_verbose", "1"),
                ("kern.panic_reboot_wait_time", "0"),
            ])
        );
    }

    #[test]
    fn boot_flags_become_their_loader_variables() {
        assert_eq!(
            loader_env("-h -v -s").unwrap(),
            pairs(&[
                ("boot_serial", "YES"),
                ("boot_verbose", "YES"),
                ("boot_single", "YES"),
            ])
        );
        assert_eq!(
            loader_env("-sv").unwrap(),
            pairs(&[("boot_single", "YES"), ("boot_verbose", "YES")])
        );
        assert_eq!(
            loader_env("-aCdDgmpr").unwrap().len(),
            8,
            "every documented flag has a variable"
        );
    }

    #[test]
    fn unknown_flags_are_skipped_like_the_kernel_does_and_s_sets_the_speed() {
        assert_eq!(loader_env("-x -P").unwrap(), []);
        assert_eq!(
            loader_env("-vS115200").unwrap(),
            pairs(&[("boot_verbose", "YES"), ("comconsole_speed", "115200")])
        );
    }

    #[test]
    fn values_keep_odd_characters_and_later_words_win() {
        assert_eq!(
            loader_env("a=b=c quoted=\"x\" path=/a,b a=2 \tnext=\u{e9}").unwrap(),
            pairs(&[
                ("a", "2"),
                ("quoted", "\"x\""),
                ("path", "/a,b"),
                ("next", "\u{e9}"),
            ])
        );
        assert_eq!(
            loader_env("=x"),
            Err(ArgvError::EmptyName("=x".to_string()))
        );
        assert_eq!(loader_env("  ").unwrap(), []);
    }

    #[test]
    fn the_machine_can_override_the_defaults() {
        let env = machine_env("autoboot_delay=3 -v").unwrap();
        assert_eq!(
            env,
            pairs(&[
                ("autoboot_delay", "3"),
                ("beastie_disable", "YES"),
                ("boot_verbose", "YES"),
            ])
        );
    }

    #[test]
    fn destroy_names_the_vm() {
        assert_eq!(
            strings(&destroy_args("vmlane-1-2")),
            ["--destroy", "--vm=vmlane-1-2"]
        );
    }

    #[test]
    fn vm_names_are_unique_and_short() {
        let a = next_vm_name();
        let b = next_vm_name();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("vmlane-{}-", std::process::id())));
        assert_eq!(
            vm_name(4_194_304, u64::from(u32::MAX)),
            "vmlane-4194304-4294967295"
        );
        assert!(vm_name(4_194_304, u64::from(u32::MAX)).len() <= 31);
    }
}
