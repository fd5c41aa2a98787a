/// Why a check could not even be set up; check failures are reported by each module's own
/// failure type, not here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A regex given by a test did not compile.
    #[error("invalid regex {pattern:?}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// What the regex crate said.
        #[source]
        source: Box<regex::Error>,
    },
    /// A splat kind name that vmlane does not know.
    #[error("unknown splat kind {0:?}; one of: {kinds}", kinds = crate::splat::SplatKind::NAMES.join(", "))]
    UnknownSplatKind(String),
}

/// Compiles a regex given by a test, naming it on failure.
pub(crate) fn compile(pattern: &str) -> Result<regex::Regex, Error> {
    regex::Regex::new(pattern).map_err(|source| Error::Regex {
        pattern: pattern.to_string(),
        source: Box::new(source),
    })
}
