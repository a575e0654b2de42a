//! The one error type of the class-file engine.

use std::fmt;

/// Why a class file could not be read, edited or written.
///
/// Every error names where it happened (`context`: a class, member, attribute or offset) and
/// why (`reason`), so a user can find the input at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub context: String,
    pub reason: String,
}

/// The broad class of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bytes are not a well-formed class file.
    Malformed,
    /// The class or a member named by a spec does not exist.
    NotFound,
    /// The edit is one the JVM cannot redefine, or the engine does not support.
    Refused,
    /// The edited code cannot be encoded (e.g. more than 65535 constants or bytes).
    Limit,
}

impl Error {
    pub fn malformed(context: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, context, reason)
    }
    pub fn not_found(context: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, context, reason)
    }
    pub fn refused(context: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, context, reason)
    }
    pub fn limit(context: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, context, reason)
    }
    fn new(kind: ErrorKind, context: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { kind, context: context.into(), reason: reason.into() }
    }
    /// Prefixes the context with an outer one (`class Foo` + `method bar` → `class Foo, method bar`).
    pub fn within(mut self, outer: impl fmt::Display) -> Self {
        self.context = if self.context.is_empty() { outer.to_string() } else { format!("{outer}, {}", self.context) };
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.context, self.reason)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
