//! Everything the CLI writes to the terminal goes through here: tracing set-up, error chains.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ffi::OsStr;
use std::fmt;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Default log filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "akvvm=info,akvvm_cli=info,akvvm_cert=info,warn";

/// Sets up `tracing` to stderr (and to Fluentd once a `loggingSettings` forwarder is installed);
/// `RUST_LOG` overrides the level chosen on the command line.
///
/// When stderr is the systemd journal (systemd says so in `JOURNAL_STREAM`), each line starts
/// with its syslog priority (`<4>` for a warning), which journald turns into the entry's
/// `PRIORITY`, so that `journalctl -u akvvm -p warning` shows warnings and errors only; the
/// journal adds its own timestamps, so the lines carry none. Colours only on a terminal.
pub fn init_tracing(verbosity: u8) {
    let default = match verbosity {
        0 => DEFAULT_FILTER.to_string(),
        1 => "akvvm=debug,akvvm_cli=debug,akvvm_cert=debug,info".to_string(),
        _ => "trace".to_string(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // The log forwarding layer (`loggingSettings`) sees the events the filter lets through; it
    // does nothing until `akvvm run` or `sync --once` starts a forwarder.
    if stderr_is_journal() {
        builder
            .event_format(JournalLine)
            .finish()
            .with(akvvm::logship::layer())
            .init();
    } else {
        builder.finish().with(akvvm::logship::layer()).init();
    }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` holds its
/// `<device>:<inode>` (systemd.exec(5)); a child that inherited the variable but not the stream
/// (its stderr redirected) sees another device or inode.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(stderr)
        .metadata()
        .is_ok_and(|m| journal_stream_is(&value, m.dev(), m.ino()))
}

/// Whether a `JOURNAL_STREAM` value names the file with this device and inode.
fn journal_stream_is(value: &OsStr, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)).
fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A log line for the journal: `<priority>LEVEL target: span{fields}: message key=value`,
/// without a timestamp or colours.
struct JournalLine;

impl<S, N> FormatEvent<S, N> for JournalLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        write!(
            writer,
            "<{}>{} {}: ",
            syslog_priority(metadata.level()),
            metadata.level(),
            metadata.target()
        )?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_a_device_and_an_inode() {
        assert!(journal_stream_is(OsStr::new("8:123456"), 8, 123456));
        assert!(!journal_stream_is(OsStr::new("8:123456"), 8, 123457));
        assert!(!journal_stream_is(OsStr::new("9:123456"), 8, 123456));
        for bad in ["", "8", "8:", ":1", "x:1", "8:1:2", "-8:1"] {
            assert!(!journal_stream_is(OsStr::new(bad), 8, 1), "{bad:?}");
        }
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
    }
}
