//! The fold: facts → per-task billing → per-scope running sums.
//!
//! **Order independence.** Every field of a job or task is merged with a join: timestamps
//! that only ever get known (`pullStartedAt`, attempt starts) take the minimum, stops the
//! maximum ("latest known stop"), and everything else is last-writer-wins under a *rank*
//! that comes from the event itself — for ECS the task `version`, for Batch (terminal?,
//! attempts so far, status order) — then the envelope time, then a hash of the event id,
//! then the value itself. Joins are commutative, associative and idempotent, so the ledger
//! is a pure function of the *set* of facts applied: any order, any number of duplicates.
//!
//! **Units.** A billing unit is one Batch attempt (linked to its ECS task by task ARN, every
//! retry billed) or one ECS task that no attempt names yet ("unattributed"). Each unit's
//! billing is recomputed from the merged state whenever a fact touches it, and the
//! *difference* from its previous contribution is applied to the running sums of each scope
//! it belongs to. The sums therefore always equal the sum over the current units.
//!
//! **Running sums.** Per scope: closed cost (all time and per budget period), and for running
//! units Σ rate and Σ rate × anchor, bucketed by the period the unit started in. Spend at a
//! whole second `at` is then `closed + Σ rate × (at − anchor)`, plus a correction for units
//! started less than 60 s before `at` (the one-minute minimum), found by a range query: the
//! answer costs O(log n + units started in the last minute), not O(running units). It holds
//! for `at` at or after the ledger's *horizon* (the latest start or stop it knows); earlier
//! instants are answered by walking every unit ([`Ledger::walk`]).//!
//! The rooms: `join` (the joins), `entities` (jobs, tasks and instances, merged), `pricing`
//! (what a unit is and its rate), `scopes` (interned scopes and their sums), `fold` (the
//! [`Ledger`] and its queries), `walk` (every unit at an instant) and `output` (the answers).
//! Each file imports its siblings directly, never this face, so no two import each other.

mod entities;
mod fold;
mod join;
mod output;
mod pricing;
mod scopes;
mod walk;

pub use fold::Ledger;
pub(crate) use join::{join_max, join_min};
pub use output::{
    AttemptCost, InstanceCost, JobCost, TaskWindowCost, UNATTRIBUTED, UNKNOWN, UnattributedTask,
    Walk,
};
pub use pricing::SHARE_RATE_DECIMAL_PLACES;
