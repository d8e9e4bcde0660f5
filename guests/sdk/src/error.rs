//! The one error type a command returns; its `Display` is what the user reads.

use std::fmt;

use crate::{ArgsError, HostError};

/// Why a command did not finish. The host sends its text to the user as
/// the reply, so every message here is short and written for people.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The arguments do not fit; the text says how to call the command.
    Usage(String),
    /// A message for the user, verbatim ("Message not found.").
    Reply(String),
    /// A host function refused.
    Host(HostError),
}

impl Error {
    /// A verbatim reply to the user.
    pub fn reply(text: impl Into<String>) -> Self {
        Error::Reply(text.into())
    }

    /// What the host gets: the text the user reads, and its kind for the
    /// operator (a usage error is the user's doing, a host error a failure).
    pub fn into_failure(self) -> crate::Failure {
        let text = self.to_string();
        match self {
            Error::Usage(_) => crate::Failure::Usage(text),
            Error::Reply(_) => crate::Failure::Reply(text),
            Error::Host(_) => crate::Failure::Failed(text),
        }
    }

    /// "Usage: `!name args`" built from the invocation's prefix.
    pub fn usage(prefix: &str, usage: &str) -> Self {
        Error::Usage(format!("Usage: `{prefix}{usage}`"))
    }

    /// Why the arguments do not fit, then the usage: "Give at most 100
    /// dice.\nUsage: `!roll 2d6+3`". [`crate::Command::usage_error`] takes
    /// the usage from `describe()`.
    pub fn usage_because(reason: impl fmt::Display, prefix: &str, usage: &str) -> Self {
        Error::Usage(format!("{reason}\nUsage: `{prefix}{usage}`"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(text) | Error::Reply(text) => f.write_str(text),
            Error::Host(e) => match e {
                HostError::Denied(why) => write!(f, "This command is not allowed to do that ({why})."),
                HostError::NotFound(why) => write!(f, "Not found: {why}."),
                HostError::Invalid(why) => write!(f, "That did not work: {why}."),
                HostError::TooLarge(why) => write!(f, "Too large: {why}."),
                HostError::Unavailable(why) => write!(f, "Not available: {why}."),
                HostError::Failed(why) => write!(f, "Something went wrong: {why}."),
            },
        }
    }
}

impl std::error::Error for Error {}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        Error::Host(e)
    }
}

impl From<ArgsError> for Error {
    fn from(e: ArgsError) -> Self {
        Error::Usage(e.to_string())
    }
}
