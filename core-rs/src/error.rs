//! Misuse of the core by its caller; bad *events* are never errors, they are rejects.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// `commit`/`abort` of a token that is not open (never issued, or already settled).
    UnknownBatch(u64),
    /// An argument the caller got wrong, naming it.
    InvalidArgument { name: &'static str, reason: String },
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::UnknownBatch(token) => {
                write!(f, "batch {token} is not open: it was never issued or is already committed or aborted")
            }
            CoreError::InvalidArgument { name, reason } => write!(f, "{name}: {reason}"),
        }
    }
}

impl std::error::Error for CoreError {}
