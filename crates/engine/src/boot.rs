//! Step 6, boot: the backend is built from the plan, the same way for every guest OS, and the
//! one session loop runs the VM to its end.

use crate::plan::{BackendPlan, GuestPlan, Plan};
use crate::result::Finished;
use crate::stage::Staged;
use crate::Error;
use std::io::Write;
use vmlane_backend::{
    run_session, Backend, ConsoleLog, GuestChannel, Machine, Session, SessionError, StopSignals,
    Timings,
};
use vmlane_qemu::QemuBackend;
use vmlane_spec::Outcome;

/// Where a run's output goes, and what stops it.
pub struct Io<'a> {
    /// The command's stdout.
    pub stdout: &'a mut dyn Write,
    /// The command's stderr.
    pub stderr: &'a mut dyn Write,
    /// The guest console.
    pub console: &'a mut ConsoleLog,
    /// SIGINT and SIGTERM, already caught; one received before the VM starts ends the run
    /// as [`Outcome::Interrupted`].
    pub signals: &'a StopSignals,
}

/// Boots the staged VM and runs it to its end. The staged files go when this returns.
pub fn boot(plan: &Plan, mut staged: Staged, io: Io<'_>) -> Result<Finished, Error> {
    if let Some(signal) = io.signals.received() {
        return Ok(Finished {
            outcome: Outcome::Interrupted(signal),
            timings: Timings::default(),
        });
    }
    let backend = backend(&plan.vm.backend, plan);
    let session = Session {
        machine: machine(plan, &staged),
        channel: channel(&plan.guest, &staged),
        timeout: plan.vm.timeout,
        stdout: io.stdout,
        stderr: io.stderr,
        console: io.console,
        signals: io.signals,
    };
    // Held until now, so a taken port failed the run before it booted.
    staged.ports.clear();
    let result = run_session(backend.as_ref(), session);
    drop(staged);
    match result {
        Ok((outcome, timings)) => Ok(Finished { outcome, timings }),
        Err(SessionError::Backend(error)) => Err(Error::Backend(error)),
        Err(error) => Err(Error::Session(error)),
    }
}

fn backend(plan: &BackendPlan, whole: &Plan) -> Box<dyn Backend> {
    match plan {
        BackendPlan::Qemu { program, virtiofsd } => Box::new(QemuBackend {
            qemu: program.clone(),
            accel: whole.vm.accel,
            virtiofsd: virtiofsd.clone(),
            machine: whole.vm.machine,
            network: whole.vm.network.clone(),
            gdb: whole.vm.gdb,
            numa: whole.vm.numa.clone(),
        }),
        BackendPlan::Bhyve(bhyve) => Box::new(bhyve.clone()),
    }
}

fn machine(plan: &Plan, staged: &Staged) -> Machine {
    let port = matches!(plan.guest, GuestPlan::Linux(_)).then(|| staged.run_dir.join("port.sock"));
    Machine {
        os: plan.os(),
        kernel: staged.kernel.clone(),
        initrd: staged.initrd.clone(),
        cmdline: plan.vm.cmdline.clone(),
        cpus: plan.vm.cpus,
        memory_mib: plan.vm.memory_mib,
        console_socket: staged.run_dir.join("console.sock"),
        port_socket: port,
        share: plan.vm.share.clone(),
        disks: staged.disks.clone(),
        run_dir: staged.run_dir.path().to_path_buf(),
    }
}

/// How the guest learns what to run: Linux's init asks over the port (with the host setup's
/// scratch directory in its environment); FreeBSD's guest has it on a disk.
fn channel(guest: &GuestPlan, staged: &Staged) -> GuestChannel {
    match guest {
        GuestPlan::Linux(linux) => {
            let mut run = linux.run.clone();
            if let Some(scratch) = &staged.scratch {
                let entry = [
                    b"VMLANE_SCRATCH=",
                    scratch.path().as_os_str().as_encoded_bytes(),
                ];
                run.env.insert(0, entry.concat());
            }
            GuestChannel::Port(run)
        }
        GuestPlan::FreeBsd(freebsd) => GuestChannel::Console {
            token: freebsd.token.clone(),
            debugger: freebsd.debugger,
        },
    }
}
