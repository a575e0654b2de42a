//! The `repairctl` commands, one module per command group.

pub mod live;
pub mod rewrite;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and lines for people.
    Human,
    /// One JSON document, for scripts.
    Json,
}
