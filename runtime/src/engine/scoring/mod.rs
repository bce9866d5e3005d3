//! Judgement in numbers: health scores with their thresholds (`score.rs`), and grades and
//! `script test`, the dry run of a rule (`trial.rs`).

pub(crate) mod score;
pub(crate) mod trial;

pub use score::Scored;
pub use trial::{Graded, Trial, TrialDetail};
