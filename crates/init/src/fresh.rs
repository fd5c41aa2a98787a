//! What a guest restored from a snapshot would otherwise keep from the moment the snapshot
//! was taken: its wall clock and its random generator's state. Both come from the host with
//! every request, so cold and restored guests alike start from the host's.

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
