//! The fault matrix: `akvvm run`, a real daemon process, against the local vault while one fault
//! at a time hits one vault (or IMDS), and what must hold in every case. Each row of the matrix
//! is a [`Case`]; the groups live in their own files (`throttling`, `server_errors`, `network`,
//! `identity`, `vault_content`) and each case is one `#[tokio::test]` calling [`run`].
//!
//! Every case sets up two vaults, `healthy` and `faulty`, with one certificate each, lets the
//! agent install both, then injects the fault and rotates both certificates. It asserts:
//! - the agent keeps running (the process has not exited at any check);
//! - the unaffected certificate keeps syncing (`healthy`'s new version is installed while the
//!   fault lasts);
//! - the status file names the cause (the `faulty` substatus carries the case's error code);
//! - retries back off: the attempts the fault saw are bounded ([`Case::max_attempts`] plus
//!   [`Case::attempts_per_s`] for each second the fault lasted), not a storm, and they pause:
//!   among any 10 attempts in a row, one waited at least 350 ms (a fixed-pace retry loop, say
//!   every 250 ms, fails; checked where the counter sees the faulty certificate alone, not for
//!   IMDS, which both certificates ask);
//! - it recovers on its own once the fault is cleared (`faulty`'s newest version is installed
//!   and its substatus is a success again), without a restart or a signal;
//! - the previous good files stay in place, byte for byte, while the fault lasts.
//!
//! The agent polls every second and its request timeout is 2 s (`akvvm.requestTimeoutInS`),
//! so the whole matrix takes seconds per case; nothing asserts a duration.

mod identity;
mod network;
mod server_errors;
mod throttling;
mod vault_content;

use crate::extension_dir::ExtensionDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use akvvm_testkit::harness::{Harness, PFX, READER_ROLE, eventually};
use assert_cmd::cargo::CommandCargoExt;
use serde_json::{Value, json};

/// The vault every fault hits.
pub const FAULTY: &str = "faulty";
/// The vault no fault touches.
pub const HEALTHY: &str = "healthy";
/// The certificate's name in both vaults.
pub const CERT: &str = "web";

/// How long any one condition may take to come about before the case fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// How the attempts a fault sees are counted.
#[derive(Clone, Copy, Debug)]
pub enum Attempts {
    /// The local vault's request counter for the faulty vault (requests that reached it).
    Vault,
    /// The local vault's counter for IMDS.
    Imds,
    /// The agent's own count of its HTTP attempts to the faulty vault
    /// (`akvvm_vault_requests_total` on its metrics listener): for faults that stop requests
    /// before any reaches a server (TLS refused, a name that does not resolve).
    Agent,
}

/// One row of the matrix.
pub struct Case {
    pub name: &'static str,
    /// Applied once both certificates are installed (after the agent was stopped, for
    /// [`Case::at_boot`]).
    pub inject: fn(&Harness),
    /// Ends the fault.
    pub clear: fn(&Harness),
    /// The error code the status must name for the faulty certificate.
    pub code: &'static str,
    pub attempts: Attempts,
    /// Attempts allowed during the fault: this many, plus [`Case::attempts_per_s`] per second.
    pub max_attempts: u64,
    pub attempts_per_s: u64,
    /// The fault is present when the agent starts: the agent is stopped, the fault injected,
    /// and a new agent started. For IMDS down at boot (a running agent holds a token), and for
    /// a certificate change on the server (a running agent keeps its pooled connections, and
    /// meets the new certificate only when it opens a new one).
    pub at_boot: bool,
    /// The fault hits every vault (IMDS): the healthy certificate cannot sync during it either,
    /// so it is checked to keep its files, and to sync after the fault.
    pub affects_all: bool,
    /// Whether `inject` itself changes the faulty certificate (a garbage or deleted secret), so
    /// that no rotation is added during the fault; `clear` then brings a new version.
    pub fault_is_the_change: bool,
}

impl Case {
    /// A fault of the faulty vault, counted there, with a rotation during it.
    pub const fn vault(
        name: &'static str,
        inject: fn(&Harness),
        clear: fn(&Harness),
        code: &'static str,
    ) -> Case {
        Case {
            name,
            inject,
            clear,
            code,
            attempts: Attempts::Vault,
            max_attempts: 20,
            attempts_per_s: 4,
            at_boot: false,
            affects_all: false,
            fault_is_the_change: false,
        }
    }
}

/// Clears every fault of the faulty vault.
pub fn clear_vault(h: &Harness) {
    h.emulator.clear_faults(FAULTY);
}

/// The daemon under test: killed when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(environment: &Path, log: PathBuf) -> Agent {
        let out = std::fs::File::create(&log).expect("the agent's log file");
        let child = Command::cargo_bin("akvvm")
            .expect("the akvvm binary")
            .args(["run", "--handler-environment"])
            .arg(environment)
            .env("RUST_LOG", "akvvm=debug,warn")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("ConfigSequenceNumber")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("akvvm run starts");
        Agent { child, log }
    }

    /// Panics, with the end of the agent's log, if the daemon has exited.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().expect("wait on the agent") {
            panic!("the agent exited {when}: {status}\n{}", tail(&self.log, 40));
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The files of a certificate in the store (every entry whose name starts with `prefix`),
/// with their bytes: link targets for links, contents for files, recursively for directories.
fn files_of(store: &Path, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    fn walk(path: &Path, name: String, out: &mut BTreeMap<String, Vec<u8>>) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).unwrap();
            out.insert(
                format!("{name} ->"),
                target.into_os_string().into_encoded_bytes(),
            );
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                let entry = entry.unwrap();
                let child = format!("{name}/{}", entry.file_name().to_string_lossy());
                walk(&entry.path(), child, out);
            }
        } else {
            out.insert(name, std::fs::read(path).unwrap());
        }
    }
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(store).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            walk(&entry.path(), name, &mut out);
        }
    }
    out
}

/// The substatus of `url` in the status file: (status, message).
fn substatus(status_file: &Path, url: &str) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(&std::fs::read(status_file).ok()?).ok()?;
    let rows = value[0]["status"]["substatus"].as_array()?;
    let row = rows.iter().find(|r| r["name"] == url)?;
    Some((
        row["status"].as_str()?.to_owned(),
        row["formattedMessage"]["message"].as_str()?.to_owned(),
    ))
}

/// The version a certificate's link points to (`<vault>.web.<version>`).
fn installed_version(store: &Path, vault: &str) -> Option<String> {
    let target = std::fs::read_link(store.join(format!("{vault}.{CERT}"))).ok()?;
    let name = target.file_name()?.to_string_lossy().into_owned();
    name.strip_prefix(&format!("{vault}.{CERT}."))
        .map(str::to_owned)
}

/// The agent's `akvvm_vault_requests_total` for `host`, all statuses summed.
fn agent_attempts(metrics: std::net::SocketAddr, host: &str) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(metrics) else {
        return 0;
    };
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let label = format!("vault=\"{host}\"");
    text.lines()
        .filter(|l| l.starts_with("akvvm_vault_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Everything a case needs: the local vault, the extension's directories, the settings.
pub struct Bed {
    pub h: Harness,
    environment: PathBuf,
    status_file: PathBuf,
    metrics: std::net::SocketAddr,
    /// The faulty certificate's URL as observed.
    faulty_url: String,
    healthy_url: String,
}

impl Bed {
    /// Both vaults with a certificate each, and the extension's files for `akvvm run`;
    /// `faulty_url` replaces the faulty certificate's URL when given.
    pub async fn new(faulty_url: Option<&str>) -> Bed {
        let h = Harness::start().await;
        for vault in [HEALTHY, FAULTY] {
            h.vault(vault);
            h.certificate(vault, CERT, "RSA", PFX);
        }
        let faulty_url = faulty_url.map_or_else(|| Harness::url(FAULTY, CERT), str::to_owned);
        let healthy_url = Harness::url(HEALTHY, CERT);
        let mut settings = h.settings_json(
            &[HEALTHY, FAULTY],
            vec![json!(healthy_url), json!(faulty_url)],
        );
        settings["akvvm"]["requestTimeoutInS"] = json!(2);
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        settings["akvvm"]["metricsAddress"] = json!(metrics.to_string());
        let ext = ExtensionDir::create(h.dir.path(), "extension");
        ext.write_settings(0, &settings);
        Bed {
            h,
            environment: ext.environment.clone(),
            status_file: ext.status_file(0),
            metrics,
            faulty_url,
            healthy_url,
        }
    }

    fn start_agent(&self, run: &str) -> Agent {
        Agent::start(
            &self.environment,
            self.h.dir.path().join(format!("{run}.log")),
        )
    }

    fn attempts(&self, counter: Attempts) -> u64 {
        match counter {
            Attempts::Vault => self
                .h
                .emulator
                .request_stats()
                .by_scope
                .get(FAULTY)
                .map_or(0, |s| s.total),
            Attempts::Imds => self
                .h
                .emulator
                .request_stats()
                .by_scope
                .get(akvvm_emulator::server::IMDS_SCOPE)
                .map_or(0, |s| s.total),
            Attempts::Agent => {
                let host = reqwest::Url::parse(&self.faulty_url)
                    .unwrap()
                    .host_str()
                    .unwrap()
                    .to_owned();
                agent_attempts(self.metrics, &host)
            }
        }
    }

    /// Waits for `check`, failing the case with `what` and the agent's log otherwise.
    async fn wait_for(&self, agent: &mut Agent, what: &str, check: impl FnMut() -> bool) {
        let met = eventually(PATIENCE, check).await;
        agent.assert_running(what);
        assert!(
            met,
            "{what}: not within {PATIENCE:?}\nstatus: {:?}\nagent log:\n{}",
            std::fs::read_to_string(&self.status_file).unwrap_or_default(),
            tail(&agent.log, 40)
        );
    }
}

/// How often the attempt counter is read while a fault lasts.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Backoff shows as pauses: among any [`BACKOFF_WINDOW`] attempts in a row, one came at least
/// this long after the one before. The agent never goes without: a check retries an answer at
/// most 5 times, with pauses drawn from ceilings that double from 250 ms to the cap, and a failed
/// certificate waits half a polling interval or more before its next check; 429s retried until
/// the deadline pause up to a second each (the odds of ten below 350 ms are below 1 in 10^4). An
/// agent retrying every 250 ms, or at any fixed pace under 350 ms, fails here.
const BACKOFF_PAUSE: Duration = Duration::from_millis(350);
const BACKOFF_WINDOW: usize = 10;

/// The pauses of the first run of [`BACKOFF_WINDOW`] attempts in a row none of which waited
/// [`BACKOFF_PAUSE`] (`None`: every such run has a pause). `attempts` are the instants at which
/// the counter was seen to grow; attempts closer than [`SAMPLE_EVERY`] count as one, which only
/// makes a run longer in time.
fn pauses_without_backoff(attempts: &[Instant]) -> Option<Vec<Duration>> {
    let pauses: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    pauses
        .windows(BACKOFF_WINDOW - 1)
        .find(|run| run.iter().all(|p| *p < BACKOFF_PAUSE))
        .map(<[Duration]>::to_vec)
}

/// Runs one row of the matrix (see the module's doc for what is asserted).
pub async fn run(case: &Case) {
    let bed = Bed::new(None).await;
    run_on(&bed, case).await;
}

/// Runs `case` on a prepared bed.
pub async fn run_on(bed: &Bed, case: &Case) {
    let h = &bed.h;
    let store = h.store();
    let mut agent = bed.start_agent("first");
    let first = |vault: &str| installed_version(&store, vault);
    bed.wait_for(&mut agent, "both certificates installed", || {
        first(HEALTHY).is_some() && first(FAULTY).is_some()
    })
    .await;
    let faulty_before = files_of(&store, &format!("{FAULTY}.{CERT}"));
    let healthy_before = files_of(&store, &format!("{HEALTHY}.{CERT}"));
    let installed_faulty = first(FAULTY).unwrap();

    if case.at_boot {
        agent.stop();
    }
    h.emulator.reset_counters();
    (case.inject)(h);
    let fault_started = Instant::now();
    let attempts_before = bed.attempts(case.attempts);
    if !case.fault_is_the_change {
        h.emulator.rotate_certificate(FAULTY, CERT).unwrap();
    }
    let healthy_new = h
        .emulator
        .rotate_certificate(HEALTHY, CERT)
        .unwrap()
        .version;
    if case.at_boot {
        agent = bed.start_agent("second");
    }

    // While the fault lasts, when the attempts came: the counter read every 20 ms.
    let timeline = std::cell::RefCell::new(Vec::<Instant>::new());
    let sample = async {
        let mut seen = attempts_before;
        loop {
            let now = bed.attempts(case.attempts);
            if now > seen {
                timeline.borrow_mut().push(Instant::now());
                seen = now;
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    };
    let tag = format!("[{}]", case.code);
    let fault = async {
        // The unaffected certificate keeps syncing, and the status names the cause.
        if !case.affects_all {
            bed.wait_for(
                &mut agent,
                "the healthy certificate's rotation installed during the fault",
                || installed_version(&store, HEALTHY).as_deref() == Some(healthy_new.as_str()),
            )
            .await;
        }
        bed.wait_for(
            &mut agent,
            &format!("the status naming {tag} for the faulty certificate"),
            || substatus(&bed.status_file, &bed.faulty_url).is_some_and(|(_, m)| m.contains(&tag)),
        )
        .await;
        // A few more cycles under the fault, so that a storm would show.
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    tokio::select! {
        () = fault => {}
        () = sample => unreachable!("the sampler never ends"),
    }
    agent.assert_running("while the fault lasted");
    let (state, message) = substatus(&bed.status_file, &bed.faulty_url).unwrap();
    assert!(message.contains(&tag), "{}: {state} {message}", case.name);
    assert!(
        message.contains(&installed_faulty),
        "{}: the status says the previous version stays: {message}",
        case.name
    );
    assert_eq!(state, "warning", "{}: {message}", case.name);

    // The previous good files are untouched.
    let faulty_during = files_of(&store, &format!("{FAULTY}.{CERT}"));
    assert_eq!(
        faulty_during.keys().collect::<Vec<_>>(),
        faulty_before.keys().collect::<Vec<_>>(),
        "{}: the faulty certificate's files changed during the fault",
        case.name
    );
    assert!(
        faulty_during == faulty_before,
        "{}: the faulty certificate's files changed (bytes) during the fault",
        case.name
    );
    if case.affects_all {
        assert!(
            files_of(&store, &format!("{HEALTHY}.{CERT}")) == healthy_before,
            "{}: the healthy certificate's files changed during a fault of every vault",
            case.name
        );
    }

    // Retries back off: bounded attempts, not a storm.
    let attempts = bed.attempts(case.attempts) - attempts_before;
    let seconds = fault_started.elapsed().as_secs() + 1;
    let bound = case.max_attempts + case.attempts_per_s * seconds;
    eprintln!(
        "fault matrix: {}: {attempts} attempts in about {seconds} s of fault (bound {bound})",
        case.name
    );
    assert!(
        attempts <= bound,
        "{}: {attempts} attempts during {seconds} s of fault, more than {bound}: retries do not \
         back off\n{}",
        case.name,
        tail(&agent.log, 40)
    );
    assert!(
        attempts > 0,
        "{}: the fault saw no attempt at all; the case tests nothing",
        case.name
    );
    // IMDS's counter takes both certificates' token requests: two backoffs interleaved, whose
    // merged pauses say nothing of either. The vault's and the agent's counters see the faulty
    // certificate alone.
    let one_stream = !matches!(case.attempts, Attempts::Imds);
    let pauses = pauses_without_backoff(&timeline.borrow()).filter(|_| one_stream);
    let longest = timeline
        .borrow()
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "fault matrix: {}: {} attempts seen apart, the longest pause {longest:?}",
        case.name,
        timeline.borrow().len()
    );
    assert!(
        pauses.is_none(),
        "{}: {} attempts in a row with no pause of {BACKOFF_PAUSE:?} or more ({:?}): retries \
         come at a fixed pace instead of backing off\n{}",
        case.name,
        BACKOFF_WINDOW,
        pauses.unwrap_or_default(),
        tail(&agent.log, 40)
    );

    // Recovery on its own once the fault clears: the newest version, and a success.
    (case.clear)(h);
    let newest = h
        .emulator
        .rotate_certificate(FAULTY, CERT)
        .map(|c| c.version)
        .unwrap();
    bed.wait_for(&mut agent, "recovery after the fault cleared", || {
        installed_version(&store, FAULTY).as_deref() == Some(newest.as_str())
            && installed_version(&store, HEALTHY).as_deref() == Some(healthy_new.as_str())
            && [&bed.faulty_url, &bed.healthy_url]
                .iter()
                .all(|url| substatus(&bed.status_file, url).is_some_and(|(s, _)| s == "success"))
    })
    .await;
    agent.stop();
}

/// Grants the system identity the reader role on the faulty vault again.
pub fn grant_faulty(h: &Harness) {
    h.emulator
        .assign_roles(FAULTY, "system", &[READER_ROLE])
        .unwrap();
}

#[test]
fn a_fixed_pace_retry_loop_fails_the_backoff_check_and_a_backing_off_one_passes() {
    let at = |millis: &[u64]| -> Vec<Instant> {
        let start = Instant::now();
        millis
            .iter()
            .map(|m| start + Duration::from_millis(*m))
            .collect()
    };
    // Every 250 ms (or 300 ms) for 4 s: no pause of 350 ms among ten attempts.
    let fixed: Vec<u64> = (0..16).map(|i| i * 250).collect();
    assert!(pauses_without_backoff(&at(&fixed)).is_some());
    let slower: Vec<u64> = (0..16).map(|i| i * 300).collect();
    assert!(pauses_without_backoff(&at(&slower)).is_some());
    // Two checks of six attempts, pauses drawn under doubling ceilings, and the certificate's
    // retry delay between them.
    let backing_off = [
        0, 100, 400, 450, 1200, 1300, 2100, 2200, 2300, 2700, 2750, 3600, 3700,
    ];
    assert!(pauses_without_backoff(&at(&backing_off)).is_none());
    // Fewer than ten attempts say nothing either way.
    assert!(pauses_without_backoff(&at(&fixed[..9])).is_none());
}
