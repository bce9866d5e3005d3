//! The people in the loops: the member directory with its absences and delegates
//! (`members.rs`), who gets a record: assignment rules and their decisions (`assign.rs`), and
//! who is signed in: passwords, sessions and API tokens (`identity.rs`).

pub mod assign;
pub(crate) mod identity;
mod import;
pub(crate) mod members;

pub use identity::{NewSession, Principal, TokenScope};
pub use members::Absence;
