//! Everything the CLI writes to the terminal goes through here: tracing set-up, error chains.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use tracing_subscriber::EnvFilter;

/// Default log filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "akvvm=info,akvvm_cli=info,akvvm_cert=info,warn";

/// Sets up `tracing` to stderr; `RUST_LOG` overrides the level chosen on the command line.
pub fn init_tracing(verbosity: u8) {
    let default = match verbosity {
        0 => DEFAULT_FILTER.to_string(),
        1 => "akvvm=debug,akvvm_cli=debug,akvvm_cert=debug,info".to_string(),
        _ => "trace".to_string(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints an error and every cause under it, one per line.
pub fn print_error_chain(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Prints a line to stdout (the CLI's output, as opposed to logs).
pub fn line(text: impl std::fmt::Display) {
    println!("{text}");
}
