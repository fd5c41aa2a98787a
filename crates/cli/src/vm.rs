//! What `vmlane run` and `vmlane shell` make of their shared VM options: the launch (with
//! profiles applied under the flags) and the console log.

use crate::args::VmArgs;
use anyhow::{Context, Result};
use std::path::PathBuf;
use vmlane::launch::{BackendChoice, BootChoice, Launch, OsChoice};
use vmlane_backend::ConsoleLog;
use vmlane_spec::RunSpec;

impl VmArgs {
    /// The launch these options describe for `spec`: the profiles first, then the flags,
    /// which win. FreeBSD-only choices are left at their defaults for the caller to set.
    pub fn launch(&self, mut spec: RunSpec) -> Result<Launch> {
        let mut append = self.append.clone();
        crate::profile::apply(
            &self.profiles,
            &mut spec,
            &mut append,
            self.cpus,
            self.memory,
        )?;
        Ok(Launch {
            spec,
            kernel: self.kernel.clone(),
            modules: self.modules.clone(),
            machine: self.machine.into(),
            append,
            os: OsChoice::Auto,
            image: None,
            backend: BackendChoice::Auto,
            boot: BootChoice::Auto,
            debugger: false,
            keep_image: false,
        })
    }

    /// The console log: `--log`, or a new file under vmlane's cache.
    pub fn console_log(&self) -> Result<(PathBuf, ConsoleLog)> {
        let path = self
            .log
            .clone()
            .unwrap_or_else(|| crate::run::default_log_path(&vmlane_kernel::cache_dir()));
        let console = ConsoleLog::create(&path)
            .with_context(|| format!("failed to create the console log {}", path.display()))?;
        Ok((path, console))
    }
}
