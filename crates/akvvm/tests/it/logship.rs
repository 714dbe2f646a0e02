//! Log forwarding (`loggingSettings`) against the testkit's Fluentd collector, which decodes the
//! Forward protocol on its own: the collector's decoder on the three modes, then the forwarder's
//! records (tag, time, fields), its `Forward` batches and acks, a collector that is down at start,
//! down for long (drops counted, the buffer bounded), that stops acknowledging, and a unix socket.
//! Nothing asserts a duration: each test waits for the work (records, acks, drops) to be done.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use akvvm::logship::{ForwardOptions, Forwarder};
use akvvm::settings::{LogEndpoint, LoggingSettings};
use akvvm_testkit::fluent::{Collector, Mode, Value, decode, encode_ack, interpret};
use tracing_subscriber::layer::SubscriberExt as _;

const WAIT: Duration = Duration::from_secs(30);

fn options() -> ForwardOptions {
    ForwardOptions {
        ack_timeout: Duration::from_millis(500),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ForwardOptions::default()
    }
}

fn settings(endpoint: &str, tag: &str) -> LoggingSettings {
    LoggingSettings {
        endpoint: akvvm::settings::parse_log_endpoint(endpoint).unwrap(),
        tag: tag.into(),
    }
}

/// Runs `f` with a subscriber that feeds `forwarder` only.
fn with_forwarder(forwarder: &Forwarder, f: impl FnOnce()) {
    let subscriber = tracing_subscriber::registry().with(forwarder.layer());
    tracing::subscriber::with_default(subscriber, f);
}

fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

// Hand-made MessagePack, byte by byte from the specification, for the collector's own tests.
fn fixstr(s: &str) -> Vec<u8> {
    assert!(s.len() < 32);
    let mut v = vec![0xa0 | s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn entry(time: &[u8], message: &str) -> Vec<u8> {
    let mut v = vec![0x92];
    v.extend_from_slice(time);
    v.push(0x81);
    v.extend(fixstr("message"));
    v.extend(fixstr(message));
    v
}

const EVENT_TIME: [u8; 10] = [0xd7, 0x00, 0x65, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07];
const INT_TIME: [u8; 5] = [0xce, 0x65, 0x00, 0x00, 0x02];

fn option_with_chunk(size: u8, chunk: &str) -> Vec<u8> {
    let mut v = vec![0x82];
    v.extend(fixstr("size"));
    v.push(size);
    v.extend(fixstr("chunk"));
    v.extend(fixstr(chunk));
    v
}

#[test]
fn the_collector_decodes_message_forward_and_packed_forward() {
    // Message: [tag, integer time, record].
    let mut message = vec![0x93];
    message.extend(fixstr("app.a"));
    message.extend_from_slice(&INT_TIME);
    message.extend(&entry(&INT_TIME, "one")[6..]);
    let (value, used) = decode(&message).unwrap();
    assert_eq!(used, message.len());
    let m = interpret(&value).unwrap();
    assert_eq!(m.mode, Mode::Message);
    assert_eq!(m.events.len(), 1);
    assert_eq!(m.events[0].tag, "app.a");
    assert_eq!(m.events[0].time.seconds, 0x6500_0002);
    assert!(!m.events[0].time.ext);
    assert_eq!(m.events[0].str("message"), Some("one"));
    assert_eq!(m.chunk, None);

    // Forward: [tag, [[EventTime, record], [int, record]], {"size": 2, "chunk": "c1"}].
    let mut forward = vec![0x93];
    forward.extend(fixstr("app.b"));
    forward.push(0x92);
    forward.extend(entry(&EVENT_TIME, "two"));
    forward.extend(entry(&INT_TIME, "three"));
    forward.extend(option_with_chunk(2, "c1"));
    let m = interpret(&decode(&forward).unwrap().0).unwrap();
    assert_eq!(m.mode, Mode::Forward);
    assert_eq!((m.size, m.chunk.as_deref()), (Some(2), Some("c1")));
    let texts: Vec<_> = m.events.iter().map(|e| e.str("message").unwrap()).collect();
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(
        (m.events[0].time.seconds, m.events[0].time.nanoseconds),
        (0x6500_0001, 7)
    );
    assert!(m.events[0].time.ext);

    // PackedForward: [tag, bin(entry entry), option].
    let mut stream = entry(&EVENT_TIME, "four");
    stream.extend(entry(&EVENT_TIME, "five"));
    let mut packed = vec![0x93];
    packed.extend(fixstr("app.c"));
    packed.extend_from_slice(&[0xc4, stream.len() as u8]);
    packed.extend(&stream);
    packed.extend(option_with_chunk(2, "c2"));
    let m = interpret(&decode(&packed).unwrap().0).unwrap();
    assert_eq!(m.mode, Mode::PackedForward);
    let texts: Vec<_> = m.events.iter().map(|e| e.str("message").unwrap()).collect();
    assert_eq!(texts, ["four", "five"]);
    assert_eq!(m.events[1].tag, "app.c");

    // Incomplete bytes are not a message yet; garbage is an error.
    assert!(decode(&packed[..packed.len() - 1]).is_err());
    assert!(interpret(&Value::Int(3)).is_err());
    let mut compressed = packed.clone();
    let len = compressed.len();
    compressed.truncate(len - option_with_chunk(2, "c2").len());
    compressed.push(0x81);
    compressed.extend(fixstr("compressed"));
    compressed.extend(fixstr("gzip"));
    assert!(interpret(&decode(&compressed).unwrap().0).is_err());

    // Over a socket, split in pieces: the three messages arrive, two acks come back.
    let collector = Collector::tcp();
    let address = collector
        .endpoint()
        .trim_start_matches("tcp://")
        .to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let all: Vec<u8> = [message, forward, packed].concat();
    for piece in all.chunks(7) {
        stream.write_all(piece).unwrap();
    }
    let expected: Vec<u8> = [encode_ack("c1"), encode_ack("c2")].concat();
    let mut acks = vec![0; expected.len()];
    stream.read_exact(&mut acks).unwrap();
    assert_eq!(acks, expected);
    assert!(collector.wait_for(WAIT, |e| e.len() == 5));
    let modes: Vec<_> = collector.messages().iter().map(|m| m.mode).collect();
    assert_eq!(modes, [Mode::Message, Mode::Forward, Mode::PackedForward]);
    assert!(collector.errors().is_empty());
}

#[test]
fn records_arrive_with_the_tag_the_time_and_the_fields() {
    let collector = Collector::tcp();
    let forwarder =
        Forwarder::start(&settings(&collector.endpoint(), "akvvm_service"), options()).unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    with_forwarder(&forwarder, || {
        let span =
            tracing::info_span!("certificate", url = "https://v.vault.azure.net/secrets/web");
        let _entered = span.enter();
        tracing::info!(
            attempt = 2_u64,
            retried = true,
            delta = -3_i64,
            "installed version {}",
            "v2"
        );
        tracing::warn!(code = "vault.forbidden", "a warning");
    });
    assert!(
        collector.wait_for(WAIT, |e| e.len() == 2),
        "{:?}",
        collector.events()
    );
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let events = collector.events();
    let first = &events[0];
    assert_eq!(first.tag, "akvvm_service");
    assert!(first.time.ext, "an EventTime, with nanoseconds");
    assert!((before..=after).contains(&first.time.seconds));
    assert_eq!(first.str("level"), Some("INFO"));
    assert_eq!(first.str("target"), Some("it::logship"));
    assert_eq!(first.str("message"), Some("installed version v2"));
    assert_eq!(
        first.str("url"),
        Some("https://v.vault.azure.net/secrets/web")
    );
    assert_eq!(first.record.get("attempt"), Some(&Value::Int(2)));
    assert_eq!(first.record.get("delta"), Some(&Value::Int(-3)));
    assert_eq!(first.record.get("retried"), Some(&Value::Bool(true)));
    assert_eq!(events[1].str("level"), Some("WARN"));
    assert_eq!(events[1].str("code"), Some("vault.forbidden"));

    // What the sender sent: Forward mode, with the size and a chunk it got an ack for.
    for message in collector.messages() {
        assert_eq!(message.mode, Mode::Forward);
        assert_eq!(message.size, Some(message.events.len() as u64));
        assert!(message.chunk.as_ref().is_some_and(|c| c.len() >= 16));
    }
    let summary = forwarder.shutdown(Duration::from_secs(5));
    assert_eq!((summary.sent, summary.dropped), (2, 0));
    assert!(summary.finished);
}

#[test]
fn a_batch_without_an_ack_is_sent_again_until_acknowledged() {
    let collector = Collector::tcp();
    collector.set_acks(false);
    let forwarder = Forwarder::start(&settings(&collector.endpoint(), "t"), options()).unwrap();
    with_forwarder(&forwarder, || tracing::info!(n = 1_u64, "once"));
    assert!(collector.wait_for(WAIT, |e| !e.is_empty()));
    let figures = forwarder.figures();
    assert_eq!(
        figures.records_sent.load(Ordering::Relaxed),
        0,
        "no ack, not sent"
    );
    assert_eq!(figures.records_buffered.load(Ordering::Relaxed), 1, "kept");
    assert!(
        collector.wait_for(WAIT, |e| e.len() >= 2),
        "sent again on a new connection"
    );
    collector.set_acks(true);
    assert!(eventually(
        || figures.records_sent.load(Ordering::Relaxed) == 1
    ));
    assert_eq!(figures.records_buffered.load(Ordering::Relaxed), 0);
    assert!(collector.connections() >= 2);
    assert!(
        collector
            .events()
            .iter()
            .all(|e| e.str("message") == Some("once"))
    );
    let summary = forwarder.shutdown(Duration::from_secs(5));
    assert_eq!((summary.sent, summary.dropped), (1, 0));
}

#[test]
fn records_logged_while_the_collector_is_down_arrive_when_it_is_up() {
    let collector = Collector::tcp_down();
    let forwarder = Forwarder::start(&settings(&collector.endpoint(), "t"), options()).unwrap();
    with_forwarder(&forwarder, || {
        for i in 0..30_u64 {
            tracing::info!(i, "buffered");
        }
    });
    let figures = forwarder.figures();
    assert!(eventually(|| figures
        .records_buffered
        .load(Ordering::Relaxed)
        == 30));
    assert!(!figures.connected.load(Ordering::Relaxed));
    collector.restart();
    assert!(collector.wait_for(WAIT, |e| e.len() >= 30));
    let order: Vec<_> = collector
        .events()
        .iter()
        .map(|e| e.record.get("i").cloned())
        .collect();
    let expected: Vec<_> = (0..30).map(|i| Some(Value::Int(i))).collect();
    assert_eq!(order, expected, "every record, in order, once");
    let summary = forwarder.shutdown(Duration::from_secs(5));
    assert_eq!((summary.sent, summary.dropped), (30, 0));
}

#[test]
fn a_collector_down_for_long_costs_bounded_memory_and_counted_drops() {
    let collector = Collector::tcp_down();
    let options = ForwardOptions {
        queue_records: 8,
        buffer_records: 20,
        ..options()
    };
    let forwarder = Forwarder::start(&settings(&collector.endpoint(), "t"), options).unwrap();
    with_forwarder(&forwarder, || {
        for i in 0..500_u64 {
            tracing::info!(i, "flood");
        }
    });
    // The flood fills the queue or the buffer, whichever the sender thread has not emptied:
    // the sum is exact, the split is not.
    let figures = forwarder.figures();
    let seen = || {
        figures.records_buffered.load(Ordering::Relaxed)
            + figures.records_dropped.load(Ordering::Relaxed)
    };
    // Every record is either buffered (at most 20) or dropped: none waits, none is lost unseen.
    assert!(eventually(|| seen() == 500));
    assert!(figures.records_buffered.load(Ordering::Relaxed) <= 20);
    // One at a time (the queue never full): the buffer fills to its bound, then drops.
    with_forwarder(&forwarder, || {
        for i in 0..40_u64 {
            tracing::info!(i, "one more");
            assert!(eventually(|| seen() == 501 + i));
        }
    });
    assert_eq!(figures.records_buffered.load(Ordering::Relaxed), 20);
    assert_eq!(figures.records_dropped.load(Ordering::Relaxed), 520);
    collector.restart();
    assert!(collector.wait_for(WAIT, |e| e.len() >= 20));
    let summary = forwarder.shutdown(Duration::from_secs(5));
    assert_eq!((summary.sent, summary.dropped), (20, 520));
    assert_eq!(collector.events().len(), 20);
}

#[test]
fn records_buffered_at_exit_are_flushed_or_counted() {
    let collector = Collector::tcp_down();
    let forwarder = Forwarder::start(&settings(&collector.endpoint(), "t"), options()).unwrap();
    with_forwarder(&forwarder, || tracing::info!("last words"));
    assert!(eventually(|| forwarder
        .figures()
        .records_buffered
        .load(Ordering::Relaxed)
        == 1));
    // Still down at exit: the record is counted as dropped once the flush time is over.
    let summary = forwarder.shutdown(Duration::from_millis(200));
    assert_eq!((summary.sent, summary.dropped), (0, 1));
    assert!(summary.finished);

    let forwarder = Forwarder::start(&settings(&collector.endpoint(), "t"), options()).unwrap();
    with_forwarder(&forwarder, || tracing::info!("flushed at exit"));
    assert!(eventually(|| forwarder
        .figures()
        .records_buffered
        .load(Ordering::Relaxed)
        == 1));
    collector.restart();
    let summary = forwarder.shutdown(Duration::from_secs(20));
    assert_eq!((summary.sent, summary.dropped), (1, 0));
    assert_eq!(
        collector.events()[0].str("message"),
        Some("flushed at exit")
    );
}

#[test]
fn a_unix_socket_collector_gets_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fluentd.sock");
    let collector = Collector::unix(&path);
    let endpoint = collector.endpoint();
    assert!(endpoint.starts_with("unix:///"));
    let logging = settings(&endpoint, "akvvm.unix");
    assert_eq!(logging.endpoint, LogEndpoint::Unix(path.clone()));
    let forwarder = Forwarder::start(&logging, options()).unwrap();
    with_forwarder(&forwarder, || {
        tracing::error!(code = "x.y", "over a unix socket")
    });
    assert!(collector.wait_for(WAIT, |e| e.len() == 1));
    let event = &collector.events()[0];
    assert_eq!(event.tag, "akvvm.unix");
    assert_eq!(event.str("level"), Some("ERROR"));
    // The collector restarts on the same path: forwarding resumes on a new connection.
    collector.stop();
    with_forwarder(&forwarder, || tracing::info!("while down"));
    collector.restart();
    assert!(collector.wait_for(WAIT, |e| e.len() == 2));
    let summary = forwarder.shutdown(Duration::from_secs(5));
    assert_eq!((summary.sent, summary.dropped), (2, 0));
}

#[test]
fn drops_are_reported_once_when_they_start_and_once_when_they_stop() {
    let collector = Collector::tcp_down();
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = ForwardOptions {
        buffer_records: 5,
        notices: Some(notices.clone()),
        ..options()
    };
    let forwarder = Forwarder::start(&settings(&collector.endpoint(), "t"), options).unwrap();
    let figures = forwarder.figures();
    let seen = || {
        figures.records_buffered.load(Ordering::Relaxed)
            + figures.records_dropped.load(Ordering::Relaxed)
    };
    with_forwarder(&forwarder, || {
        for i in 0..15_u64 {
            tracing::info!(i, "while down");
            assert!(eventually(|| seen() == i + 1));
        }
    });
    assert_eq!(figures.records_dropped.load(Ordering::Relaxed), 10);
    collector.restart();
    assert!(eventually(
        || figures.records_sent.load(Ordering::Relaxed) == 5
    ));
    with_forwarder(&forwarder, || tracing::info!("after"));
    assert!(eventually(
        || figures.records_sent.load(Ordering::Relaxed) == 6
    ));
    forwarder.shutdown(Duration::from_secs(5));
    let prefix = format!("akvvm: log forwarding to {}: ", collector.endpoint());
    let notices = notices.lock().unwrap().clone();
    let kinds: Vec<&str> = notices
        .iter()
        .map(|n| {
            n.strip_prefix(&prefix)
                .expect("every notice names the endpoint")
        })
        .map(|n| n.split([';', ':', '(']).next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "cannot connect",
            "the log buffer is full ",
            "connected",
            "forwarding resumed"
        ],
        "{notices:#?}"
    );
    assert!(
        notices[3].ends_with("forwarding resumed; 10 log records were dropped (10 since start)"),
        "{notices:#?}"
    );
    assert!(notices[1].contains("5 records"));
}
