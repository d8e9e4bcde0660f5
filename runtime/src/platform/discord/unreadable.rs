//! Events serenity could not read, logged for the operator. A malformed
//! event does not stop the shard: serenity turns it into an unknown event,
//! drops it, and says so only at DEBUG. A raw event handler would see it,
//! but serenity clones every event for such a handler and runs it in a
//! task of its own, which cost a quarter of a reply's time; this layer
//! hears serenity's one DEBUG line instead, whatever `RUST_LOG` says.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};

/// Where serenity says it dropped an unknown event, and how.
const TARGET: &str = "serenity::client::dispatch";
const SAID: &str = "An unknown event was received: ";

/// The layer, with a filter of its own: serenity's DEBUG line is enabled
/// for it alone, not for the log.
pub struct UnreadableEvents;

impl UnreadableEvents {
    pub fn layer<S>() -> impl Layer<S>
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        UnreadableEvents.with_filter(Targets::new().with_target(TARGET, Level::DEBUG))
    }
}

impl<S: Subscriber> Layer<S> for UnreadableEvents {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut said = Message(None);
        event.record(&mut said);
        let Some(unknown) = said.0.as_deref().and_then(|text| text.strip_prefix(SAID)) else { return };
        let kind = quoted_after(unknown, "kind: \"").unwrap_or_default().to_string();
        let id = quoted_after(unknown, "\"id\": String(\"").unwrap_or_default().to_string();
        // tracing drops what a subscriber logs while it handles an event:
        // the warning is written from a task of its own.
        let warn = move || report(&kind, &id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { warn() })),
            Err(_) => drop(std::thread::Builder::new().name("sandbot-unreadable".into()).spawn(warn)),
        }
    }
}

fn report(kind: &str, id: &str) {
    match kind {
        "MESSAGE_CREATE" | "GUILD_CREATE" | "INTERACTION_CREATE" => tracing::warn!(
            event = kind,
            id,
            "skipped an event this bot cannot read: a field is missing or of another type \
             (RUST_LOG=serenity::client::dispatch=debug shows it whole)"
        ),
        _ => tracing::debug!(event = kind, "skipped an event this bot does not know"),
    }
}

/// The `message` field of an event, formatted.
struct Message(Option<String>);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// The text between `start` and the next `"` (none when escaped quotes
/// would make it ambiguous).
fn quoted_after<'a>(text: &'a str, start: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    let value = &rest[..rest.find('"')?];
    (!value.ends_with('\\')).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A log that keeps the lines this layer writes.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn serenity_s_unknown_events_become_a_warning_whatever_the_log_level() {
        let lines = Lines::default();
        let log = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || log.clone())
                    .with_ansi(false)
                    .with_filter(tracing_subscriber::EnvFilter::new("info,serenity=warn")),
            )
            .with(UnreadableEvents::layer());
        // A runtime on this thread, where the subscriber is the default.
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let unknown: serenity::all::UnknownEvent = serde_json::from_value(serde_json::json!({
                "t": "MESSAGE_CREATE",
                "d": {"content": 7, "id": "not a snowflake"},
            }))
            .unwrap();
            runtime.block_on(async {
                // As serenity's dispatcher says it (a DEBUG line of its target).
                tracing::debug!(target: "serenity::client::dispatch", "An unknown event was received: {unknown:?}");
                tracing::debug!(target: "serenity::client::dispatch", "something else");
                tokio::task::yield_now().await;
            });
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "log: {text:?}");
        assert!(warnings[0].contains("skipped an event this bot cannot read"), "{text}");
        assert!(
            warnings[0].contains("event=\"MESSAGE_CREATE\"") || warnings[0].contains("event=MESSAGE_CREATE"),
            "{text}"
        );
        assert!(warnings[0].contains("not a snowflake"), "{text}");
        assert!(!text.contains("something else"), "serenity's DEBUG lines stay out of the log: {text}");
    }
}
