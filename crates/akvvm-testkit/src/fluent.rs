//! A Fluentd collector for tests: a real TCP or unix-socket server that decodes the Fluentd
//! Forward Protocol Specification v1 (MessagePack; the `Message` `[tag, time, record, option?]`,
//! `Forward` `[tag, [[time, record], ...], option?]` and `PackedForward` `[tag, bin, option?]`
//! modes; `EventTime` ext type 0 or integer times) and answers `{"ack": chunk}` when the option
//! carries a `chunk`. Written from the specifications, sharing no code with akvvm's encoder.
//!
//! It can be told to stop answering acks ([`Collector::set_acks`]), to drop its connections
//! ([`Collector::close_connections`]), to go down ([`Collector::stop`]) and to come back on the
//! same address or path ([`Collector::restart`]). `CompressedPackedForward` (gzip) is not
//! decoded: a message that says `compressed` is counted in [`Collector::errors`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A decoded MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a string key in a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why bytes are not (yet) a value.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed.
    Incomplete,
    /// Not MessagePack (a reserved byte, a bad UTF-8 string).
    Invalid(String),
}

/// Decodes one value from the start of `buf`: the value and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut r = Reader { buf, at: 0 };
    let v = r.value(0)?;
    Ok((v, r.at))
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Incomplete)?;
        let bytes = self.buf.get(self.at..end).ok_or(DecodeError::Incomplete)?;
        self.at = end;
        Ok(bytes)
    }
    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > 64 {
            return Err(DecodeError::Invalid("nested too deep".into()));
        }
        let b = self.take(1)?[0];
        Ok(match b {
            0x00..=0x7f => Value::Int(i128::from(b)),
            0x80..=0x8f => self.map(usize::from(b & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(b & 0x0f), depth)?,
            0xa0..=0xbf => self.string(usize::from(b & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (b - 0xc4))? as usize;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (b - 0xc7))? as usize;
                let kind = self.take(1)?[0] as i8;
                Value::Ext(kind, self.take(n)?.to_vec())
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Value::Int(i128::from(self.uint(1 << (b - 0xcc))?)),
            0xd0 => Value::Int(i128::from(self.take(1)?[0] as i8)),
            0xd1 => Value::Int(i128::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Int(i128::from(self.uint(4)? as u32 as i32)),
            0xd3 => Value::Int(i128::from(self.uint(8)? as i64)),
            0xd4..=0xd8 => {
                let kind = self.take(1)?[0] as i8;
                Value::Ext(kind, self.take(1 << (b - 0xd4))?.to_vec())
            }
            0xd9..=0xdb => {
                let n = self.uint(1 << (b - 0xd9))? as usize;
                self.string(n)?
            }
            0xdc | 0xdd => {
                let n = self.uint(2 << (b - 0xdc))? as usize;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.uint(2 << (b - 0xde))? as usize;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i128::from(b as i8)),
            0xc1 => return Err(DecodeError::Invalid("reserved byte 0xc1".into())),
        })
    }
    fn string(&mut self, n: usize) -> Result<Value, DecodeError> {
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes)
            .map(Value::Str)
            .map_err(|_| DecodeError::Invalid("a str that is not UTF-8".into()))
    }
    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut items = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }
    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut pairs = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            pairs.push((k, v));
        }
        Ok(Value::Map(pairs))
    }
}

/// Which of the protocol's modes a message used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Message,
    Forward,
    PackedForward,
}

/// An event time: seconds and nanoseconds (nanoseconds 0 for an integer time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    pub seconds: u64,
    pub nanoseconds: u32,
    /// Whether it came as the `EventTime` extension (else as an integer).
    pub ext: bool,
}

/// One event as the collector received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub tag: String,
    pub time: EventTime,
    /// The record's string keys and their values.
    pub record: BTreeMap<String, Value>,
}

impl Event {
    /// A string field of the record.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.record.get(key).and_then(Value::as_str)
    }
}

/// One decoded message: its mode, its events and its option map.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub mode: Mode,
    pub events: Vec<Event>,
    /// `option.size`, when given.
    pub size: Option<u64>,
    /// `option.chunk`, when given.
    pub chunk: Option<String>,
}

fn time_of(v: &Value) -> Result<EventTime, String> {
    match v {
        Value::Int(s) if *s >= 0 => Ok(EventTime {
            seconds: *s as u64,
            nanoseconds: 0,
            ext: false,
        }),
        Value::Ext(0, data) if data.len() == 8 => Ok(EventTime {
            seconds: u64::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]])),
            nanoseconds: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ext: true,
        }),
        other => Err(format!("not an event time: {other:?}")),
    }
}

fn entry(tag: &str, v: &Value) -> Result<Event, String> {
    let Value::Array(items) = v else {
        return Err(format!("an entry is not [time, record]: {v:?}"));
    };
    let [time, record] = items.as_slice() else {
        return Err(format!("an entry has {} items, not 2", items.len()));
    };
    event(tag, time, record)
}

fn event(tag: &str, time: &Value, record: &Value) -> Result<Event, String> {
    let Value::Map(pairs) = record else {
        return Err(format!("a record is not a map: {record:?}"));
    };
    let mut fields = BTreeMap::new();
    for (k, v) in pairs {
        let key = k
            .as_str()
            .ok_or_else(|| format!("a record key is not a str: {k:?}"))?;
        fields.insert(key.to_string(), v.clone());
    }
    Ok(Event {
        tag: tag.to_string(),
        time: time_of(time)?,
        record: fields,
    })
}

/// Interprets a decoded top-level value as a Forward protocol message.
pub fn interpret(v: &Value) -> Result<Message, String> {
    let Value::Array(items) = v else {
        return Err(format!("a message is not an array: {v:?}"));
    };
    let tag = items
        .first()
        .and_then(Value::as_str)
        .ok_or("a message does not start with a str tag")?;
    let second = items.get(1).ok_or("a message has no events")?;
    let (mode, events, option) = match second {
        Value::Array(entries) => {
            let events = entries
                .iter()
                .map(|e| entry(tag, e))
                .collect::<Result<Vec<_>, _>>()?;
            (Mode::Forward, events, items.get(2))
        }
        Value::Bin(bytes) => (Mode::PackedForward, packed(tag, bytes)?, items.get(2)),
        Value::Str(s) => (
            Mode::PackedForward,
            packed(tag, s.as_bytes())?,
            items.get(2),
        ),
        time => {
            let record = items.get(2).ok_or("a Message has no record")?;
            (Mode::Message, vec![event(tag, time, record)?], items.get(3))
        }
    };
    if items.len() > if mode == Mode::Message { 4 } else { 3 } {
        return Err(format!("a {mode:?} message has {} items", items.len()));
    }
    let option = option.unwrap_or(&Value::Nil);
    if !matches!(option, Value::Map(_) | Value::Nil) {
        return Err(format!("the option is not a map: {option:?}"));
    }
    if option.get("compressed").is_some() {
        return Err("CompressedPackedForward is not decoded by this collector".into());
    }
    let size = match option.get("size") {
        Some(Value::Int(n)) if *n >= 0 => Some(*n as u64),
        Some(other) => return Err(format!("option size is not a count: {other:?}")),
        None => None,
    };
    let chunk = match option.get("chunk") {
        Some(Value::Str(c)) => Some(c.clone()),
        Some(other) => return Err(format!("option chunk is not a str: {other:?}")),
        None => None,
    };
    Ok(Message {
        mode,
        events,
        size,
        chunk,
    })
}

fn packed(tag: &str, mut bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    while !bytes.is_empty() {
        let (v, used) = decode(bytes).map_err(|e| format!("a packed entry: {e:?}"))?;
        events.push(entry(tag, &v)?);
        bytes = &bytes[used..];
    }
    Ok(events)
}

/// Encodes the collector's answer `{"ack": chunk}` (a fixmap with two strings).
pub fn encode_ack(chunk: &str) -> Vec<u8> {
    let mut out = vec![0x81];
    for s in ["ack", chunk] {
        let n = s.len();
        if n < 32 {
            out.push(0xa0 | n as u8);
        } else {
            out.extend_from_slice(&[0xd9, n as u8]);
        }
        out.extend_from_slice(s.as_bytes());
    }
    out
}

#[derive(Debug, Clone)]
enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Default)]
struct State {
    messages: Vec<Message>,
    errors: Vec<String>,
    connections: u64,
}

struct Inner {
    address: Address,
    state: Mutex<State>,
    acks: AtomicBool,
    /// The generation of the listener: a stopped or restarted collector's old threads exit.
    generation: Mutex<u64>,
    streams: Mutex<Vec<Stream>>,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

/// The collector. Dropping it stops it.
pub struct Collector {
    inner: Arc<Inner>,
}

impl Collector {
    /// A collector on `127.0.0.1` with a free port.
    pub fn tcp() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a collector port");
        let address = Address::Tcp(listener.local_addr().expect("collector address"));
        let collector = Self::new(address);
        collector.serve_tcp(listener);
        collector
    }

    /// A collector on a unix socket at `path`.
    pub fn unix(path: &Path) -> Self {
        let listener = UnixListener::bind(path).expect("bind the collector socket");
        let collector = Self::new(Address::Unix(path.to_path_buf()));
        collector.serve_unix(listener);
        collector
    }

    /// A TCP collector's address for a port that nothing listens on yet: [`Collector::restart`]
    /// starts it there. For "the collector is down at start".
    pub fn tcp_down() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a collector port");
        let address = Address::Tcp(listener.local_addr().expect("collector address"));
        drop(listener);
        Self::new(address)
    }

    fn new(address: Address) -> Self {
        Self {
            inner: Arc::new(Inner {
                address,
                state: Mutex::new(State::default()),
                acks: AtomicBool::new(true),
                generation: Mutex::new(0),
                streams: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The endpoint as `loggingSettings.endpoint` writes it.
    pub fn endpoint(&self) -> String {
        match &self.inner.address {
            Address::Tcp(a) => format!("tcp://{a}"),
            Address::Unix(p) => format!("unix://{}", p.display()),
        }
    }

    fn generation(&self) -> u64 {
        *self.inner.generation.lock().unwrap()
    }

    fn serve_tcp(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        let generation = self.generation();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while *inner.generation.lock().unwrap() == generation {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let write = stream.try_clone().unwrap();
                        inner
                            .streams
                            .lock()
                            .unwrap()
                            .push(Stream::Tcp(stream.try_clone().unwrap()));
                        let inner = inner.clone();
                        std::thread::spawn(move || connection(&inner, stream, write));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    fn serve_unix(&self, listener: UnixListener) {
        let inner = self.inner.clone();
        let generation = self.generation();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while *inner.generation.lock().unwrap() == generation {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let write = stream.try_clone().unwrap();
                        inner
                            .streams
                            .lock()
                            .unwrap()
                            .push(Stream::Unix(stream.try_clone().unwrap()));
                        let inner = inner.clone();
                        std::thread::spawn(move || connection(&inner, stream, write));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// Whether acks are answered (on by default).
    pub fn set_acks(&self, on: bool) {
        self.inner.acks.store(on, Ordering::SeqCst);
    }

    /// Closes every open connection; the listener stays.
    pub fn close_connections(&self) {
        for stream in self.inner.streams.lock().unwrap().drain(..) {
            stream.shutdown();
        }
    }

    /// Stops listening and closes every connection: the collector is down.
    pub fn stop(&self) {
        *self.inner.generation.lock().unwrap() += 1;
        self.close_connections();
        // The accept loop notices within its 10 ms poll and drops the listener.
        std::thread::sleep(Duration::from_millis(50));
        if let Address::Unix(path) = &self.inner.address {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Listens again on the same address or path.
    pub fn restart(&self) {
        *self.inner.generation.lock().unwrap() += 1;
        match &self.inner.address {
            Address::Tcp(a) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                let listener = loop {
                    match TcpListener::bind(a) {
                        Ok(l) => break l,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => panic!("cannot listen on {a} again: {e}"),
                    }
                };
                self.serve_tcp(listener);
            }
            Address::Unix(p) => {
                let _ = std::fs::remove_file(p);
                self.serve_unix(UnixListener::bind(p).expect("bind the collector socket again"));
            }
        }
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.inner.state.lock().unwrap().messages.clone()
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.messages().into_iter().flat_map(|m| m.events).collect()
    }

    /// What could not be decoded.
    pub fn errors(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().errors.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.inner.state.lock().unwrap().connections
    }

    /// Waits (up to `within`) until `done` holds for the events; whether it did.
    pub fn wait_for(&self, within: Duration, done: impl Fn(&[Event]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.events()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        *self.inner.generation.lock().unwrap() += 1;
        self.close_connections();
    }
}

fn connection(inner: &Inner, mut read: impl Read, mut write: impl Write) {
    inner.state.lock().unwrap().connections += 1;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match decode(&buf) {
            Ok((value, used)) => {
                buf.drain(..used);
                match interpret(&value) {
                    Ok(message) => {
                        let ack = message.chunk.clone();
                        inner.state.lock().unwrap().messages.push(message);
                        if let Some(chunk) = ack
                            && inner.acks.load(Ordering::SeqCst)
                            && write.write_all(&encode_ack(&chunk)).is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => inner.state.lock().unwrap().errors.push(e),
                }
                continue;
            }
            Err(DecodeError::Incomplete) => {}
            Err(DecodeError::Invalid(e)) => {
                inner.state.lock().unwrap().errors.push(e);
                return;
            }
        }
        match read.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
