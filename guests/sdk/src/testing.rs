//! Unit tests of a command without the bot: [`FakeHost`] runs a command's
//! `handle()` as ordinary Rust, on the machine running `cargo test`, and
//! records what it did.
//!
//! ```ignore
//! #[cfg(test)]
//! mod tests {
//!     use sandbot_sdk::testing::{invocation, FakeHost};
//!
//!     #[test]
//!     fn greets_by_name() {
//!         let done = FakeHost::new().run::<super::Hi>(invocation("hi", "").by("Ada"));
//!         assert_eq!(done.replies, ["HI, Ada!"]);
//!     }
//! }
//! ```
//!
//! Off WebAssembly, [`crate::host`] is this module's fake: the same
//! functions with the same signatures, answering from the [`FakeHost`]
//! that is running. As in the bot, a call the command's `describe().needs`
//! does not cover is `denied` (or say what is granted with
//! [`FakeHost::grant`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use crate::bindings::sandbot::bot::{chat, commands, log, model};
use crate::{Attachment, Author, Command, File, GivenOption, HostError, Invocation, Message, OptionValue, Source};

/// A host for one command's `handle()`, set up with what the model, the
/// files and the attachments return.
#[derive(Default)]
pub struct FakeHost {
    grants: Option<Vec<String>>,
    model_answers: VecDeque<String>,
    predictions: BTreeMap<String, String>,
    files: BTreeMap<(String, String), Vec<u8>>,
    attachments: BTreeMap<String, Vec<u8>>,
    messages: BTreeMap<String, chat::FetchedMessage>,
    datasets: BTreeMap<String, Vec<model::Example>>,
    commands: Vec<commands::Entry>,
    transcripts: VecDeque<String>,
    seed: u64,
    outcome: Outcome,
}

/// Everything a command did in one run, in the order it did it per kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `Err(text)`: the command returned an error, and `text` is what the
    /// user reads (as the bot would send it).
    pub result: Result<(), String>,
    /// The error as the host gets it: its kind (`Usage`, `Reply`,
    /// `Failed`) with the same text.
    pub failure: Option<crate::Failure>,
    /// Messages sent to the channel.
    pub replies: Vec<String>,
    /// Messages only the invoking user sees.
    pub private: Vec<String>,
    /// Files sent with either.
    pub files: Vec<File>,
    /// `(message id, new text)` for each edit.
    pub edits: Vec<(String, String)>,
    /// `(level, line)` for each log line.
    pub logs: Vec<(log::Level, String)>,
    /// `(message id, original, correction)`.
    pub corrections: Vec<(String, String, String)>,
    pub feedback: Vec<String>,
    /// The examples of each `model.train` call.
    pub trained: Vec<Vec<model::Example>>,
    /// Prompts given to `call-model` or `stream-model`.
    pub prompts: Vec<String>,
    /// Texts given to `voice.speak`.
    pub spoken: Vec<String>,
    /// Bytes given to `voice.play-audio`, one entry per call.
    pub played: Vec<Vec<u8>>,
    /// Host calls refused because they were not granted, as
    /// `interface.function`.
    pub denied: Vec<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            result: Ok(()),
            failure: None,
            replies: Vec::new(),
            private: Vec::new(),
            files: Vec::new(),
            edits: Vec::new(),
            logs: Vec::new(),
            corrections: Vec::new(),
            feedback: Vec::new(),
            trained: Vec::new(),
            prompts: Vec::new(),
            spoken: Vec::new(),
            played: Vec::new(),
            denied: Vec::new(),
        }
    }
}

impl Outcome {
    /// What the user saw first: the first reply, else the error's text.
    pub fn answer(&self) -> Option<&str> {
        self.replies.first().map(String::as_str).or(self.result.as_ref().err().map(String::as_str))
    }
}

impl FakeHost {
    pub fn new() -> Self {
        FakeHost::default()
    }

    /// Grants exactly these (`"chat"`, `"files.read-file"`) instead of the
    /// command's declared needs.
    pub fn grant(mut self, grants: &[&str]) -> Self {
        self.grants = Some(grants.iter().map(|g| g.to_string()).collect());
        self
    }

    /// The next `call-model` (or `stream-model`) answer; several are
    /// given in order. With none left, the model is `unavailable`.
    pub fn model_answer(mut self, text: &str) -> Self {
        self.model_answers.push_back(text.to_string());
        self
    }

    /// What `model.predict` returns for `input`.
    pub fn prediction(mut self, input: &str, output: &str) -> Self {
        self.predictions.insert(input.to_string(), output.to_string());
        self
    }

    /// A file `files.read-file` finds at `path` in `root` (and
    /// `files.list-dir` lists).
    pub fn file(mut self, root: &str, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.files.insert((root.to_string(), path.to_string()), data.into());
        self
    }

    /// The bytes of attachment `id` (put it on the message with
    /// [`InvocationExt::attach`]).
    pub fn attachment(mut self, id: &str, data: impl Into<Vec<u8>>) -> Self {
        self.attachments.insert(id.to_string(), data.into());
        self
    }

    /// A message of the channel `chat.fetch-message` finds.
    pub fn message(mut self, id: &str, author: &str, content: &str) -> Self {
        let message = chat::FetchedMessage {
            id: id.to_string(),
            author_id: format!("id-{author}"),
            author_name: author.to_string(),
            from_bot: false,
            content: content.to_string(),
        };
        self.messages.insert(id.to_string(), message);
        self
    }

    /// A message the bot itself wrote.
    pub fn bot_message(mut self, id: &str, content: &str) -> Self {
        self = self.message(id, "sandbot", content);
        if let Some(m) = self.messages.get_mut(id) {
            m.from_bot = true;
        }
        self
    }

    /// A stored dataset `model.load-dataset` finds.
    pub fn dataset(mut self, name: &str, examples: Vec<model::Example>) -> Self {
        self.datasets.insert(name.to_string(), examples);
        self
    }

    /// The loaded commands `commands.list` returns.
    pub fn commands(mut self, entries: Vec<commands::Entry>) -> Self {
        self.commands = entries;
        self
    }

    /// The next `voice.transcribe` result.
    pub fn transcript(mut self, text: &str) -> Self {
        self.transcripts.push_back(text.to_string());
        self
    }

    /// Pins [`crate::random`]: the same seed gives the same numbers.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Runs `C::handle(invocation)` against this host.
    pub fn run<C: Command>(mut self, invocation: Invocation) -> Outcome {
        if self.grants.is_none() {
            self.grants = Some(C::describe().needs);
        }
        self.seed = splitmix(self.seed ^ 0x5eed);
        CURRENT.with(|current| *current.borrow_mut() = Some(self));
        let result = C::handle(invocation);
        let host = CURRENT.with(|current| current.borrow_mut().take());
        let mut outcome = host.map(|h| h.outcome).unwrap_or_default();
        outcome.failure = result.as_ref().err().cloned().map(crate::Error::into_failure);
        outcome.result = result.map_err(|e| e.to_string());
        outcome
    }
}

thread_local! {
    static CURRENT: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// Runs `f` on the running fake host, after checking the grant.
fn with_host<T>(
    interface: &str,
    function: &str,
    f: impl FnOnce(&mut FakeHost) -> Result<T, HostError>,
) -> Result<T, HostError> {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let host = current.as_mut().expect(NO_HOST);
        let granted_as = if (interface, function) == ("model", "stream-model") { "call-model" } else { function };
        let name = format!("{interface}.{granted_as}");
        let granted = host.grants.iter().flatten().any(|g| g == interface || *g == name);
        if !granted {
            host.outcome.denied.push(format!("{interface}.{function}"));
            return Err(HostError::Denied(format!("{name} is not granted to this command")));
        }
        f(host)
    })
}

const NO_HOST: &str = "a host function was called outside the bot: in a test, run the command with \
                       sandbot_sdk::testing::FakeHost::run";

/// The next random number of the running fake host, if one runs.
pub(crate) fn next_random() -> Option<u64> {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let host = current.as_mut()?;
        host.seed = splitmix(host.seed);
        Some(host.seed)
    })
}

/// SplitMix64: reproducible, and plenty for a test's dice.
fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An invocation of `!command args` by "Ada" in a server channel, as the
/// bot builds it (no options: add them with [`InvocationExt::with`]).
pub fn invocation(command: &str, args: &str) -> Invocation {
    Invocation {
        command: command.to_string(),
        args: args.to_string(),
        prefix: "!".to_string(),
        source: Source::Prefix,
        options: Vec::new(),
        message: Message {
            id: "1000".to_string(),
            channel: "2000".to_string(),
            guild: Some("3000".to_string()),
            author: Author {
                id: "4000".to_string(),
                name: "Ada".to_string(),
                is_operator: false,
                roles: Vec::new(),
                voice_channel: None,
            },
            content: if args.is_empty() { format!("!{command}") } else { format!("!{command} {args}") },
            attachments: Vec::new(),
        },
    }
}

/// Changes to a test's [`Invocation`].
pub trait InvocationExt {
    /// Invoked by a user of this name.
    fn by(self, name: &str) -> Self;
    /// Invoked by an operator.
    fn operator(self) -> Self;
    /// Invoked by someone in a voice channel.
    fn in_voice(self, channel: &str) -> Self;
    /// An option's value, as the host would read it.
    fn with(self, name: &str, value: OptionValue) -> Self;
    /// A file on the message (its bytes come from
    /// [`FakeHost::attachment`] with the same id).
    fn attach(self, id: &str, filename: &str, size: u64) -> Self;
    /// As a slash command.
    fn slash(self) -> Self;
}

impl InvocationExt for Invocation {
    fn by(mut self, name: &str) -> Self {
        self.message.author.name = name.to_string();
        self
    }
    fn operator(mut self) -> Self {
        self.message.author.is_operator = true;
        self
    }
    fn in_voice(mut self, channel: &str) -> Self {
        self.message.author.voice_channel = Some(channel.to_string());
        self
    }
    fn with(mut self, name: &str, value: OptionValue) -> Self {
        self.options.retain(|o| o.name != name);
        self.options.push(GivenOption { name: name.to_string(), value });
        self
    }
    fn attach(mut self, id: &str, filename: &str, size: u64) -> Self {
        let attachment = Attachment { id: id.to_string(), filename: filename.to_string(), content_type: None, size };
        self.message.attachments.push(attachment);
        self
    }
    fn slash(mut self) -> Self {
        self.source = Source::Slash;
        self
    }
}

fn not_found(what: &str) -> HostError {
    HostError::NotFound(what.to_string())
}

/// The fake host interfaces, exactly as the WIT's functions (see
/// [`crate::host`]).
pub mod host {
    /// `sandbot:bot/chat`.
    pub mod chat {
        pub use crate::bindings::sandbot::bot::chat::FetchedMessage;
        pub use crate::{File, HostError as Error};

        use super::super::{not_found, with_host};

        pub fn send_message(content: &str, files: &[File]) -> Result<String, Error> {
            with_host("chat", "send-message", |h| {
                h.outcome.replies.push(content.to_string());
                h.outcome.files.extend_from_slice(files);
                Ok(format!("sent-{}", h.outcome.replies.len() + h.outcome.private.len()))
            })
        }
        pub fn send_private(content: &str, files: &[File]) -> Result<String, Error> {
            with_host("chat", "send-private", |h| {
                h.outcome.private.push(content.to_string());
                h.outcome.files.extend_from_slice(files);
                Ok(format!("sent-{}", h.outcome.replies.len() + h.outcome.private.len()))
            })
        }
        pub fn edit_message(id: &str, content: &str) -> Result<(), Error> {
            with_host("chat", "edit-message", |h| {
                let sent = h.outcome.replies.len() + h.outcome.private.len();
                let ours = id.strip_prefix("sent-").and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n <= sent);
                if !ours {
                    return Err(not_found("a message this invocation sent"));
                }
                h.outcome.edits.push((id.to_string(), content.to_string()));
                Ok(())
            })
        }
        pub fn read_attachment(id: &str) -> Result<Vec<u8>, Error> {
            with_host("chat", "read-attachment", |h| h.attachments.get(id).cloned().ok_or_else(|| not_found(id)))
        }
        pub fn fetch_message(id: &str) -> Result<FetchedMessage, Error> {
            with_host("chat", "fetch-message", |h| h.messages.get(id).cloned().ok_or_else(|| not_found(id)))
        }
    }

    /// `sandbot:bot/voice`.
    pub mod voice {
        pub use crate::bindings::sandbot::bot::voice::JoinOutcome;
        pub use crate::HostError as Error;

        use super::super::with_host;

        pub fn join() -> Result<JoinOutcome, Error> {
            with_host("voice", "join", |_| Ok(JoinOutcome::Joined("General".to_string())))
        }
        pub fn leave() -> Result<(), Error> {
            with_host("voice", "leave", |_| Ok(()))
        }
        pub fn play_audio(audio: &[u8]) -> Result<(), Error> {
            with_host("voice", "play-audio", |h| {
                h.outcome.played.push(audio.to_vec());
                Ok(())
            })
        }
        pub fn speak(text: &str) -> Result<(), Error> {
            with_host("voice", "speak", |h| {
                h.outcome.spoken.push(text.to_string());
                Ok(())
            })
        }
        pub fn transcribe(_audio: &[u8]) -> Result<String, Error> {
            with_host("voice", "transcribe", |h| {
                h.transcripts.pop_front().ok_or_else(|| Error::Unavailable("no transcript given".into()))
            })
        }
    }

    /// `sandbot:bot/model`.
    pub mod model {
        pub use crate::bindings::sandbot::bot::model::{Example, Job};
        pub use crate::HostError as Error;

        use super::super::{not_found, with_host, FakeHost};

        fn next_answer(h: &mut FakeHost, prompt: &str) -> Result<String, Error> {
            h.outcome.prompts.push(prompt.to_string());
            h.model_answers.pop_front().ok_or_else(|| Error::Unavailable("the fake model has no answer left".into()))
        }

        pub fn call_model(prompt: &str) -> Result<String, Error> {
            with_host("model", "call-model", |h| next_answer(h, prompt))
        }

        /// The fake's answer, read in two pieces: the first half, then
        /// all of it (as the bot's pieces grow).
        pub struct Answer {
            pieces: std::cell::RefCell<std::collections::VecDeque<String>>,
        }

        impl Answer {
            pub fn next(&self) -> Result<Option<String>, Error> {
                Ok(self.pieces.borrow_mut().pop_front())
            }
        }

        pub fn stream_model(prompt: &str) -> Result<Answer, Error> {
            with_host("model", "stream-model", |h| {
                let text = next_answer(h, prompt)?;
                let half = text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i);
                let pieces = [text[..half].to_string(), text.clone()].into_iter().filter(|p| !p.is_empty()).collect();
                Ok(Answer { pieces: std::cell::RefCell::new(pieces) })
            })
        }
        pub fn train(examples: &[Example]) -> Result<Job, Error> {
            with_host("model", "train", |h| {
                h.outcome.trained.push(examples.to_vec());
                let id = format!("job-{}", h.outcome.trained.len());
                Ok(Job { id, status: "queued".into(), detail: None, examples: examples.len() as u32 })
            })
        }
        pub fn job_status(id: &str) -> Result<Job, Error> {
            with_host("model", "job-status", |h| {
                let n = id.strip_prefix("job-").and_then(|n| n.parse::<usize>().ok()).filter(|n| *n >= 1);
                let examples = n.and_then(|n| h.outcome.trained.get(n - 1)).ok_or_else(|| not_found(id))?;
                Ok(Job {
                    id: id.to_string(),
                    status: "succeeded".into(),
                    detail: None,
                    examples: examples.len() as u32,
                })
            })
        }
        pub fn predict(input: &str) -> Result<String, Error> {
            with_host("model", "predict", |h| h.predictions.get(input).cloned().ok_or_else(|| not_found(input)))
        }
        pub fn save_dataset(name: &str, examples: &[Example]) -> Result<u32, Error> {
            with_host("model", "save-dataset", |h| {
                h.datasets.insert(name.to_string(), examples.to_vec());
                Ok(examples.len() as u32)
            })
        }
        pub fn load_dataset(name: &str) -> Result<Vec<Example>, Error> {
            with_host("model", "load-dataset", |h| h.datasets.get(name).cloned().ok_or_else(|| not_found(name)))
        }
    }

    /// `sandbot:bot/files`: the files given with [`super::FakeHost::file`].
    pub mod files {
        pub use crate::bindings::sandbot::bot::files::DirEntry;
        pub use crate::{File, HostError as Error};

        use super::super::{not_found, with_host};

        pub fn read_file(root: &str, path: &str) -> Result<File, Error> {
            with_host("files", "read-file", |h| {
                let data = h.files.get(&(root.to_string(), path.to_string())).ok_or_else(|| not_found(path))?;
                let name = path.rsplit('/').next().unwrap_or(path).to_string();
                Ok(File { name, data: data.clone() })
            })
        }
        pub fn list_dir(root: &str, path: &str) -> Result<Vec<DirEntry>, Error> {
            with_host("files", "list-dir", |h| {
                let prefix = if path.is_empty() { String::new() } else { format!("{}/", path.trim_end_matches('/')) };
                let mut entries: Vec<DirEntry> = Vec::new();
                for ((r, p), data) in &h.files {
                    let Some(rest) = p.strip_prefix(&prefix).filter(|_| r == root) else { continue };
                    let (name, is_dir) = match rest.split_once('/') {
                        Some((dir, _)) => (dir, true),
                        None => (rest, false),
                    };
                    if !entries.iter().any(|e| e.name == name) {
                        let size = if is_dir { 0 } else { data.len() as u64 };
                        entries.push(DirEntry { name: name.to_string(), is_dir, size });
                    }
                }
                if entries.is_empty() && !path.is_empty() {
                    return Err(not_found(path));
                }
                Ok(entries)
            })
        }
        /// Not zipped: the fake returns the folder's files concatenated,
        /// named `<folder>.zip`, so a test sees that something was sent.
        pub fn archive(root: &str, path: &str) -> Result<File, Error> {
            with_host("files", "archive", |h| {
                let prefix = format!("{}/", path.trim_end_matches('/'));
                let data: Vec<u8> = h
                    .files
                    .iter()
                    .filter(|((r, p), _)| r == root && (path.is_empty() || p.starts_with(&prefix)))
                    .flat_map(|(_, d)| d.iter().copied())
                    .collect();
                let folder = path.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(root);
                Ok(File { name: format!("{folder}.zip"), data })
            })
        }
    }

    /// `sandbot:bot/store`.
    pub mod store {
        pub use crate::HostError as Error;

        use super::super::with_host;

        pub fn log_correction(message_id: &str, original: &str, correction: &str) -> Result<u64, Error> {
            with_host("store", "log-correction", |h| {
                let c = &mut h.outcome.corrections;
                c.push((message_id.to_string(), original.to_string(), correction.to_string()));
                Ok(c.len() as u64)
            })
        }
        pub fn log_feedback(text: &str) -> Result<u64, Error> {
            with_host("store", "log-feedback", |h| {
                h.outcome.feedback.push(text.to_string());
                Ok(h.outcome.feedback.len() as u64)
            })
        }
    }

    /// `sandbot:bot/log`: always allowed, as in the bot.
    pub mod log {
        pub use crate::bindings::sandbot::bot::log::Level;

        use super::super::{CURRENT, NO_HOST};

        pub fn log(level: Level, message: &str) {
            CURRENT.with(|current| {
                let mut current = current.borrow_mut();
                current.as_mut().expect(NO_HOST).outcome.logs.push((level, message.to_string()));
            })
        }
    }

    /// `sandbot:bot/commands`: the entries given with
    /// [`super::FakeHost::commands`].
    pub mod commands {
        pub use crate::bindings::sandbot::bot::commands::{Entry, OutcomeCounts, Version};
        pub use crate::HostError as Error;

        use super::super::with_host;

        pub fn list() -> Result<Vec<Entry>, Error> {
            with_host("commands", "list", |h| Ok(h.commands.clone()))
        }
        pub fn versions() -> Result<Vec<Version>, Error> {
            with_host("commands", "versions", |h| {
                let version = |e: &Entry| Version {
                    name: e.name.clone(),
                    sha256: "0".repeat(64),
                    loaded_at: 0,
                    cached: false,
                    missing_grants: Vec::new(),
                };
                Ok(h.commands.iter().map(version).collect())
            })
        }
        /// Every listed command, with nothing counted yet.
        pub fn outcomes() -> Result<Vec<OutcomeCounts>, Error> {
            with_host("commands", "outcomes", |h| {
                let none = |e: &Entry| OutcomeCounts {
                    name: e.name.clone(),
                    answered: 0,
                    usage: 0,
                    replied: 0,
                    failed: 0,
                    stopped: 0,
                };
                Ok(h.commands.iter().map(none).collect())
            })
        }
        pub fn reload() -> Result<Vec<String>, Error> {
            with_host("commands", "reload", |_| Ok(Vec::new()))
        }
    }
}

/// Fails to compile when a fake function's signature differs from the
/// bot's: an array's fn items only unify into one fn pointer type when
/// their signatures match.
#[allow(dead_code)]
fn the_fake_has_the_bindings_signatures() {
    use crate::bindings::sandbot::bot;
    macro_rules! same {
        ($($interface:ident::$function:ident),* $(,)?) => {
            $( let _ = [host::$interface::$function, bot::$interface::$function]; )*
        };
    }
    same!(
        chat::send_message,
        chat::send_private,
        chat::edit_message,
        chat::read_attachment,
        chat::fetch_message,
        voice::join,
        voice::leave,
        voice::play_audio,
        voice::speak,
        voice::transcribe,
        model::call_model,
        model::train,
        model::job_status,
        model::predict,
        model::save_dataset,
        model::load_dataset,
        files::read_file,
        files::list_dir,
        files::archive,
        store::log_correction,
        store::log_feedback,
        log::log,
        commands::list,
        commands::versions,
        commands::outcomes,
        commands::reload,
    );
}
