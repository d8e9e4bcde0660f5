//! Why an invocation failed, and the one place that turns each reason into
//! a short reply for the user and a cause for the operator's log.
//!
//! Users never see a trap message, a path or a library error: those go to
//! the log only.

use std::time::Duration;

/// Longest reply a guest's error text becomes; the rest is cut with "…".
const MAX_GUEST_REPLY_CHARS: usize = 1900;

/// How one invocation of a guest ended, when it did not end well.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// `handle` returned `err(reply(text))` (or, built before 0.2.2, any
    /// `err(text)`): a message for the user.
    #[error("the command answered with an error")]
    Guest(String),
    /// `handle` returned `err(usage(text))`: the user's input did not fit.
    #[error("the user's input did not fit")]
    Usage(String),
    /// `handle` returned `err(failed(text))`: something it needed failed.
    #[error("the command gave up")]
    GuestFailed(String),
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    #[error("memory limit of {limit_bytes} bytes exceeded")]
    OutOfMemory { limit_bytes: usize },
    #[error("stack overflow")]
    StackOverflow,
    #[error("panicked: {0}")]
    Panic(String),
    #[error("passed more than {limit_bytes} bytes to the host in one call")]
    TooMuchData { limit_bytes: usize },
    #[error("trapped: {0}")]
    Crashed(String),
    #[error("could not run: {0}")]
    Unavailable(String),
}

impl InvokeError {
    /// The reply a user reads. `what` names the command (`` `!hi` ``).
    pub fn user_reply(&self, what: &str) -> String {
        match self {
            InvokeError::Guest(text) | InvokeError::Usage(text) | InvokeError::GuestFailed(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return format!("{what} failed.");
                }
                let mut reply: String = text.chars().take(MAX_GUEST_REPLY_CHARS).collect();
                if reply.len() < text.len() {
                    reply.push('…');
                }
                reply
            }
            InvokeError::Deadline(_) => format!("{what} took too long and was stopped."),
            InvokeError::OutOfMemory { .. } => format!("{what} ran out of memory and was stopped."),
            InvokeError::StackOverflow => format!("{what} recursed too deeply and was stopped."),
            InvokeError::TooMuchData { .. } => format!("{what} tried to pass too much data and was stopped."),
            InvokeError::Panic(_) | InvokeError::Crashed(_) => {
                format!("{what} crashed. The operator can see why in the log.")
            }
            InvokeError::Unavailable(_) => format!("{what} cannot run right now; please try again later."),
        }
    }

    /// The cause as one word, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::Guest(_) => "error_reply",
            InvokeError::Usage(_) => "usage",
            InvokeError::GuestFailed(_) => "guest_failed",
            InvokeError::Deadline(_) => "deadline",
            InvokeError::OutOfMemory { .. } => "out_of_memory",
            InvokeError::StackOverflow => "stack_overflow",
            InvokeError::Panic(_) => "panic",
            InvokeError::TooMuchData { .. } => "too_much_data",
            InvokeError::Crashed(_) => "crashed",
            InvokeError::Unavailable(_) => "unavailable",
        }
    }

    /// The cause for the log: one line, bounded.
    pub fn cause(&self) -> String {
        let text = match self {
            InvokeError::Guest(text) => format!("the command answered with an error: {text}"),
            InvokeError::Usage(text) => format!("the user's input did not fit: {text}"),
            InvokeError::GuestFailed(text) => format!("the command gave up: {text}"),
            other => other.to_string(),
        };
        let line = text.replace('\n', " | ");
        line.chars().take(500).collect()
    }
}

impl From<crate::bindings::types::Failure> for InvokeError {
    fn from(failure: crate::bindings::types::Failure) -> Self {
        use crate::bindings::types::Failure;
        match failure {
            Failure::Usage(text) => InvokeError::Usage(text),
            Failure::Reply(text) => InvokeError::Guest(text),
            Failure::Failed(text) => InvokeError::GuestFailed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_is_the_reply_but_bounded() {
        assert_eq!(InvokeError::Guest("Message not found.".into()).user_reply("`!correct`"), "Message not found.");
        let long = InvokeError::Guest("A".repeat(1 << 20)).user_reply("`!x`");
        assert_eq!(long.chars().count(), MAX_GUEST_REPLY_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn traps_never_leak_details_to_users() {
        let panic = InvokeError::Panic("panicked at src/lib.rs:3: secret detail".into());
        assert!(!panic.user_reply("`!x`").contains("secret"));
        assert!(panic.cause().contains("secret detail"));
    }
}
