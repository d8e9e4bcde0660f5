//! The local console: the embedded default when there is no Discord token.
//!
//! Two faces over one engine:
//! - **interactive**, for a person: type a message, read the bot's answers;
//! - **JSON lines** (`--jsonl`), for scripts: one input object a line, one
//!   output object per effect, each tagged with the input line that caused
//!   it, and a `done` line after the last effect of every input.
//!
//! A JSON line can also be a slash command: `{"slash": "getfile",
//! "options": {"path": "hello.txt"}}`; an attachment option's value is a
//! file path. Private replies and edits are effects of their own.
//!
//! Files the bot sends are written under the output folder and reported by
//! path. Voice is simulated: an input's `voice_channel` says where its
//! author is; joining and leaving are reported as effects.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{
    Attachment, Author, Conversation, Event, FetchedMessage, JoinOutcome, Message, OptionInput, Outgoing,
    PlatformError, SlashCommand,
};
use crate::bindings::types::OptionKind;
use crate::dispatch::Dispatcher;
use crate::text::printable;

/// The console's own user: an operator, whatever the config says.
pub const DEFAULT_AUTHOR_ID: &str = "1";
/// Messages remembered for `fetch-message`.
const REMEMBERED_MESSAGES: usize = 10_000;

/// One line of JSON input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputLine {
    /// The message's text. A line has it, or `slash`.
    #[serde(default)]
    pub content: Option<String>,
    /// A slash command's name (without the `/`).
    #[serde(default)]
    pub slash: Option<String>,
    /// A slash command's options: strings, numbers, booleans; a file path
    /// for an attachment option.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "default_author")]
    pub author: String,
    #[serde(default = "default_author_id")]
    pub author_id: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    /// `null` for a direct message.
    #[serde(default = "default_guild")]
    pub guild: Option<String>,
    #[serde(default)]
    pub attachments: Vec<PathBuf>,
    #[serde(default)]
    pub voice_channel: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Pretend the author is a bot (to see that bots are ignored).
    #[serde(default)]
    pub bot: bool,
}

fn default_author() -> String {
    "you".into()
}
fn default_author_id() -> String {
    DEFAULT_AUTHOR_ID.into()
}
fn default_channel() -> String {
    "console".into()
}
fn default_guild() -> Option<String> {
    Some("local".into())
}

impl InputLine {
    /// A plain line typed by the console's user.
    pub fn text(content: impl Into<String>) -> InputLine {
        InputLine {
            content: Some(content.into()),
            slash: None,
            options: serde_json::Map::new(),
            author: default_author(),
            author_id: default_author_id(),
            channel: default_channel(),
            guild: default_guild(),
            attachments: Vec::new(),
            voice_channel: None,
            roles: Vec::new(),
            bot: false,
        }
    }
}

impl InputLine {
    /// A slash command typed by the console's user, as Discord's client
    /// shows one: `/getfile path:hello.txt`. A value runs to the next
    /// `name:`; the host reads it as the option's declared kind.
    pub fn slash(line: &str) -> Result<InputLine, String> {
        let mut words = line.trim().trim_start_matches('/').split_whitespace();
        let name = words.next().ok_or("a slash command needs a name: `/hi`")?;
        let mut options = serde_json::Map::new();
        let mut current: Option<(String, String)> = None;
        for word in words {
            let starts_option = word.split_once(':').filter(|(option, _)| {
                !option.is_empty() && option.chars().all(|c| c.is_alphanumeric() || "-_".contains(c))
            });
            match (starts_option, &mut current) {
                (Some((option, value)), _) => {
                    if let Some((done, text)) = current.take() {
                        options.insert(done, serde_json::Value::String(text));
                    }
                    if options.contains_key(option) {
                        return Err(format!("the option `{option}` is given twice"));
                    }
                    current = Some((option.to_string(), value.to_string()));
                }
                (None, Some((_, text))) => {
                    text.push(' ');
                    text.push_str(word);
                }
                (None, None) => return Err(format!("write options as `name:value` (`{word}` has no name)")),
            }
        }
        if let Some((option, text)) = current {
            options.insert(option, serde_json::Value::String(text));
        }
        Ok(InputLine { content: None, slash: Some(name.to_string()), options, ..InputLine::text("") })
    }
}

/// One output line of the JSON-lines mode.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Effect<'a> {
    Message {
        input: u64,
        channel: &'a str,
        id: &'a str,
        content: &'a str,
        files: Vec<FileEffect>,
        /// Only the invoking user sees it (an ephemeral reply).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        private: bool,
    },
    /// The bot replaced the text of a message it sent.
    Edit {
        input: u64,
        id: &'a str,
        content: &'a str,
    },
    VoiceJoin {
        input: u64,
        channel: &'a str,
    },
    VoiceLeave {
        input: u64,
    },
    /// A clip the bot played in a voice channel, saved as a file.
    Audio {
        input: u64,
        channel: &'a str,
        path: PathBuf,
        bytes: u64,
        /// How long it plays; `null` when it cannot be decoded.
        duration_ms: Option<u64>,
    },
    Error {
        input: u64,
        message: &'a str,
    },
    Done {
        input: u64,
    },
}

#[derive(Debug, Serialize)]
struct FileEffect {
    name: String,
    path: PathBuf,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Interactive,
    JsonLines,
}

/// A message the console has seen, for `fetch-message`.
struct Remembered {
    channel: String,
    message: FetchedMessage,
}

/// The console's shared state; each input line gets a [`ConsoleConversation`].
pub struct Console {
    out: Mutex<Box<dyn Write + Send>>,
    mode: Mode,
    out_dir: PathBuf,
    next_id: AtomicU64,
    remembered: Mutex<(HashMap<String, Remembered>, VecDeque<String>)>,
    /// guild → voice channel the bot is in.
    voice: Mutex<HashMap<String, String>>,
}

impl Console {
    /// `out` receives the effects; files go under `out_dir`.
    pub fn new(out: Box<dyn Write + Send>, mode: Mode, out_dir: &Path) -> std::io::Result<Arc<Console>> {
        std::fs::create_dir_all(out_dir)?;
        Ok(Arc::new(Console {
            out: Mutex::new(out),
            mode,
            out_dir: std::path::absolute(out_dir)?,
            next_id: AtomicU64::new(1),
            remembered: Mutex::new((HashMap::new(), VecDeque::new())),
            voice: Mutex::new(HashMap::new()),
        }))
    }

    /// Reads input lines until the end, dispatching each in turn.
    pub async fn run(
        self: &Arc<Self>,
        dispatcher: &Dispatcher,
        input: impl AsyncBufRead + Unpin,
    ) -> std::io::Result<()> {
        let mut input = input;
        let mut buffer = Vec::new();
        let mut number: u64 = 0;
        loop {
            buffer.clear();
            if input.read_until(b'\n', &mut buffer).await? == 0 {
                return Ok(());
            }
            // Bad bytes become U+FFFD: the line then fails as JSON (or reads
            // as text) and the console goes on.
            let line = String::from_utf8_lossy(&buffer);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            self.handle_line(dispatcher, number, line).await;
            number += 1;
        }
    }

    /// Handles one input line: parse, dispatch, then `done`.
    pub async fn handle_line(self: &Arc<Self>, dispatcher: &Dispatcher, number: u64, line: &str) {
        let typed = line.trim_start();
        let parsed = if self.mode == Mode::Interactive && typed.starts_with('/') {
            InputLine::slash(typed)
        } else if self.mode == Mode::Interactive && !typed.starts_with('{') {
            Ok(InputLine::text(line))
        } else {
            serde_json::from_str::<InputLine>(line).map_err(|e| format!("not a valid input line: {e}"))
        };
        // An attachment option's value is a path: the declaration says which.
        let attachment_options = |command: &str, option: &str| {
            dispatcher
                .registry()
                .get(&command.to_lowercase())
                .is_some_and(|c| c.info.options.iter().any(|o| o.name == option && o.kind == OptionKind::Attachment))
        };
        match parsed.and_then(|input| self.event_with(number, input, attachment_options)) {
            Ok(event) => {
                dispatcher.dispatch(event).await;
            }
            Err(message) => self.emit(Effect::Error { input: number, message: &message }),
        }
        self.emit(Effect::Done { input: number });
    }

    /// Turns an input line into an event, with attachments read from disk.
    pub fn event(self: &Arc<Self>, number: u64, input: InputLine) -> Result<Event, String> {
        self.event_with(number, input, |_, _| false)
    }

    /// [`Console::event`], told which slash options are attachments.
    fn event_with(
        self: &Arc<Self>,
        number: u64,
        mut input: InputLine,
        is_attachment: impl Fn(&str, &str) -> bool,
    ) -> Result<Event, String> {
        let mut attachments = Vec::new();
        let mut paths = HashMap::new();
        let mut attach = |path: &Path| -> Result<Attachment, String> {
            let meta = std::fs::metadata(path).map_err(|e| format!("attachment {}: {e}", path.display()))?;
            if !meta.is_file() {
                return Err(format!("attachment {}: not a file", path.display()));
            }
            let id = self.new_id();
            let filename = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
            paths.insert(id.clone(), path.to_path_buf());
            Ok(Attachment { id, content_type: content_type(&filename).map(str::to_string), filename, size: meta.len() })
        };
        for path in &input.attachments {
            attachments.push(attach(path)?);
        }
        let slash = match input.slash.take() {
            None if input.content.is_none() => {
                return Err("a line needs `content` (a message) or `slash` (a slash command)".into())
            }
            None => None,
            Some(name) => {
                let mut options = Vec::new();
                for (option, value) in &input.options {
                    let value = match value {
                        serde_json::Value::String(text) if is_attachment(&name, option) => {
                            let file = attach(Path::new(text))?;
                            attachments.push(file.clone());
                            OptionInput::Attachment(file)
                        }
                        serde_json::Value::String(text) => OptionInput::String(text.clone()),
                        serde_json::Value::Bool(b) => OptionInput::Boolean(*b),
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) => OptionInput::Integer(i),
                            None => OptionInput::Number(n.as_f64().unwrap_or(f64::NAN)),
                        },
                        other => return Err(format!("option `{option}`: {other} is not a value an option takes")),
                    };
                    options.push((option.clone(), value));
                }
                let shown: Vec<String> = input.options.iter().map(|(k, v)| format!(" {k}:{v}")).collect();
                input.content = Some(format!("/{name}{}", shown.concat()));
                Some(SlashCommand { name, options })
            }
        };
        let message = Message {
            id: self.new_id(),
            channel: input.channel.clone(),
            guild: input.guild.clone(),
            author: Author {
                platform_operator: input.author_id == DEFAULT_AUTHOR_ID,
                id: input.author_id,
                name: input.author,
                // The console's roles are names; it has no ids.
                roles: input.roles,
                role_ids: Vec::new(),
                is_bot: input.bot,
                voice_channel: input.voice_channel,
            },
            content: input.content.unwrap_or_default(),
            attachments,
        };
        self.remember(
            &message.channel,
            FetchedMessage {
                id: message.id.clone(),
                author_id: message.author.id.clone(),
                author_name: message.author.name.clone(),
                from_bot: false,
                content: message.content.clone(),
            },
        );
        let conversation = ConsoleConversation {
            console: self.clone(),
            input: number,
            channel: message.channel.clone(),
            guild: message.guild.clone(),
            voice_channel: message.author.voice_channel.clone(),
            attachments: paths,
        };
        Ok(Event { message: Arc::new(message), conversation: Arc::new(conversation), slash })
    }

    fn new_id(&self) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    fn remember(&self, channel: &str, message: FetchedMessage) {
        let mut guard = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        let (by_id, order) = &mut *guard;
        order.push_back(message.id.clone());
        by_id.insert(message.id.clone(), Remembered { channel: channel.to_string(), message });
        while order.len() > REMEMBERED_MESSAGES {
            if let Some(old) = order.pop_front() {
                by_id.remove(&old);
            }
        }
    }

    fn emit(&self, effect: Effect<'_>) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let written = match self.mode {
            Mode::JsonLines => serde_json::to_writer(&mut *out, &effect)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            Mode::Interactive => write_human(&mut *out, &effect),
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            tracing::error!(error = %e, "console output failed");
        }
    }
}

/// A guest's text for the terminal: its lines indented under `bot › `,
/// anything that could steer the terminal shown as an escape.
fn shown(content: &str) -> String {
    content.split('\n').map(printable).collect::<Vec<_>>().join("\n      ")
}

fn write_human(out: &mut dyn Write, effect: &Effect<'_>) -> std::io::Result<()> {
    match effect {
        Effect::Message { content, files, private, .. } => {
            let only_you = if *private { "(only you) " } else { "" };
            if !content.is_empty() {
                writeln!(out, "bot › {only_you}{}", shown(content))?;
            }
            for file in files {
                writeln!(out, "bot › [file] {} ({} bytes)", file.path.display(), file.bytes)?;
            }
            Ok(())
        }
        Effect::Edit { id, content, .. } => {
            writeln!(out, "bot › (edited {id}) {}", shown(content))
        }
        Effect::VoiceJoin { channel, .. } => writeln!(out, "bot › (joined voice channel {channel})"),
        Effect::VoiceLeave { .. } => writeln!(out, "bot › (left the voice channel)"),
        Effect::Audio { channel, path, bytes, duration_ms, .. } => {
            let seconds = duration_ms.map_or(String::new(), |ms| format!(", {:.1} s", ms as f64 / 1000.0));
            writeln!(out, "bot › [audio in {channel}] {} ({bytes} bytes{seconds})", path.display())
        }
        Effect::Error { message, .. } => writeln!(out, "error: {message}"),
        Effect::Done { .. } => Ok(()),
    }
}

/// A rough content type from a file name, as a chat platform would report it.
fn content_type(filename: &str) -> Option<&'static str> {
    let extension = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "txt" | "md" => "text/plain",
        "json" => "application/json",
        "jsonl" => "application/jsonl",
        "csv" => "text/csv",
        "wav" => "audio/wav",
        "ogg" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "zip" => "application/zip",
        _ => return None,
    })
}

/// One input line's conversation: answers are tagged with its number.
pub struct ConsoleConversation {
    console: Arc<Console>,
    input: u64,
    channel: String,
    guild: Option<String>,
    voice_channel: Option<String>,
    attachments: HashMap<String, PathBuf>,
}

impl ConsoleConversation {
    async fn deliver(&self, message: Outgoing, private: bool) -> Result<String, PlatformError> {
        let console = &self.console;
        let id = console.new_id();
        let mut files = Vec::with_capacity(message.files.len());
        for file in &message.files {
            let path = console.out_dir.join(format!("{id}-{}", file.name));
            tokio::fs::write(&path, &file.data)
                .await
                .map_err(|e| PlatformError::Failed(format!("writing {}: {e}", path.display())))?;
            files.push(FileEffect { name: file.name.clone(), path, bytes: file.data.len() as u64 });
        }
        console.emit(Effect::Message {
            input: self.input,
            channel: &self.channel,
            id: &id,
            content: &message.content,
            files,
            private,
        });
        // What only one user saw is not in the channel to fetch.
        if private {
            return Ok(id);
        }
        console.remember(
            &self.channel,
            FetchedMessage {
                id: id.clone(),
                author_id: "0".into(),
                author_name: "sandbot".into(),
                from_bot: true,
                content: message.content,
            },
        );
        Ok(id)
    }
}

#[async_trait]
impl Conversation for ConsoleConversation {
    async fn send(&self, message: Outgoing) -> Result<String, PlatformError> {
        self.deliver(message, false).await
    }

    async fn send_private(&self, message: Outgoing) -> Result<String, PlatformError> {
        self.deliver(message, true).await
    }

    async fn edit(&self, id: &str, content: String) -> Result<(), PlatformError> {
        {
            let mut guard = self.console.remembered.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(remembered) = guard.0.get_mut(id) {
                remembered.message.content = content.clone();
            }
        }
        self.console.emit(Effect::Edit { input: self.input, id, content: &content });
        Ok(())
    }

    async fn fetch_message(&self, id: &str) -> Result<Option<FetchedMessage>, PlatformError> {
        let guard = self.console.remembered.lock().unwrap_or_else(|p| p.into_inner());
        Ok(guard.0.get(id).filter(|r| r.channel == self.channel).map(|r| r.message.clone()))
    }

    async fn read_attachment(&self, id: &str, limit: u64) -> Result<Vec<u8>, PlatformError> {
        use tokio::io::AsyncReadExt;
        let path = self.attachments.get(id).ok_or_else(|| PlatformError::NotFound(format!("attachment {id}")))?;
        let failed = |e: std::io::Error| PlatformError::Failed(format!("{}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(failed)?;
        let size = file.metadata().await.map_err(failed)?.len();
        if size > limit {
            return Err(PlatformError::TooLarge { size, limit });
        }
        let mut data = Vec::with_capacity(size as usize);
        file.take(limit + 1).read_to_end(&mut data).await.map_err(failed)?;
        if data.len() as u64 > limit {
            return Err(PlatformError::TooLarge { size: data.len() as u64, limit });
        }
        Ok(data)
    }

    async fn join_voice(&self) -> Result<JoinOutcome, PlatformError> {
        let guild = self.guild.clone().ok_or(PlatformError::Unsupported("voice channels exist only in servers"))?;
        let channel =
            self.voice_channel.clone().ok_or_else(|| PlatformError::NotFound("the author's voice channel".into()))?;
        let previous = {
            let mut voice = self.console.voice.lock().unwrap_or_else(|p| p.into_inner());
            voice.insert(guild, channel.clone())
        };
        if previous.as_deref() == Some(channel.as_str()) {
            return Ok(JoinOutcome::AlreadyThere(channel));
        }
        self.console.emit(Effect::VoiceJoin { input: self.input, channel: &channel });
        Ok(JoinOutcome::Joined(channel))
    }

    async fn play_audio(&self, audio: Vec<u8>) -> Result<(), PlatformError> {
        let guild = self.guild.clone().ok_or(PlatformError::Unsupported("voice channels exist only in servers"))?;
        // Where the bot was asked to be, else where the author is.
        let joined = self.console.voice.lock().unwrap_or_else(|p| p.into_inner()).get(&guild).cloned();
        let channel = joined
            .or_else(|| self.voice_channel.clone())
            .ok_or_else(|| PlatformError::NotFound("a voice channel to play in".into()))?;
        let path = self.console.out_dir.join(format!(
            "{}-audio.{}",
            self.console.new_id(),
            crate::services::speech::audio::extension(&audio).unwrap_or("bin")
        ));
        tokio::fs::write(&path, &audio)
            .await
            .map_err(|e| PlatformError::Failed(format!("writing {}: {e}", path.display())))?;
        let bytes = audio.len() as u64;
        let duration_ms = tokio::task::spawn_blocking(move || crate::services::speech::audio::duration_ms(&audio))
            .await
            .ok()
            .flatten();
        self.console.emit(Effect::Audio { input: self.input, channel: &channel, path, bytes, duration_ms });
        Ok(())
    }

    async fn leave_voice(&self) -> Result<bool, PlatformError> {
        let Some(guild) = &self.guild else { return Ok(false) };
        let left = self.console.voice.lock().unwrap_or_else(|p| p.into_inner()).remove(guild).is_some();
        if left {
            self.console.emit(Effect::VoiceLeave { input: self.input });
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any line, typed or JSON: an event or an error effect, never a
        /// panic.
        #[test]
        fn fuzz_console_takes_any_input_line(line in "\\PC*") {
            let dir = tempfile::tempdir().unwrap();
            let console = Console::new(Box::new(std::io::sink()), Mode::JsonLines, dir.path()).unwrap();
            if let Ok(input) = serde_json::from_str::<InputLine>(&line) {
                let _ = console.event(0, input);
            }
            if let Ok(input) = InputLine::slash(&line) {
                let _ = console.event(1, input);
            }
        }

        /// JSON lines of the right shape with values of every kind,
        /// attachments that do not exist among them.
        #[test]
        fn fuzz_console_json_lines_of_any_shape(
            content in "\\PC{0,40}",
            author in "\\PC{0,12}",
            key in proptest::sample::select(vec!["attachments", "roles", "voice_channel", "guild", "slash", "options", "bot"]),
            value in proptest::sample::select(vec![
                serde_json::json!(null), serde_json::json!(7), serde_json::json!("x"), serde_json::json!(["/nonexistent/a.wav"]),
                serde_json::json!({"path": "/"}), serde_json::json!(true), serde_json::json!([[]]),
            ]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let console = Console::new(Box::new(std::io::sink()), Mode::JsonLines, dir.path()).unwrap();
            let line = serde_json::json!({"content": content, "author_id": author, key: value}).to_string();
            if let Ok(input) = serde_json::from_str::<InputLine>(&line) {
                let _ = console.event(0, input);
            }
        }
    }

    #[test]
    fn a_typed_slash_command_reads_like_discords_client_shows_it() {
        let line = InputLine::slash("/getfile path:docs/my notes.md").unwrap();
        assert_eq!(line.slash.as_deref(), Some("getfile"));
        assert_eq!(line.options["path"], "docs/my notes.md");
        let line = InputLine::slash("/select_dataset folder:texts label:positive").unwrap();
        assert_eq!(
            (line.options["folder"].as_str(), line.options["label"].as_str()),
            (Some("texts"), Some("positive"))
        );
        // A colon inside a value is part of it; a word without a name is not.
        let line = InputLine::slash("/feedback text:works: mostly").unwrap();
        assert_eq!(line.options["text"], "works: mostly");
        assert!(InputLine::slash("/feedback nice bot").unwrap_err().contains("name:value"));
        assert!(InputLine::slash("/").is_err());
        assert!(InputLine::slash("/a x:1 x:2").unwrap_err().contains("twice"));
        assert!(InputLine::slash("/hi").unwrap().options.is_empty());
    }
}
