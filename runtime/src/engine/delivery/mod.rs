//! How messages leave: who and what (`notify.rs`), channel settings (`channels.rs`), the
//! outbox listing and delivery passes (`deliver.rs`), the scheduler loop behind `closeloop run`
//! (`daemon.rs`), and the audit checkpoint sent through a channel (`anchor.rs`).

pub(crate) mod anchor;
pub(crate) mod channels;
pub(crate) mod daemon;
pub(crate) mod deliver;
pub(crate) mod notify;

pub use anchor::Anchor;
pub use channels::ChannelView;
pub use daemon::Progress;
pub use deliver::{
    backoff, Delivery, DeliveryOutcome, DeliveryReport, BACKOFF_BASE, BACKOFF_CAP, CHANNEL_BUDGET, MAX_ATTEMPTS,
};
