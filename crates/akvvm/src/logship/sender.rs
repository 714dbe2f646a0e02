//! The sender thread: moves the queue into a bounded buffer, connects (with backoff) and sends
//! the buffer in `Forward` mode batches `[tag, [[time, record], ...], {"size": n, "chunk": id}]`,
//! removing a batch only when the collector answers `{"ack": id}`. A plain thread with blocking
//! sockets: it shares nothing with the agent's runtime, so a slow collector cannot slow a sync.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::msgpack::{self, Ack};
use super::options::ForwardOptions;
use super::shared::{Msg, Shared};
use crate::settings::LogEndpoint;
use akvvm_cert::locks::MutexExt;

/// The longest the thread sleeps without looking at the stop deadline.
const IDLE: Duration = Duration::from_secs(1);

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(endpoint: &LogEndpoint, options: &ForwardOptions) -> io::Result<Conn> {
        let conn = match endpoint {
            LogEndpoint::Tcp { host, port } => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
                let mut found = None;
                for address in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&address, options.connect_timeout) {
                        Ok(stream) => {
                            found = Some(stream);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let stream = found.ok_or(last)?;
                stream.set_nodelay(true)?;
                Conn::Tcp(stream)
            }
            LogEndpoint::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
        };
        match &conn {
            Conn::Tcp(s) => s.set_write_timeout(Some(options.ack_timeout))?,
            Conn::Unix(s) => s.set_write_timeout(Some(options.ack_timeout))?,
        }
        Ok(conn)
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        match self {
            Conn::Tcp(s) => s.set_read_timeout(timeout),
            Conn::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(bytes),
            Conn::Unix(s) => s.write_all(bytes),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

struct Sender<'a> {
    shared: &'a Shared,
    options: &'a ForwardOptions,
    buffer: VecDeque<Vec<u8>>,
    bytes: usize,
    conn: Option<Conn>,
    next_attempt: Instant,
    backoff: Duration,
    /// Whether the last connection attempt or batch failed (reported once per outage).
    down: bool,
    /// Drops seen so far, and whether a "dropping" line was printed and not yet followed by a
    /// "resumed" one.
    dropped_seen: u64,
    dropping_since: Option<u64>,
}

pub(super) fn run(rx: Receiver<Msg>, shared: &Shared, options: &ForwardOptions) {
    let mut s = Sender {
        shared,
        options,
        buffer: VecDeque::new(),
        bytes: 0,
        conn: None,
        next_attempt: Instant::now(),
        backoff: options.backoff_initial,
        down: false,
        dropped_seen: 0,
        dropping_since: None,
    };
    let mut flushing = false;
    loop {
        let now = Instant::now();
        let stop_by = shared.stop_by();
        let mut wait = if s.buffer.is_empty() {
            IDLE
        } else if s.conn.is_some() {
            Duration::ZERO
        } else {
            s.next_attempt.saturating_duration_since(now).min(IDLE)
        };
        if let Some(deadline) = stop_by {
            wait = wait.min(deadline.saturating_duration_since(now));
        }
        let first = if wait.is_zero() {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            rx.recv_timeout(wait)
        };
        match first {
            Ok(msg) => {
                s.take(msg);
                while let Ok(msg) = rx.try_recv() {
                    s.take(msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        s.report_drops();
        if let Some(deadline) = shared.stop_by() {
            // Flushing at exit: one attempt now, whatever the backoff said.
            if !flushing {
                flushing = true;
                s.next_attempt = Instant::now();
            }
            if s.buffer.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let unsent = s.buffer.len() as u64;
                shared
                    .figures
                    .records_dropped
                    .fetch_add(unsent, Ordering::Relaxed);
                notice(
                    shared,
                    options,
                    &format!("{unsent} log records could not be sent before exit"),
                );
                break;
            }
        }
        if s.buffer.is_empty() {
            continue;
        }
        if s.conn.is_none() {
            if Instant::now() < s.next_attempt {
                continue;
            }
            match Conn::open(&shared.endpoint, options) {
                Ok(conn) => s.conn = Some(conn),
                Err(e) => {
                    s.failed(&format!("cannot connect: {e}"));
                    continue;
                }
            }
        }
        if let Err(e) = s.send_batch() {
            s.conn = None;
            s.failed(&e);
        }
    }
    shared.figures.connected.store(false, Ordering::Relaxed);
}

impl Sender<'_> {
    /// Puts a record in the buffer, or drops and counts it when the buffer is full.
    fn take(&mut self, msg: Msg) {
        let Msg::Record(entry) = msg else { return };
        if self.buffer.len() >= self.options.buffer_records
            || self.bytes + entry.len() > self.options.buffer_bytes
        {
            self.shared
                .figures
                .records_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.bytes += entry.len();
        self.buffer.push_back(entry);
        self.gauge();
    }

    fn gauge(&self) {
        self.shared
            .figures
            .records_buffered
            .store(self.buffer.len() as u64, Ordering::Relaxed);
    }

    /// A line on stderr when drops start, and one when they stop (a batch went through and
    /// nothing was dropped since the last look).
    fn report_drops(&mut self) {
        let dropped = self.shared.figures.records_dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_seen && self.dropping_since.is_none() {
            self.dropping_since = Some(self.dropped_seen);
            notice(
                self.shared,
                self.options,
                &format!(
                    "the log buffer is full ({} records, {} bytes at most): dropping log records \
                     until the collector catches up",
                    self.options.buffer_records, self.options.buffer_bytes
                ),
            );
        }
        self.dropped_seen = dropped;
    }

    fn drops_stopped(&mut self) {
        if let Some(before) = self.dropping_since
            && self.buffer.len() < self.options.buffer_records / 2
            && self.shared.figures.records_dropped.load(Ordering::Relaxed) == self.dropped_seen
        {
            self.dropping_since = None;
            notice(
                self.shared,
                self.options,
                &format!(
                    "forwarding resumed; {} log records were dropped ({} since start)",
                    self.dropped_seen - before,
                    self.dropped_seen
                ),
            );
        }
    }

    fn failed(&mut self, error: &str) {
        self.shared
            .figures
            .connected
            .store(false, Ordering::Relaxed);
        if !self.down {
            self.down = true;
            notice(
                self.shared,
                self.options,
                &format!(
                    "{error}; buffering up to {} records and retrying",
                    self.options.buffer_records
                ),
            );
        }
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
    }

    /// Sends the oldest records as one `Forward` message and waits for its ack.
    fn send_batch(&mut self) -> Result<(), String> {
        let count = self.buffer.len().min(self.options.batch_records.max(1));
        let chunk = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let size: usize = self.buffer.iter().take(count).map(Vec::len).sum();
        let mut message = Vec::with_capacity(size + self.shared.tag.len() + 64);
        msgpack::array(&mut message, 3);
        msgpack::str(&mut message, &self.shared.tag);
        msgpack::array(&mut message, count);
        for entry in self.buffer.iter().take(count) {
            message.extend_from_slice(entry);
        }
        msgpack::map(&mut message, 2);
        msgpack::str(&mut message, "size");
        msgpack::uint(&mut message, count as u64);
        msgpack::str(&mut message, "chunk");
        msgpack::str(&mut message, &chunk);
        let conn = self.conn.as_mut().ok_or("not connected")?;
        conn.write_all(&message)
            .map_err(|e| format!("cannot send: {e}"))?;
        let deadline = Instant::now() + self.options.ack_timeout;
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match msgpack::decode_ack(&answer) {
                Ack::Chunk(got, _) if got == chunk => break,
                Ack::Chunk(got, _) => {
                    return Err(format!("the collector acknowledged {got:?}, not {chunk:?}"));
                }
                Ack::Invalid => return Err("the collector's answer is not an ack".into()),
                Ack::Incomplete => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no ack from the collector in time".into());
            }
            conn.set_read_timeout(left)
                .map_err(|e| format!("cannot wait for the ack: {e}"))?;
            match conn.read(&mut buf) {
                Ok(0) => return Err("the collector closed the connection before its ack".into()),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("no ack from the collector: {e}")),
            }
        }
        for entry in self.buffer.drain(..count) {
            self.bytes -= entry.len();
        }
        self.gauge();
        let figures = &self.shared.figures;
        figures
            .records_sent
            .fetch_add(count as u64, Ordering::Relaxed);
        figures.connected.store(true, Ordering::Relaxed);
        self.backoff = self.options.backoff_initial;
        if self.down {
            self.down = false;
            notice(
                self.shared,
                self.options,
                "connected; forwarding log records again",
            );
        }
        self.drops_stopped();
        Ok(())
    }
}

/// A line on stderr, outside `tracing`: a forwarded record about forwarding could loop.
fn notice(shared: &Shared, options: &ForwardOptions, message: &str) {
    let line = format!("akvvm: log forwarding to {}: {message}", shared.endpoint);
    let _ = writeln!(io::stderr(), "{line}");
    if let Some(notices) = &options.notices {
        notices.lock_or_recover().push(line);
    }
}
