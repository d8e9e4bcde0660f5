//! `log`: a guest's lines in the operator's log, tagged with the command.
//!
//! Always granted (it is the guest's stderr), but bounded: a guest cannot
//! flood the log.

use crate::bindings::log;
use crate::host::GuestCtx;
use crate::text::printable;

/// Lines one invocation may log; the rest are dropped.
pub const MAX_LINES: u32 = 100;
/// Characters kept of one line.
const MAX_CHARS: usize = 2000;

impl log::Host for GuestCtx {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > MAX_LINES {
            if self.log_lines == MAX_LINES + 1 {
                tracing::warn!(command = %self.command.name, "guest log limit reached; dropping the rest");
            }
            return Ok(());
        }
        let text = printable(&message.chars().take(MAX_CHARS).collect::<String>());
        let command = &self.command.name;
        match level {
            log::Level::Trace => tracing::trace!(command = %command, "guest: {text}"),
            log::Level::Debug => tracing::debug!(command = %command, "guest: {text}"),
            log::Level::Info => tracing::info!(command = %command, "guest: {text}"),
            log::Level::Warn => tracing::warn!(command = %command, "guest: {text}"),
            log::Level::Error => tracing::error!(command = %command, "guest: {text}"),
        }
        Ok(())
    }
}
