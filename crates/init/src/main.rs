//! vmlane's guest init. It runs as PID 1 from the initramfs; every step returns a [`Failure`]
//! naming the step, which reaches the console and the host before the VM goes down.

mod command;
mod console;
mod fresh;
mod modules;
mod mounts;
mod port;
mod pty;
mod shell;
mod sys;

use console::Failure;
use port::Port;
use vmlane_proto::{GuestMessage, HostMessage};

fn main() {
    console::install_crash_reporting();
    let mut port = None;
    if let Err(failure) = run(&mut port) {
        console::report(&failure, port.as_mut());
        if let Some(port) = port.as_mut() {
            port.wait_for_host_to_hang_up();
        }
    }
    sys::power_off();
}

/// The whole life of the guest, one step a line.
fn run(port_slot: &mut Option<Port>) -> Result<(), Failure> {
    let mut marks = vec![("init started", sys::boot_ns())];
    mounts::mount_early_filesystems()?;
    modules::load_listed_modules()?;
    marks.push(("modules loaded", sys::boot_ns()));
    let port = port_slot.insert(Port::open()?);
    for (name, boot_ns) in marks {
        port.send(&GuestMessage::Mark {
            name: name.into(),
            boot_ns,
        })?;
    }
    port.send(&GuestMessage::Ready)?;
    let request = receive_request(port)?;
    mounts::enter_root(&request)?;
    port.mark("root ready")?;
    wait_for_start(port)?;
    let status = command::run(&request, port)?;
    mounts::sync_rwdirs(&request)?;
    port.send(&GuestMessage::Exit(status))?;
    port.wait_for_host_to_hang_up();
    Ok(())
}

/// The host's request, after the clock and entropy it sends first: a guest restored from a
/// snapshot resumes here.
fn receive_request(port: &mut Port) -> Result<vmlane_proto::RunRequest, Failure> {
    loop {
        match port.receive()? {
            HostMessage::Prepare {
                wall_clock_ns,
                entropy,
            } => {
                fresh::set_wall_clock(wall_clock_ns)?;
                fresh::reseed(&entropy)?;
                if fresh::TIMERS_LOST_IN_RESTORE {
                    fresh::rearm_timers()?;
                }
            }
            HostMessage::Run(request) => return Ok(request),
            _ => {
                return Err(Failure::new(
                    "read the run request",
                    "the host sent input before the request",
                ))
            }
        }
    }
}

/// The host's go: a run readied ahead of its turn waits here with its root mounted.
fn wait_for_start(port: &mut Port) -> Result<(), Failure> {
    match port.receive()? {
        HostMessage::Start => Ok(()),
        _ => Err(Failure::new(
            "wait for the host to start the command",
            "the host sent something else first",
        )),
    }
}
