//! The report files of a run, kept valid at every moment: JSON lines are appended and
//! flushed as records come; whole documents (JUnit, KTAP, KCIDB) are rewritten into a
//! temporary file and renamed over the old one each time a case ends.

use crate::result::Record;
use crate::Report;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a temporary file in the same directory, so a reader
/// (or a run killed mid-write) sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = File::create(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_data()?;
        drop(file);
        std::fs::rename(&temporary, path)
    });
    // A full disk must not leave the half-written temporary behind.
    written.inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// A JSON-lines file of [`Record`]s, each line flushed as it is written.
pub struct JsonLines {
    file: File,
}

impl JsonLines {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> io::Result<JsonLines> {
        Ok(JsonLines {
            file: File::create(path)?,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        write_record(&mut self.file, record)
    }
}

/// One record as one line.
pub fn write_record(out: &mut dyn Write, record: &Record) -> io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// The files a run was asked for (`--json`, `--junit`, `--tap`, `--kcidb`).
#[derive(Default)]
pub struct ReportFiles {
    json: Vec<JsonLines>,
    junit: Option<PathBuf>,
    tap: Option<PathBuf>,
    kcidb: Option<(PathBuf, String)>,
}

impl ReportFiles {
    /// Opens every JSON-lines file now, so a bad path fails before any VM starts.
    pub fn open(
        json: &[&Path],
        junit: Option<&Path>,
        tap: Option<&Path>,
        kcidb: Option<(&Path, &str)>,
    ) -> io::Result<ReportFiles> {
        let json = json
            .iter()
            .map(|path| {
                JsonLines::create(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })
            .collect::<io::Result<_>>()?;
        Ok(ReportFiles {
            json,
            junit: junit.map(Path::to_path_buf),
            tap: tap.map(Path::to_path_buf),
            kcidb: kcidb.map(|(path, origin)| (path.to_path_buf(), origin.to_string())),
        })
    }

    /// Records `record` (already applied to `report`) in every file.
    pub fn record(&mut self, record: &Record, report: &Report) -> io::Result<()> {
        self.append(record)?;
        self.rewrite(report)
    }

    /// Appends `record` to the JSON-lines files only; [`ReportFiles::rewrite`] brings the
    /// others up to date.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        for file in &mut self.json {
            file.write(record)?;
        }
        Ok(())
    }

    /// Rewrites the whole-document reports from `report`.
    pub fn rewrite(&self, report: &Report) -> io::Result<()> {
        if let Some(path) = &self.junit {
            write_atomically(path, crate::junit::junit(report).as_bytes())?;
        }
        if let Some(path) = &self.tap {
            write_atomically(path, crate::ktap::ktap(report).as_bytes())?;
        }
        if let Some((path, origin)) = &self.kcidb {
            let value = crate::kcidb::kcidb(report, origin);
            let text = serde_json::to_vec_pretty(&value).map_err(io::Error::other)?;
            write_atomically(path, &text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fixtures, read_run};

    #[test]
    fn the_files_hold_every_record_and_read_back_as_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("results.jsonl");
        let junit = dir.path().join("junit.xml");
        let tap = dir.path().join("results.tap");
        let kcidb = dir.path().join("kcidb.json");
        let full = fixtures::report();
        let mut files = ReportFiles::open(
            &[&json],
            Some(&junit),
            Some(&tap),
            Some((&kcidb, "vmlane_ci")),
        )
        .unwrap();
        let mut report = crate::Report::new(full.run.clone());
        files
            .record(&Record::Start(full.run.clone()), &report)
            .unwrap();
        for result in &full.results {
            report.add(result.clone());
            files
                .record(&Record::Result(Box::new(result.clone())), &report)
                .unwrap();
            // Between cases, every file is whole.
            assert!(std::fs::read_to_string(&junit)
                .unwrap()
                .ends_with("</testsuites>\n"));
            assert!(std::fs::read_to_string(&tap)
                .unwrap()
                .contains("# vmlane: the run was still going"));
        }
        report.end = full.end.clone();
        files
            .record(&Record::End(full.end.clone().unwrap()), &report)
            .unwrap();
        assert_eq!(read_run(&json).unwrap(), full);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn an_unwritable_json_path_fails_when_opened() {
        let error = ReportFiles::open(&[Path::new("/nonexistent/dir/r.jsonl")], None, None, None)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("/nonexistent/dir/r.jsonl"),
            "{error}"
        );
    }
}
