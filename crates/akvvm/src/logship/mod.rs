//! Log forwarding to Fluentd (`loggingSettings`): the agent's `tracing` events, as records, over
//! the Fluentd Forward protocol (v1) to `tcp://host:port` or `unix:///path`, tagged with
//! `servicename`.
//!
//! Three parts: the `tracing_subscriber` layer ([`ForwardLayer`], `layer.rs`) encodes each event
//! and offers it to a bounded queue with `try_send`, so logging never waits; a background thread
//! (`sender.rs`) moves the queue into a bounded buffer and sends it in `Forward` mode batches with
//! a `chunk`, dropping a batch from the buffer only once the collector acknowledged it
//! (at-least-once while the collector is up), reconnecting with backoff while it is down; the
//! MessagePack encoding (`msgpack.rs`). Whatever does not fit in the queue or the buffer is
//! dropped and counted ([`crate::metrics::LogForwarding`], the status file, a line on stderr
//! when drops start and when they stop: never a forwarded record, which could loop).
//!
//! The CLI installs [`layer`] when it sets up logging; it does nothing until a [`Forwarder`]
//! started from the settings is [`Forwarder::install`]ed, and stops at [`Forwarder::shutdown`],
//! which flushes the buffer within a bounded time. That layer's target is the one process-wide
//! slot here, because logging is set up before the settings are read; nothing else reads it: the
//! agent is handed the forwarder's [`ForwardingStatus`] for the status file and `/metrics`.

mod layer;
pub mod msgpack;
mod options;
mod sender;
mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use layer::ForwardLayer;
pub use options::{
    DEFAULT_ACK_TIMEOUT, DEFAULT_BATCH_RECORDS, DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_RECORDS,
    DEFAULT_FLUSH_TIMEOUT, DEFAULT_QUEUE_RECORDS, ForwardOptions,
};
use shared::{GLOBAL, Msg, Shared};

use crate::metrics::LogForwarding;
use crate::settings::LoggingSettings;
use crate::status::{CODE_OK, State, Substatus};
use akvvm_cert::locks::{MutexExt, RwLockExt};

/// The layer bound to the process-wide forwarder: inert until a [`Forwarder`] is installed.
pub fn layer() -> ForwardLayer {
    ForwardLayer {
        target: layer::Target::Global,
    }
}

/// A running forwarder: the sender thread and its queue.
pub struct Forwarder {
    shared: Arc<Shared>,
    done: Receiver<()>,
    installed: AtomicBool,
}

/// What a forwarder did, as [`Forwarder::shutdown`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSummary {
    pub sent: u64,
    pub dropped: u64,
    /// Whether the sender thread finished within the time given.
    pub finished: bool,
}

impl Forwarder {
    /// Starts the sender thread for `settings`. Nothing is connected yet: the thread connects
    /// when the first record is buffered, so a collector that is down costs nothing at start.
    pub fn start(settings: &LoggingSettings, options: ForwardOptions) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(options.queue_records.max(1));
        let (done_tx, done) = sync_channel(1);
        let shared = Arc::new(Shared {
            tx,
            figures: Arc::new(LogForwarding::default()),
            endpoint: settings.endpoint.clone(),
            tag: settings.tag.clone(),
            stop_by: Mutex::new(None),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("akvvm-logship".into())
            .spawn(move || {
                sender::run(rx, &thread_shared, &options);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            shared,
            done,
            installed: AtomicBool::new(false),
        })
    }

    /// A layer that feeds this forwarder (for a subscriber of its own, as tests do).
    pub fn layer(&self) -> ForwardLayer {
        ForwardLayer {
            target: layer::Target::Fixed(self.shared.clone()),
        }
    }

    /// Makes this the process-wide forwarder: [`layer`] feeds it.
    pub fn install(&self) {
        *GLOBAL.write_or_recover() = Some(self.shared.clone());
        self.installed.store(true, Ordering::Relaxed);
    }

    /// What the status file and `/metrics` show of this forwarder (given to the agent).
    pub fn status(&self) -> ForwardingStatus {
        ForwardingStatus {
            shared: self.shared.clone(),
        }
    }

    /// The counters (sent, dropped, buffered, connected).
    pub fn figures(&self) -> &LogForwarding {
        &self.shared.figures
    }

    /// Stops taking records, sends what is buffered for at most `within`, and stops the thread.
    /// Records still unsent then are counted as dropped.
    pub fn shutdown(self, within: Duration) -> ForwardSummary {
        if self.installed.load(Ordering::Relaxed) {
            let mut global = GLOBAL.write_or_recover();
            if global
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, &self.shared))
            {
                *global = None;
            }
        }
        *self.shared.stop_by.lock_or_recover() = Some(Instant::now() + within);
        let _ = self.shared.tx.try_send(Msg::Stop);
        // The thread gives up at the deadline; the margin covers one connect or write attempt.
        let finished = self
            .done
            .recv_timeout(within + Duration::from_secs(1))
            .is_ok();
        let figures = &self.shared.figures;
        ForwardSummary {
            sent: figures.records_sent.load(Ordering::Relaxed),
            dropped: figures.records_dropped.load(Ordering::Relaxed),
            finished,
        }
    }
}

impl Drop for Forwarder {
    /// A forwarder dropped without [`Forwarder::shutdown`] stops its thread at once (what is
    /// buffered is counted as dropped) and leaves the process-wide slot.
    fn drop(&mut self) {
        let mut stop_by = self.shared.stop_by.lock_or_recover();
        if stop_by.is_none() {
            *stop_by = Some(Instant::now());
            drop(stop_by);
            let _ = self.shared.tx.try_send(Msg::Stop);
        }
        if self.installed.load(Ordering::Relaxed) {
            let mut global = GLOBAL.write_or_recover();
            if global
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, &self.shared))
            {
                *global = None;
            }
        }
    }
}

/// A forwarder's figures as the status file and `/metrics` show them: a handle the agent is
/// given (`AgentOptions::log_shipping`) rather than a process-wide value it reads.
#[derive(Clone)]
pub struct ForwardingStatus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ForwardingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardingStatus")
            .field("endpoint", &self.shared.endpoint.to_string())
            .field("tag", &self.shared.tag)
            .finish_non_exhaustive()
    }
}

impl ForwardingStatus {
    /// The counters (sent, dropped, buffered, connected), for `/metrics`.
    pub fn figures(&self) -> &Arc<LogForwarding> {
        &self.shared.figures
    }

    /// The status file's line for log forwarding: `success` while nothing was dropped,
    /// `warning` with the count otherwise.
    pub fn substatus(&self) -> Substatus {
        let shared = &self.shared;
        let f = &shared.figures;
        let sent = f.records_sent.load(Ordering::Relaxed);
        let dropped = f.records_dropped.load(Ordering::Relaxed);
        let buffered = f.records_buffered.load(Ordering::Relaxed);
        let connected = if f.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "not connected"
        };
        Substatus {
            name: "loggingSettings".into(),
            state: if dropped == 0 {
                State::Success
            } else {
                State::Warning
            },
            code: CODE_OK,
            message: format!(
                "forwarding logs to fluentd at {} (tag {}): {sent} records sent, {dropped} dropped, {buffered} buffered; {connected}",
                shared.endpoint, shared.tag
            ),
        }
    }
}
