//! The people in the loops: the member directory with its absences and delegates
//! (`members.rs`), and who gets a record: assignment rules and their decisions (`assign.rs`).

pub mod assign;
mod import;
pub(crate) mod members;

pub use members::Absence;
