//! What a guest restored from a snapshot would otherwise keep from the moment the snapshot
//! was taken: its wall clock, its random generator's state and timers QEMU never re-armed.
//! The clock and entropy come from the host with every request, so cold and restored guests
//! alike start from the host's, and the timers are programmed again then.

use crate::console::{Failure, StepContext};
use crate::sys::check;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// `_IOW('R', 0x03, int[2])`: add bytes to the input pool, crediting their entropy.
const RNDADDENTROPY: libc::c_ulong = ioctl_number(IOC_WRITE, 8, 0x03);
/// `_IO('R', 0x07)`: reseed the generator from the pool now, not on its schedule.
const RNDRESEEDCRNG: libc::c_ulong = ioctl_number(IOC_NONE, 0, 0x07);

/// The direction bits of an ioctl number: POWER's differ from the generic ones the other
/// guests share (`arch/powerpc/include/uapi/asm/ioctl.h`).
const POWER: bool = cfg!(target_arch = "powerpc64");
const IOC_NONE: libc::c_ulong = if POWER { 1 } else { 0 };
const IOC_WRITE: libc::c_ulong = if POWER { 4 } else { 1 };

/// `_IOC(dir, 'R', nr, size)` for the random device; the direction sits at bit 29 on POWER,
/// above a 13-bit size, and at bit 30 elsewhere, above a 14-bit one.
const fn ioctl_number(dir: libc::c_ulong, size: libc::c_ulong, nr: libc::c_ulong) -> libc::c_ulong {
    let dir_shift = if POWER { 29 } else { 30 };
    (dir << dir_shift) | (size << 16) | ((b'R' as libc::c_ulong) << 8) | nr
}

/// Sets the wall clock to the host's.
pub fn set_wall_clock(ns: u64) -> Result<(), Failure> {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    check(unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) })
        .map(drop)
        .step(|| "set the wall clock".into())
}

/// Whether QEMU restores this architecture's guests with their timers unarmed: riscv64's
/// ACLINT, and POWER's decrementer before QEMU 10.0. Elsewhere the re-arm is not needed, and
/// on a kernel with a periodic tick alone it waits for each CPU's next tick (0.5-4 ms a CPU
/// on vmlane's x86-64 kernel, on every run).
pub const TIMERS_LOST_IN_RESTORE: bool =
    cfg!(any(target_arch = "riscv64", target_arch = "powerpc64"));

/// Has every CPU program its timer afresh. QEMU does not re-arm the timer device of a
/// restored guest (seen on riscv64's ACLINT, and on POWER's decrementer with QEMU 7.2): an
/// event set before the save never fires, and a later one is never programmed, so the
/// guest's next sleep never ends. A sleep until a moment long past is earlier than any
/// pending event, even one the restore left behind the clock, so each CPU in turn programs
/// its timer at once and runs what had expired.
pub fn rearm_timers() -> Result<(), Failure> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is plain data, valid zeroed.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `allowed` is a writable `cpu_set_t` of `size` bytes.
    check(unsafe { libc::sched_getaffinity(0, size, &mut allowed) })
        .step(|| "read the CPUs the init may run on".into())?;
    for cpu in 0..libc::CPU_SETSIZE as usize {
        // SAFETY: `cpu` is below CPU_SETSIZE, the size of the set.
        if !unsafe { libc::CPU_ISSET(cpu, &allowed) } {
            continue;
        }
        // SAFETY: as above.
        let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::CPU_SET(cpu, &mut only) };
        // SAFETY: `only` is a valid `cpu_set_t` of `size` bytes.
        check(unsafe { libc::sched_setaffinity(0, size, &only) })
            .step(|| format!("move the init to CPU {cpu}"))?;
        sleep_until_long_past();
    }
    // SAFETY: `allowed` is the set read above.
    check(unsafe { libc::sched_setaffinity(0, size, &allowed) })
        .map(drop)
        .step(|| "let the init run on every CPU again".into())
}

/// A sleep cut short by a signal has still programmed the timer, so its result is no matter.
/// A relative sleep is not enough: if the restored clock has passed the lost event, a sleep
/// ending after it is queued behind it and never programmed.
fn sleep_until_long_past() {
    let boot = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1,
    };
    // SAFETY: `boot` is a valid timespec; an absolute sleep has no remainder.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &boot,
            std::ptr::null_mut(),
        )
    };
}

/// Mixes the host's bytes into the kernel's pool and reseeds from it.
pub fn reseed(entropy: &[u8]) -> Result<(), Failure> {
    let random = OpenOptions::new()
        .write(true)
        .open("/dev/urandom")
        .step(|| "open /dev/urandom".into())?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let mut info = Vec::with_capacity(8 + entropy.len());
    info.extend_from_slice(&((entropy.len() * 8) as i32).to_ne_bytes());
    info.extend_from_slice(&(entropy.len() as i32).to_ne_bytes());
    info.extend_from_slice(entropy);
    // SAFETY: `info` is laid out as the kernel's rand_pool_info and lives through the call.
    check(unsafe { libc::ioctl(random.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) })
        .step(|| "add the host's entropy".into())?;
    // SAFETY: takes no argument.
    check(unsafe { libc::ioctl(random.as_raw_fd(), RNDRESEEDCRNG) })
        .step(|| "reseed the random generator".into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_ioctls_are_the_kernels_numbers_for_this_architecture() {
        if POWER {
            assert_eq!((RNDADDENTROPY, RNDRESEEDCRNG), (0x8008_5203, 0x2000_5207));
        } else {
            assert_eq!((RNDADDENTROPY, RNDRESEEDCRNG), (0x4008_5203, 0x5207));
        }
    }
}
