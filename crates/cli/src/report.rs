//! Where results go as cases end: the human view on stderr (a bar on a terminal), the chosen
//! format on stdout, and the report files; and `vmlane report merge`, which makes the same
//! reports from the results of a partitioned run's shards.

use crate::args::{MergeArgs, ReportCommand, ReportFileArgs, ReportFormat};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use vmlane_report::{
    human, junit, ktap, merge, read_run, CaseResult, Record, Report, ReportFiles, RunEnd, RunInfo,
};
use vmlane_spec::exit_code;
use vmlane_suite::Status;

/// The results file every run leaves in its results directory, which merges read.
pub const RESULTS_FILE: &str = "results.jsonl";

/// Reports one run as it goes.
pub struct Reporter {
    report: Report,
    files: ReportFiles,
    format: ReportFormat,
    bar: Option<indicatif::ProgressBar>,
    /// KTAP on stdout numbers cases in the order they end.
    tap_number: usize,
    /// The first report file that could not be written; the run goes on and fails at the end.
    write_error: Option<String>,
}

impl Reporter {
    /// Opens every report file (a bad path fails here, before any VM) and reports the start.
    pub fn start(
        run: RunInfo,
        format: ReportFormat,
        file_args: &ReportFileArgs,
        results_file: Option<&Path>,
        bar: Option<indicatif::ProgressBar>,
    ) -> Result<Reporter> {
        let files = open_files(file_args, results_file)?;
        let mut reporter = Reporter {
            report: Report::new(run.clone()),
            files,
            format,
            bar,
            tap_number: 0,
            write_error: None,
        };
        let record = Record::Start(run);
        reporter.write_files(&record);
        let mut stdout = std::io::stdout().lock();
        match format {
            ReportFormat::Json => {
                reporter.checked(vmlane_report::write_record_to(&mut stdout, &record))
            }
            ReportFormat::Tap => {
                let header = ktap::header(&reporter.report);
                reporter.checked(
                    stdout
                        .write_all(header.as_bytes())
                        .and_then(|()| stdout.flush()),
                )
            }
            _ => {}
        }
        Ok(reporter)
    }

    /// A case ended: every view and file learns of it now.
    pub fn case_ended(&mut self, result: CaseResult) {
        let line = human::line(&result);
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => eprintln!("{line}"),
        }
        let mut stdout = std::io::stdout().lock();
        match self.format {
            ReportFormat::Json => {
                let record = Record::Result(Box::new(result.clone()));
                let written = vmlane_report::write_record_to(&mut stdout, &record);
                self.checked(written);
            }
            ReportFormat::Tap => {
                self.tap_number += 1;
                let text = ktap::case(self.tap_number, &result);
                self.checked(
                    stdout
                        .write_all(text.as_bytes())
                        .and_then(|()| stdout.flush()),
                );
            }
            _ => {}
        }
        drop(stdout);
        self.report.add(result.clone());
        self.write_files(&Record::Result(Box::new(result)));
    }

    /// The results so far, in matrix order.
    pub fn results(&self) -> &[CaseResult] {
        &self.report.results
    }

    /// The run ended: the end is marked everywhere and the summary printed. Fails if a report
    /// file could not be written at some point.
    pub fn finish(mut self, end: RunEnd, results_dir: &Path) -> Result<Report> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.report.end = Some(end.clone());
        self.write_files(&Record::End(end.clone()));
        let summary = human::summary(&self.report.results, &end, results_dir);
        let mut stdout = std::io::stdout().lock();
        match self.format {
            ReportFormat::Human => writeln!(stdout, "{summary}")?,
            ReportFormat::Json => {
                eprintln!("{summary}");
                vmlane_report::write_record_to(&mut stdout, &Record::End(end))?;
            }
            ReportFormat::Junit => {
                eprintln!("{summary}");
                stdout.write_all(junit::junit(&self.report).as_bytes())?;
            }
            ReportFormat::Tap => {
                eprintln!("{summary}");
                let mut text = String::new();
                for planned in self.report.not_run().cloned().collect::<Vec<_>>() {
                    self.tap_number += 1;
                    text.push_str(&ktap::not_run(self.tap_number, &planned, "not run"));
                }
                text.push_str(&format!("# vmlane: {}\n", self.report.state()));
                stdout.write_all(text.as_bytes())?;
            }
        }
        stdout.flush()?;
        if let Some(error) = self.write_error {
            bail!("{error}");
        }
        Ok(self.report)
    }

    fn write_files(&mut self, record: &Record) {
        let written = self.files.record(record, &self.report);
        self.checked(written);
    }

    fn checked(&mut self, written: std::io::Result<()>) {
        if let Err(error) = written {
            if self.write_error.is_none() {
                eprintln!("vmlane: cannot write a report: {error}");
                self.write_error = Some(format!("a report could not be written: {error}"));
            }
        }
    }
}

fn open_files(args: &ReportFileArgs, results_file: Option<&Path>) -> Result<ReportFiles> {
    let json: Vec<&Path> = results_file
        .into_iter()
        .chain(args.json.as_deref())
        .collect();
    ReportFiles::open(
        &json,
        args.junit.as_deref(),
        args.tap.as_deref(),
        args.kcidb
            .as_deref()
            .map(|p| (p, args.kcidb_origin.as_str())),
    )
    .context("failed to create a report file")
}

/// 130 if interrupted, 125 if vmlane could not run a case (its fault, not the kernel's), 1 if
/// a test failed or hung or did not run, 0 when every case ran and passed (flaky included).
pub fn suite_exit_code(results: &[CaseResult], cases: usize) -> i32 {
    let any = |status: Status| results.iter().any(|r| r.status == status);
    if any(Status::Interrupted) {
        130
    } else if any(Status::Error) {
        exit_code::VMLANE_FAILED
    } else if results.len() == cases && results.iter().all(CaseResult::passed) {
        0
    } else {
        1
    }
}

/// `vmlane report ...`.
pub fn report(command: ReportCommand) -> Result<i32> {
    match command {
        ReportCommand::Merge(args) => merge_command(args),
    }
}

/// Merges shards, writes the merged reports, and exits as the unsharded run would have, or
/// 125 when a shard is missing, doubled or cut short.
fn merge_command(args: MergeArgs) -> Result<i32> {
    let mut runs = Vec::new();
    for given in &args.dirs {
        let path: PathBuf = if given.is_dir() {
            given.join(RESULTS_FILE)
        } else {
            given.clone()
        };
        let run = read_run(&path)?;
        runs.push((path, run));
    }
    let merged = merge(runs)?;
    for problem in &merged.problems {
        eprintln!("vmlane: {problem}");
    }
    let report = merged.report;
    let end = report.end.clone().expect("a merge always ends its report");
    let mut files = open_files(&args.files, None)?;
    files.append(&Record::Start(report.run.clone()))?;
    for result in &report.results {
        files.append(&Record::Result(Box::new(result.clone())))?;
    }
    files.record(&Record::End(end.clone()), &report)?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        ReportFormat::Human => {
            for result in report.results.iter().filter(|r| r.status != Status::Passed) {
                writeln!(stdout, "{}", human::line(result))?;
            }
            let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
            writeln!(
                stdout,
                "{}",
                human::summary(&report.results, &end, Path::new(&dirs.join(" ")))
            )?;
        }
        ReportFormat::Json => {
            vmlane_report::write_record_to(&mut stdout, &Record::Start(report.run.clone()))?;
            for result in &report.results {
                vmlane_report::write_record_to(
                    &mut stdout,
                    &Record::Result(Box::new(result.clone())),
                )?;
            }
            vmlane_report::write_record_to(&mut stdout, &Record::End(end))?;
        }
        ReportFormat::Junit => stdout.write_all(junit::junit(&report).as_bytes())?,
        ReportFormat::Tap => stdout.write_all(ktap::ktap(&report).as_bytes())?,
    }
    stdout.flush()?;
    if !merged.problems.is_empty() {
        return Ok(exit_code::VMLANE_FAILED);
    }
    Ok(suite_exit_code(&report.results, report.run.planned.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmlane_report::PlannedCase;

    #[test]
    fn the_exit_code_tells_failed_tests_from_vmlane_failing() {
        let result = |status| {
            let planned = PlannedCase {
                index: 0,
                test: "t".into(),
                kernel: "6.1".into(),
            };
            let mut r = CaseResult::new(&planned, "s", None, Path::new("/r/t/6.1"));
            r.status = status;
            r
        };
        let code = |statuses: &[Status], cases| {
            let results: Vec<_> = statuses.iter().map(|s| result(*s)).collect();
            suite_exit_code(&results, cases)
        };
        assert_eq!(code(&[Status::Passed, Status::Passed], 2), 0);
        assert_eq!(code(&[Status::Passed, Status::Flaky], 2), 0);
        assert_eq!(code(&[Status::Passed], 2), 1, "a case without a result");
        assert_eq!(code(&[Status::Passed, Status::Failed], 2), 1);
        assert_eq!(code(&[Status::Hang, Status::Passed], 2), 1);
        assert_eq!(code(&[Status::Failed, Status::Error], 2), 125);
        assert_eq!(code(&[Status::Error, Status::Interrupted], 2), 130);
    }
}
