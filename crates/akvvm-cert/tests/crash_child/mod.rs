//! What the two store crash tests (`crash_store.rs` for the 3.x layout, `crash_store_v4.rs` for
//! the 4.x one) share: the libtest-like `main` of a `harness = false` binary that is also its own
//! child, the certificates the child installs, and its install loop.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use akvvm_cert::certificate::{CONTENT_TYPE_PEM, CertificateBundle, decode_secret};
use akvvm_cert::store::{InstallRequest, Store};

/// The certificates the child installs (`<fixtures>/<i>.pem`).
pub const BUNDLES: usize = 3;
/// Versions the child cycles through; version `i` holds bundle `i % BUNDLES`.
pub const VERSIONS: usize = 5;

/// What the child installs in a round.
pub type Request = for<'a> fn(&'a str, &'a CertificateBundle, usize) -> InstallRequest<'a>;

/// The Key Vault version name of version `index`.
pub fn version_name(index: usize) -> String {
    format!("{index:032x}")
}

/// The `main` of a crash test binary named `name`: the child when called with `--child STORE
/// FIXTURES`, `--list` and name filters as libtest does (so that `cargo test FILTER` works), else
/// the parent's run.
pub fn main(
    name: &str,
    child: fn(&Path, &Path) -> !,
    parent: fn() -> Result<String, String>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[at + 1]), Path::new(&args[at + 2]));
    }
    if args.iter().any(|a| a == "--list") {
        #[allow(clippy::print_stdout)]
        {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    if !selected(name, &args[1..]) {
        return ExitCode::SUCCESS;
    }
    match parent() {
        Ok(summary) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{summary}");
                println!("test {name} ... ok");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{name} FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Whether libtest-style arguments select the test `name`: no name filter, or one it contains.
fn selected(name: &str, args: &[String]) -> bool {
    const WITH_VALUE: [&str; 7] = [
        "--test-threads",
        "--format",
        "--skip",
        "--color",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let mut filters = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            iter.next();
        } else if !arg.starts_with('-') {
            filters.push(arg.as_str());
        }
    }
    let exact = args.iter().any(|a| a == "--exact");
    filters.is_empty()
        || filters
            .iter()
            .any(|f| if exact { *f == name } else { name.contains(f) })
}

/// The child's certificates.
pub fn load_bundles(fixtures: &Path) -> Result<Vec<CertificateBundle>, String> {
    (0..BUNDLES)
        .map(|i| {
            let pem = std::fs::read_to_string(fixtures.join(format!("{i}.pem")))
                .map_err(|e| e.to_string())?;
            decode_secret(Some(CONTENT_TYPE_PEM), &pem).map_err(|e| e.to_string())
        })
        .collect()
}

/// The child: says `ready`, then installs forever, alternating versions (starting from its pid,
/// so that successive children do not repeat each other).
pub fn install_forever(store: &Store, fixtures: &Path, request: Request) -> ! {
    let bundles = load_bundles(fixtures).unwrap();
    let mut stdout = std::io::stdout();
    stdout.write_all(b"ready\n").unwrap();
    stdout.flush().unwrap();
    let start = std::process::id() as usize;
    for round in 0.. {
        let index = (start + round) % VERSIONS;
        let version = version_name(index);
        store
            .install(&request(&version, &bundles[index % BUNDLES], round))
            .unwrap();
    }
    unreachable!("the install loop does not end")
}

/// The mean time of one install, from a few rounds: the parent spreads its kills by it.
pub fn time_installs(store: &Store, fixtures: &Path, request: Request) -> Result<Duration, String> {
    const ROUNDS: usize = 6;
    let bundles = load_bundles(fixtures)?;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let version = version_name(round % VERSIONS);
        store
            .install(&request(&version, &bundles[round % BUNDLES], round))
            .map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed() / ROUNDS as u32)
}

/// One round of the parent: starts the child (`exe --child STORE FIXTURES`), waits for its
/// `ready`, lets it install for a random part of `max_delay`, and kills it with SIGKILL. An error
/// if the child did not start installing, or exited by itself.
pub fn run_and_kill(
    exe: &Path,
    store: &Path,
    fixtures: &Path,
    max_delay: Duration,
    kill: u32,
) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(exe)
        .arg("--child")
        .arg(store)
        .arg(fixtures)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("the child has no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line != "ready\n" {
        let _ = child.kill();
        return Err(format!(
            "kill {kill}: the child said {line:?} instead of ready"
        ));
    }
    std::thread::sleep(max_delay.mul_f64(rand::random_range(0.0..1.0)));
    child.kill().map_err(|e| e.to_string())?; // SIGKILL
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.code().is_some() {
        return Err(format!(
            "kill {kill}: the child exited by itself ({status}) before SIGKILL"
        ));
    }
    Ok(())
}
