//! What a command asks of the migrator: which migrations, in which direction, and what it may
//! apply.

/// Which pending migrations `run` applies, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyTarget {
    All,
    /// Up to and including this version.
    Through(String),
}

/// Whether `run` applies post-deploy migrations (contract steps) or stops before the first, as a
/// fleet does before it rolls out the binary that has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostDeploy {
    Apply,
    Skip,
}

/// Applying or reverting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Whether `run` may apply a pending migration older than the newest applied one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Refuse it, before applying anything: a migration merged from a branch after newer ones
    /// ran was never tried against what they changed.
    InOrder,
    /// `--allow-out-of-order`: apply it, on purpose.
    AllowOutOfOrder,
}

/// Which applied migrations `revert` undoes, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertTarget {
    /// The newest `n`.
    Last(usize),
    /// Every one applied after this version, which stays applied.
    To(String),
    All,
}
