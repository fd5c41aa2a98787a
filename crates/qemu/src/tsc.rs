//! The host's TSC frequency. Under TCG the guest reads the host's TSC, and its own calibration
//! against the emulated PIT fails when the host is busy: the kernel then marks the TSC unstable,
//! falls back to jiffies and spends a delay-loop calibration. Telling it the frequency
//! (`tsc_early_khz=`) makes every boot take the same path.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long the measurement runs: 0.1% accuracy is plenty for the kernel.
const SAMPLE: Duration = Duration::from_millis(20);

/// The host TSC frequency in kHz, measured once per host boot and kept under `cache_dir`.
/// `None` where the TSC does not tick at a constant rate.
pub fn host_tsc_khz(cache_dir: &Path) -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?;
    let constant = flags.split_whitespace().any(|f| f == "constant_tsc")
        && flags.split_whitespace().any(|f| f == "nonstop_tsc");
    if !constant {
        return None;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot_id = boot_id.trim();
    let cache = cache_dir.join("host-tsc-khz");
    if let Some(khz) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|text| cached_khz(&text, boot_id))
    {
        return Some(khz);
    }
    let khz = measure()?;
    let _ = std::fs::create_dir_all(cache_dir);
    let _ = std::fs::write(&cache, format!("{boot_id} {khz}\n"));
    Some(khz)
}

fn cached_khz(text: &str, boot_id: &str) -> Option<u64> {
    let (id, khz) = text.trim().split_once(' ')?;
    (id == boot_id).then(|| khz.parse().ok()).flatten()
}

#[cfg(target_arch = "x86_64")]
fn measure() -> Option<u64> {
    // SAFETY: rdtsc has no memory effects; every x86_64 CPU has it.
    let read = || unsafe { std::arch::x86_64::_rdtsc() };
    let (start_tsc, start) = (read(), Instant::now());
    std::thread::sleep(SAMPLE);
    let (end_tsc, elapsed) = (read(), start.elapsed());
    let khz = u128::from(end_tsc.checked_sub(start_tsc)?) * 1_000_000 / elapsed.as_micros().max(1);
    u64::try_from(khz / 1000).ok().filter(|&khz| khz > 100_000)
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_value_counts_only_for_the_same_host_boot() {
        assert_eq!(cached_khz("abc 2445404\n", "abc"), Some(2445404));
        assert_eq!(cached_khz("abc 2445404\n", "def"), None);
        assert_eq!(cached_khz("garbage", "abc"), None);
    }

    #[test]
    fn the_measurement_is_cached_and_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let Some(khz) = host_tsc_khz(dir.path()) else {
            eprintln!("skipped: this host's TSC is not constant");
            return;
        };
        assert!((100_000..20_000_000).contains(&khz), "{khz} kHz");
        let text = std::fs::read_to_string(dir.path().join("host-tsc-khz")).unwrap();
        assert!(text.trim_end().ends_with(&format!(" {khz}")), "{text}");
        assert_eq!(host_tsc_khz(dir.path()), Some(khz), "read back");
    }
}
