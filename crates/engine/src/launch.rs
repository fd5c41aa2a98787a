//! One run from request to result, a step a line. Every run takes this path: `vmlane run`,
//! `vmlane shell`, each case of `vmlane test`, and [`crate::Run`].

use crate::boot::{self, Io};
use crate::event::LaunchEvent;
use crate::host::Host;
use crate::request::Request;
use crate::result::{CappedBuffer, Captured, Finished};
use crate::{kernel, plan, stage, Error};
use std::io::Write;
use std::path::Path;
use vmlane_backend::{ConsoleLog, StopSignals, Turn};

/// Boots `request`'s kernel, runs its command and returns how it ended; `events` hears what
/// was found, decided and staged along the way.
pub fn launch(
    request: Request,
    io: Io<'_>,
    events: &dyn Fn(LaunchEvent),
) -> Result<Finished, Error> {
    // 1. The request, with its profiles applied under its own values.
    let request = request.with_profiles()?;
    // 2. The host, probed once per process.
    let host = Host::shared();
    // 3. The kernel, and everything the plan needs to know about it.
    let kernel = kernel::find(&request)?;
    events(LaunchEvent::Kernel {
        image: kernel.kernel.image.clone(),
        origin: kernel.kernel.origin,
        release: kernel.kernel.release.clone(),
        config: kernel.kernel.config.clone(),
        arch: kernel.kernel.format.arch(),
    });
    let debug_info = kernel.debug_info.clone();
    // 4. The plan: every decision, from the request, kernel and host alone.
    let plan = plan::plan(&request, kernel, host, &vmlane_proto::new_token())?;
    if let Some(notice) = &plan.vm.accel_notice {
        events(LaunchEvent::Notice(notice.clone()));
    }
    plan.describe()
        .into_iter()
        .for_each(|line| events(LaunchEvent::Detail(line)));
    // Host ports are one VM's at a time: a run that forwards some takes them on its turn.
    if !plan.vm.ports.is_empty() {
        if let Some(stopped) = boot::wait_for_turn(&io) {
            return Ok(stopped);
        }
    }
    // 5. Staging: files, disks and ports, each removed or released by its guard.
    let staged = stage::stage(&plan, host)?;
    staged
        .notes
        .iter()
        .for_each(|note| events(LaunchEvent::Detail(note.clone())));
    if let (Some(port), plan::GuestPlan::Linux(guest)) = (plan.vm.gdb, &plan.guest) {
        events(LaunchEvent::WaitingForDebugger {
            port,
            symbols: guest.symbols.clone(),
            kernel: plan.kernel.image.clone(),
            release: plan.kernel.release.clone(),
        });
    }
    // 6. Boot: the backend built from the plan, the session run to its end.
    let finished = boot::boot(&plan, staged, host, io, events)?;
    // 7. The result, with where the kernel's source lines are.
    Ok(Finished {
        debug_info,
        ..finished
    })
}

/// [`launch`] with stdout and stderr kept in memory and the console written to
/// `console_log`: what `vmlane test` and [`crate::Run`] check afterwards.
pub fn launch_captured(
    request: Request,
    console_log: &Path,
    events: &dyn Fn(LaunchEvent),
) -> Result<Captured, Error> {
    launch_captured_echoing(request, console_log, None, None, events)
}

/// [`launch_captured`] that also streams the console, then the command's stdout and stderr,
/// to sinks `echo` makes, as they come (`vmlane test -v`); the captures are the same. With a
/// `turn`, the command starts when the turn comes (see [`Io::turn`]).
pub fn launch_captured_echoing(
    request: Request,
    console_log: &Path,
    echo: Option<&dyn Fn() -> Box<dyn Write + Send>>,
    turn: Option<&Turn>,
    events: &dyn Fn(LaunchEvent),
) -> Result<Captured, Error> {
    let log_error = |source| Error::ConsoleLog {
        path: console_log.to_path_buf(),
        source,
    };
    let mut console = ConsoleLog::create(console_log).map_err(log_error)?;
    let signals = StopSignals::register().map_err(Error::Signals)?;
    let (mut stdout, mut stderr) = (CappedBuffer::default(), CappedBuffer::default());
    if let Some(echo) = echo {
        console.echo_to(echo());
    }
    let mut stdout_tee = Tee(&mut stdout, echo.map(|echo| echo()));
    let mut stderr_tee = Tee(&mut stderr, echo.map(|echo| echo()));
    let io = Io {
        stdout: &mut stdout_tee,
        stderr: &mut stderr_tee,
        console: &mut console,
        signals: &signals,
        turn,
    };
    let finished = launch(request, io, events)?;
    drop((stdout_tee, stderr_tee, console));
    let console = std::fs::read(console_log).map_err(log_error)?;
    Ok(Captured {
        outcome: finished.outcome,
        stdout: stdout.bytes,
        stderr: stderr.bytes,
        console: String::from_utf8_lossy(&console).into_owned(),
        debug_info: finished.debug_info,
    })
}

/// A capture, and maybe a stream of the same bytes that may fail without failing the run.
struct Tee<'a>(&'a mut CappedBuffer, Option<Box<dyn Write + Send>>);

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(echo) = &mut self.1 {
            let _ = echo.write_all(buf).and_then(|()| echo.flush());
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
