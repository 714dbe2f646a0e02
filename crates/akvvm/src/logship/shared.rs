//! What the logging layer, the sender thread and the forwarder share: the queue's message, the
//! [`Shared`] state and the process-wide slot the layer writes to (set up before the settings are
//! read; only the layer and the forwarder touch it).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::metrics::LogForwarding;
use crate::settings::LogEndpoint;
use akvvm_cert::locks::{MutexExt, RwLockExt};

/// What the layer sends the sender thread.
pub(super) enum Msg {
    Record(Vec<u8>),
    /// Wake up: a shutdown was asked for.
    Stop,
}

/// What the layer and the sender share.
pub(crate) struct Shared {
    pub(super) tx: SyncSender<Msg>,
    pub(super) figures: Arc<LogForwarding>,
    pub(super) endpoint: LogEndpoint,
    pub(super) tag: String,
    /// Set by [`Forwarder::shutdown`]: flush until then, and stop.
    pub(super) stop_by: Mutex<Option<Instant>>,
}

impl Shared {
    /// Queues an encoded entry, or drops and counts it when the queue is full.
    pub(super) fn offer(&self, entry: Vec<u8>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Record(entry))
        {
            self.figures.records_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn stop_by(&self) -> Option<Instant> {
        *self.stop_by.lock_or_recover()
    }
}

pub(super) static GLOBAL: RwLock<Option<Arc<Shared>>> = RwLock::new(None);

pub(super) fn global() -> Option<Arc<Shared>> {
    GLOBAL.read_or_recover().clone()
}
