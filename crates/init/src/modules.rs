//! Loads the kernel modules the host packed into the initramfs, in the order it listed them.

use crate::console::{Failure, StepContext};
use crate::sys;
use std::fs::{self, File};
use std::os::fd::AsRawFd;

const LIST: &str = "/vmlane/modules.list";
const DIR: &str = "/vmlane/modules";

/// Loads every module in the list; one that is already loaded is fine.
pub fn load_listed_modules() -> Result<(), Failure> {
    let list = match fs::read_to_string(LIST) {
        Ok(list) => list,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Failure::new(format!("read {LIST}"), e)),
    };
    for name in list.lines().filter(|line| !line.is_empty()) {
        let path = format!("{DIR}/{name}");
        let file = File::open(&path).step(|| format!("open module {path}"))?;
        let params = sys::cstring("").expect("no NUL");
        // SAFETY: valid fd and an empty parameter string; the kernel reads the module from the fd.
        let ret = unsafe {
            libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0)
                as libc::c_int
        };
        match sys::check(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            result => {
                result.step(|| format!("load module {name}"))?;
            }
        }
        // The initramfs is memory; drop the module file once the kernel has its copy.
        let _ = fs::remove_file(&path);
    }
    Ok(())
}
