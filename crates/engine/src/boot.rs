//! Step 6, boot: the backend is built from the plan, the same way for every guest OS; the run
//! starts from a saved, ready guest where one matches, else it boots (and may save its ready
//! guest for later runs); the one session loop runs the VM to its end.

use crate::event::LaunchEvent;
use crate::host::Host;
use crate::plan::{BackendPlan, GuestPlan, Plan};
use crate::result::Finished;
use crate::snapshot::{Key, Saved, Snapshots, Start};
use crate::stage::Staged;
use crate::Error;
use std::io::Write;
use vmlane_backend::{
    run_session, Backend, ConsoleLog, GuestChannel, GuestRam, Machine, Session, SessionError,
    Snapshotting, StopSignals, Timings, Turn, TurnWait, RESTORED_ANSWER_LIMIT,
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
    /// When the command may start, for a run readied ahead of its turn: a guest restored
    /// from a saved one gets ready before it; any other start waits for it.
    pub turn: Option<&'a Turn>,
}

/// Boots the staged VM, or restores it, and runs it to its end. The staged files go when
/// this returns.
pub fn boot(
    plan: &Plan,
    mut staged: Staged,
    host: &Host,
    mut io: Io<'_>,
    events: &dyn Fn(LaunchEvent),
) -> Result<Finished, Error> {
    if let Some(signal) = io.signals.received() {
        return Ok(interrupted(signal));
    }
    let backend = backend(&plan.vm.backend, plan);
    let snapshots = Snapshots::new(&host.cache_dir);
    let machine = machine(plan, &staged);
    let key = backend.snapshot_key(&machine).map(|mut parts| {
        let version = host.qemu.as_ref().ok().and_then(|q| q.version.clone());
        parts.push(("QEMU version".into(), version.unwrap_or_default()));
        Key::new(parts)
    });
    // A run with a turn gets ready before it only by restoring a saved guest.
    let restorable = || {
        matches!(plan.guest, GuestPlan::Linux(_))
            && plan.vm.warm.is_ok()
            && key.as_ref().is_some_and(|key| snapshots.holds(key))
    };
    if io.turn.is_some() && !restorable() {
        if let Some(stopped) = wait_for_turn(&io) {
            return Ok(stopped);
        }
    }
    let start = match (&plan.vm.warm, &key) {
        (Err(reason), _) => Start::Cold(reason.to_string()),
        (Ok(()), None) => Start::Cold("this backend cannot save guests".into()),
        (Ok(()), Some(key)) => snapshots.decide(key, plan.vm.save_on_first_use),
    };
    events(LaunchEvent::Detail(start.describe()));
    // Held until now, so a taken port failed the run before it booted.
    staged.ports.clear();
    let booter = Booter {
        backend: &*backend,
        plan,
        staged: &staged,
        snapshots: &snapshots,
        key: key.as_ref(),
    };
    let ended = match start {
        Start::Warm(saved) => match booter.restore(machine.clone(), &saved, &mut io) {
            Err(SessionError::RestoreFailed(said)) => {
                snapshots.discard(&saved);
                // QEMU's last words, not those of its helpers that follow them.
                let qemu_said = said.split("\nvirtiofsd: ").next().unwrap_or_default();
                let why = qemu_said
                    .lines()
                    .rfind(|line| !line.trim().is_empty())
                    .unwrap_or("QEMU said nothing");
                events(LaunchEvent::Notice(format!(
                    "the saved guest for this configuration could not be restored ({why}); it was deleted and this run boots"
                )));
                io.console.restart().map_err(|source| Error::ConsoleLog {
                    path: io.console.path().to_path_buf(),
                    source,
                })?;
                if let Some(stopped) = wait_for_turn(&io) {
                    return Ok(stopped);
                }
                // Saved again, to replace it.
                let replace = key.as_ref().map_or(Start::Cold(String::new()), |key| {
                    snapshots.decide(key, true)
                });
                booter.cold(machine, replace, &mut io)
            }
            other => other,
        },
        cold => booter.cold(machine, cold, &mut io),
    };
    drop(staged);
    match ended {
        // The kernel's debug info is the launch's to add: booting never needs it.
        Ok((outcome, timings)) => Ok(Finished {
            outcome,
            timings,
            debug_info: None,
        }),
        Err(SessionError::Backend(error)) => Err(Error::Backend(error)),
        Err(error) => Err(Error::Session(error)),
    }
}

/// Waits for the run's turn, if it has one; how the run ended when it is to stop instead.
pub(crate) fn wait_for_turn(io: &Io<'_>) -> Option<Finished> {
    match io.turn?.wait(io.signals) {
        TurnWait::Go => None,
        TurnWait::Stop(signal) => Some(interrupted(signal)),
    }
}

/// A run ended by `signal` before its VM started.
fn interrupted(signal: i32) -> Finished {
    Finished {
        outcome: Outcome::Interrupted(signal),
        timings: Timings::default(),
        debug_info: None,
    }
}

/// What every start of this run's VM shares.
struct Booter<'a> {
    backend: &'a dyn Backend,
    plan: &'a Plan,
    staged: &'a Staged,
    snapshots: &'a Snapshots,
    key: Option<&'a Key>,
}

impl Booter<'_> {
    /// Starts from a saved guest; its boot console heads the log.
    fn restore(
        &self,
        machine: Machine,
        saved: &Saved,
        io: &mut Io<'_>,
    ) -> Result<(Outcome, Timings), SessionError> {
        let guest_ram = saved.ram.clone().map(GuestRam::SavedIn);
        let restored = Machine {
            restore_from: Some(saved.state.clone()),
            control_socket: Some(self.staged.run_dir.join("qmp.sock")),
            guest_ram,
            ..machine
        };
        let snapshot = Snapshotting::Restored {
            console: saved.console.clone(),
            answer_within: RESTORED_ANSWER_LIMIT,
        };
        self.session(restored, snapshot, io)
    }

    /// Boots, saving the ready guest when `start` says so; only a complete save is kept.
    fn cold(
        &self,
        machine: Machine,
        start: Start,
        io: &mut Io<'_>,
    ) -> Result<(Outcome, Timings), SessionError> {
        let (Start::ColdSaving(pending, _), Some(key)) = (start, self.key) else {
            // Nothing is saved: the shares' devices can be there from the start.
            let mut plain = machine;
            for share in plain.share.iter_mut().chain(plain.rwdirs.iter_mut()) {
                share.plugged_later = false;
            }
            return self.session(plain, Snapshotting::Off, io);
        };
        // RAM the backend holds is saved by copying it rather than streaming it, and restored
        // by mapping the copy; a guest whose RAM is split in NUMA nodes streams it.
        let guest_ram = self.plan.vm.numa.is_empty().then_some(GuestRam::Saveable);
        let saving = Machine {
            control_socket: Some(self.staged.run_dir.join("qmp.sock")),
            guest_ram,
            ..machine
        };
        let snapshot = Snapshotting::Save {
            state: pending.state.clone(),
            ram: pending.ram.clone(),
            console: pending.console.clone(),
        };
        let ended = self.session(saving, snapshot, io);
        if pending.state.is_file() && pending.console.is_file() {
            let _ = self.snapshots.commit(pending, key);
        } else {
            self.snapshots.abandon(pending);
        }
        ended
    }

    fn session(
        &self,
        machine: Machine,
        snapshot: Snapshotting,
        io: &mut Io<'_>,
    ) -> Result<(Outcome, Timings), SessionError> {
        let session = Session {
            machine,
            channel: channel(&self.plan.guest, self.staged),
            timeout: self.plan.vm.timeout,
            turn: io.turn,
            stdout: &mut *io.stdout,
            stderr: &mut *io.stderr,
            console: &mut *io.console,
            signals: io.signals,
            snapshot,
        };
        run_session(self.backend, session)
    }
}

fn backend(plan: &BackendPlan, whole: &Plan) -> Box<dyn Backend> {
    match plan {
        BackendPlan::Qemu {
            program, virtiofsd, ..
        } => Box::new(QemuBackend {
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
    let port = match &plan.guest {
        GuestPlan::Linux(_) => true,
        GuestPlan::FreeBsd(freebsd) => freebsd.channel,
    };
    let port = port.then(|| staged.run_dir.join("port.sock"));
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
        rwdirs: plan.vm.rwdirs.clone(),
        disks: staged.disks.clone(),
        run_dir: staged.run_dir.path().to_path_buf(),
        restore_from: None,
        control_socket: None,
        guest_ram: None,
    }
}

/// How the guest learns what to run: Linux's init asks over the port (with the host setup's
/// scratch directory in its environment); FreeBSD's guest asks over its port when it has one,
/// and otherwise has it on a disk.
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
            framed: freebsd.channel,
            request: freebsd.request.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake;
    use crate::kernel::fake::{freebsd, FIRECRACKER};
    use crate::request::Request;
    use vmlane_backend::{Disk, RunDir};
    use vmlane_qemu::{qemu_args, HostKvm, MachineKind};

    /// A FreeBSD image run on `host`, planned and "staged" in `dir` without files.
    fn image_run(dir: &std::path::Path, host: &Host) -> (Plan, Staged) {
        let mut request = Request::new(vec!["/usr/bin/id".into()], "/work".into());
        request.freebsd.image = Some("freebsd.img".into());
        let kernel = freebsd(FIRECRACKER, 32 << 20);
        let plan = crate::plan::plan(&request, kernel, host, "tok").unwrap();
        let run_dir = RunDir::create_in(dir).unwrap();
        let disks = vec![
            Disk::throwaway("/work/freebsd.img"),
            Disk::throwaway(run_dir.join("run.disk")),
        ];
        let staged = Staged {
            run_dir,
            kernel: "/cache/boot/vmlane-freebsd-boot".into(),
            initrd: Some("/kernel".into()),
            disks,
            scratch: None,
            ports: Vec::new(),
            notes: Vec::new(),
        };
        (plan, staged)
    }

    #[test]
    fn an_image_run_on_qemu_gets_com2_and_reads_its_results_as_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, staged) = image_run(dir.path(), &fake::host(HostKvm::Pvm));
        let machine = machine(&plan, &staged);
        assert_eq!(
            machine.port_socket,
            Some(staged.run_dir.join("port.sock")),
            "COM2's socket"
        );
        let args: Vec<String> = qemu_args(&machine, MachineKind::Microvm, plan.vm.accel)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.iter().any(|a| a == "isa-serial,chardev=port,index=1"),
            "{args:?}"
        );
        let disks = args.iter().filter(|a| a.starts_with("virtio-blk")).count();
        assert_eq!(disks, 2, "the image and the run disk: {args:?}");
        assert!(matches!(
            channel(&plan.guest, &staged),
            GuestChannel::Console { framed: true, .. }
        ));
    }

    #[test]
    fn an_image_run_on_bhyve_has_no_port_and_reads_its_results_from_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, staged) = image_run(dir.path(), &fake::bhyve_host());
        assert!(matches!(plan.vm.backend, BackendPlan::Bhyve(_)));
        assert_eq!(machine(&plan, &staged).port_socket, None);
        assert!(matches!(
            channel(&plan.guest, &staged),
            GuestChannel::Console { framed: false, .. }
        ));
    }
}
