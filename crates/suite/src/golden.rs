//! A test's golden console log: compared after normalisation, or written ("blessed") from the
//! run under `--bless`. The comparison itself is vmlane-checks'; this adds the file handling.

use crate::judge::JudgeError;
use crate::model::Test;
use std::path::Path;
use vmlane_checks::golden::Normaliser;

/// Why the console does not match `golden` (none when it does, or when blessing).
pub(crate) fn golden_failures(
    test: &Test,
    golden: &Path,
    console: &str,
    bless: bool,
) -> Result<Vec<String>, JudgeError> {
    let mut normaliser = Normaliser::new();
    for substitution in &test.expect.substitutions {
        normaliser = normaliser
            .substitute(&substitution.regex, &substitution.replace)
            .map_err(|source| JudgeError::expectation(test, source))?;
    }
    if bless {
        if let Some(parent) = golden.parent() {
            std::fs::create_dir_all(parent).map_err(|source| JudgeError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(golden, normaliser.normalise(console)).map_err(|source| {
            JudgeError::Bless {
                path: golden.to_path_buf(),
                source,
            }
        })?;
        return Ok(Vec::new());
    }
    Ok(match std::fs::read_to_string(golden) {
        Ok(text) => match normaliser.compare(console, &text) {
            Ok(()) => Vec::new(),
            Err(mismatch) => vec![format!(
                "console differs from {}:\n{}",
                golden.display(),
                mismatch.diff
            )],
        },
        Err(e) => vec![format!(
            "cannot read the golden log {} ({e}); run with --bless to write it",
            golden.display()
        )],
    })
}
