//! The kernel environment of a FreeBSD guest: FreeBSD reads `key=value` words from the PVH
//! command line into its kernel environment, where loader.conf settings would otherwise go.

use crate::accel::AccelChoice;

/// Environment every FreeBSD run gets, each with the reason it is there.
pub const FREEBSD_KERNEL_ENV: &[(&str, &str)] = &[
    (
        "vfs.root.mountfrom=ufs:/dev/vtbd0",
        "the root is the first virtio disk, the image vmlane staged",
    ),
    (
        "hw.vtblk.no_ident=1",
        "skip the disk identify request at attach: one round trip less",
    ),
    (
        "hint.attimer.0.at=isa",
        "the i8254 as FreeBSD's device.hints has it; without ACPI only a hint finds it, and without it the TSC is calibrated against nothing (0.7 s lost under TCG, the guest clock off by a third)",
    ),
    ("hint.attimer.0.port=0x40", "the i8254's I/O port"),
    ("hint.attimer.0.irq=0", "the i8254's interrupt"),
    (
        "hint.atrtc.0.at=isa",
        "the RTC as device.hints has it: the guest's time-of-day clock at boot",
    ),
    ("hint.atrtc.0.port=0x70", "the RTC's I/O port"),
    ("hint.atrtc.0.irq=8", "the RTC's interrupt"),
];

/// Environment that makes a panic end the VM at once; left out when the user wants to stop
/// at `db>` (`--debugger`).
pub const FREEBSD_PANIC_ENV: &[(&str, &str)] = &[
    (
        "kern.panic_reboot_wait_time=0",
        "reset at once after a panic; QEMU's -no-reboot turns that into an exit",
    ),
    (
        "debug.debugger_on_panic=0",
        "print the backtrace and reset instead of waiting at db>",
    ),
];

/// Environment for a run whose output and status come on the second serial port (COM2, I/O
/// port 0x2f8, IRQ 3, as FreeBSD's GENERIC.hints describes it). Without ACPI (microvm) FreeBSD
/// finds ISA UARTs only through hints; with ACPI they give QEMU's COM2 the unit `uart1`, so the
/// guest's device is `/dev/cuau1` either way.
pub const FREEBSD_CHANNEL_ENV: &[(&str, &str)] = &[
    (
        "hint.uart.1.at=isa",
        "the run's channel is a second 16550 on the ISA bus",
    ),
    ("hint.uart.1.port=0x2F8", "COM2's I/O port"),
    ("hint.uart.1.irq=3", "COM2's interrupt"),
];

/// Environment under TCG only.
pub const FREEBSD_TCG_KERNEL_ENV: &[(&str, &str)] = &[(
    "machdep.disable_tsc_calibration=0",
    "TCG gives no TSC frequency; without calibration against the i8254 the kernel panics with `TSC not initialized`",
)];

/// The FreeBSD kernel command line: vmlane's environment (with the panic settings unless the
/// user wants the debugger, and the second serial port's hints when the run has that
/// `channel`), the run's token, the init to start (vmlane's own, or none for an image that
/// boots its own userland), then the user's words.
pub fn freebsd_cmdline(
    accel: AccelChoice,
    token: &str,
    init_path: Option<&str>,
    debugger: bool,
    channel: bool,
    extra: &[String],
) -> String {
    let tcg = if accel == AccelChoice::Tcg {
        FREEBSD_TCG_KERNEL_ENV
    } else {
        &[]
    };
    let panic = if debugger { &[] } else { FREEBSD_PANIC_ENV };
    let channel = if channel { FREEBSD_CHANNEL_ENV } else { &[] };
    let mut words: Vec<String> = [FREEBSD_KERNEL_ENV, panic, tcg, channel]
        .into_iter()
        .flatten()
        .map(|(word, _)| word.to_string())
        .collect();
    words.push(format!("vmlane.token={token}"));
    if let Some(init) = init_path {
        words.push(format!("init_path={init}"));
    }
    words.extend(extra.iter().cloned());
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debugger_keeps_panics_at_db() {
        let normal = freebsd_cmdline(AccelChoice::Kvm, "t", None, false, false, &[]);
        assert!(normal.contains("debug.debugger_on_panic=0"));
        assert!(normal.contains("kern.panic_reboot_wait_time=0"));
        let debugger = freebsd_cmdline(AccelChoice::Kvm, "t", None, true, false, &[]);
        assert!(!debugger.contains("debugger_on_panic"));
        assert!(!debugger.contains("panic_reboot_wait_time"));
    }

    #[test]
    fn tcg_calibrates_the_tsc_and_kvm_does_not() {
        let tcg = freebsd_cmdline(
            AccelChoice::Tcg,
            "t",
            Some("/vmlane/init"),
            false,
            false,
            &[],
        );
        assert!(tcg.contains("machdep.disable_tsc_calibration=0"));
        let kvm = freebsd_cmdline(AccelChoice::Kvm, "t", None, false, false, &[]);
        assert!(!kvm.contains("disable_tsc_calibration"));
        assert!(!kvm.contains("init_path"));
    }

    #[test]
    fn user_words_come_last_so_they_win() {
        let line = freebsd_cmdline(
            AccelChoice::Tcg,
            "abc",
            Some("/vmlane/init"),
            false,
            false,
            &["boot_verbose".into(), "debug.debugger_on_panic=1".into()],
        );
        assert!(line.starts_with("vfs.root.mountfrom=ufs:/dev/vtbd0 "));
        assert!(line.contains(" vmlane.token=abc init_path=/vmlane/init "));
        assert!(line.ends_with(" boot_verbose debug.debugger_on_panic=1"));
    }

    #[test]
    fn the_clocks_are_hinted_as_device_hints_has_them() {
        for accel in [AccelChoice::Tcg, AccelChoice::Kvm] {
            let line = freebsd_cmdline(accel, "t", None, false, false, &[]);
            assert!(
                line.contains(
                    " hint.attimer.0.at=isa hint.attimer.0.port=0x40 hint.attimer.0.irq=0 "
                ),
                "{line}"
            );
            assert!(
                line.contains(" hint.atrtc.0.at=isa hint.atrtc.0.port=0x70 hint.atrtc.0.irq=8 "),
                "{line}"
            );
        }
    }

    #[test]
    fn a_run_with_a_channel_gets_com2s_hints_in_generic_hints_form() {
        let without = freebsd_cmdline(AccelChoice::Tcg, "t", None, false, false, &[]);
        assert!(!without.contains("hint.uart.1"), "{without}");
        let with = freebsd_cmdline(AccelChoice::Tcg, "t", None, false, true, &[]);
        assert!(
            with.contains(" hint.uart.1.at=isa hint.uart.1.port=0x2F8 hint.uart.1.irq=3 "),
            "{with}"
        );
        assert!(
            !with.contains("hint.uart.0"),
            "COM1 is the kernel's own: {with}"
        );
    }
}
