//! The forwarder's bounds and timings ([`ForwardOptions`]), with the documented defaults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records the queue between the layer and the sender thread holds.
pub const DEFAULT_QUEUE_RECORDS: usize = 4096;
/// Records kept while the collector is down or slow.
pub const DEFAULT_BUFFER_RECORDS: usize = 10_000;
/// Bytes (encoded) kept while the collector is down or slow.
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;
/// Records in one `Forward` message.
pub const DEFAULT_BATCH_RECORDS: usize = 1000;
/// How long the collector has to acknowledge a batch before the connection is dropped and the
/// batch sent again on a new one.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `akvvm` waits at exit for the buffer to reach the collector.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The forwarder's bounds and timings; [`Default`] gives the documented ones.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    pub queue_records: usize,
    pub buffer_records: usize,
    pub buffer_bytes: usize,
    pub batch_records: usize,
    pub ack_timeout: Duration,
    pub connect_timeout: Duration,
    /// The first wait before connecting again; doubled after each failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Where the forwarder's own notices (collector unreachable, drops started and stopped,
    /// records unsent at exit) go besides stderr: `None` in the agent; a test collects them.
    pub notices: Option<Arc<Mutex<Vec<String>>>>,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            queue_records: DEFAULT_QUEUE_RECORDS,
            buffer_records: DEFAULT_BUFFER_RECORDS,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            batch_records: DEFAULT_BATCH_RECORDS,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            notices: None,
        }
    }
}
