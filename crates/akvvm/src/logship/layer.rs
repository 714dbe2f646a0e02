//! The `tracing_subscriber` layer: turns each event the agent logs into a Forward protocol
//! entry `[EventTime, record]` and offers it to the sender's queue without ever waiting.
//!
//! The record holds `level`, `target`, `message`, the event's fields, and the fields of the
//! spans it happened in (outermost first; an event's own field wins over a span's of the same
//! name). These are the same values the stderr log shows, so the same secret hygiene applies.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::msgpack;
use super::shared::{Shared, global};

/// A field value as it is sent.
#[derive(Debug, Clone)]
enum FieldValue {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// Fields in the order they were recorded.
#[derive(Debug, Clone, Default)]
struct Fields(Vec<(&'static str, FieldValue)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: FieldValue) {
        // `log.*` fields are the `log` crate's bridge metadata, not the event's.
        if name.starts_with("log.") {
            return;
        }
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), FieldValue::Str(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), FieldValue::Str(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), FieldValue::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), FieldValue::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), FieldValue::Str(value.to_string()));
    }
}

/// The layer. [`super::layer`] gives one bound to the process-wide forwarder (inert until
/// [`super::Forwarder::install`]); [`super::Forwarder::layer`] one bound to a forwarder.
pub struct ForwardLayer {
    pub(super) target: Target,
}

pub(super) enum Target {
    Global,
    Fixed(Arc<Shared>),
}

impl<S> tracing_subscriber::Layer<S> for ForwardLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Without a forwarder (no loggingSettings) spans cost nothing more.
        if matches!(self.target, Target::Global) && global().is_none() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let shared = match &self.target {
            Target::Fixed(shared) => Some(shared.clone()),
            Target::Global => global(),
        };
        let Some(shared) = shared else { return };
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<Fields>() {
                    for (name, value) in &span_fields.0 {
                        fields.set(name, value.clone());
                    }
                }
            }
        }
        event.record(&mut fields);
        let metadata = event.metadata();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        shared.offer(encode_entry(
            now.as_secs() as u32,
            now.subsec_nanos(),
            metadata.level().as_str(),
            metadata.target(),
            &fields,
        ));
    }
}

/// One Forward protocol entry: `[EventTime, {"level", "target", "message", fields...}]`.
fn encode_entry(seconds: u32, nanos: u32, level: &str, target: &str, fields: &Fields) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    msgpack::array(&mut out, 2);
    msgpack::event_time(&mut out, seconds, nanos);
    let extra = fields
        .0
        .iter()
        .filter(|(n, _)| !matches!(*n, "level" | "target"))
        .count();
    msgpack::map(&mut out, 2 + extra);
    msgpack::str(&mut out, "level");
    msgpack::str(&mut out, level);
    msgpack::str(&mut out, "target");
    msgpack::str(&mut out, target);
    for (name, value) in &fields.0 {
        if matches!(*name, "level" | "target") {
            continue;
        }
        msgpack::str(&mut out, name);
        match value {
            FieldValue::Str(s) => msgpack::str(&mut out, s),
            FieldValue::I64(v) => msgpack::int(&mut out, *v),
            FieldValue::U64(v) => msgpack::uint(&mut out, *v),
            FieldValue::F64(v) => msgpack::float(&mut out, *v),
            FieldValue::Bool(v) => msgpack::boolean(&mut out, *v),
        }
    }
    out
}
