//! The `sandbot` binary: parse the command line, set up logging, load the
//! config, pick the adapter, run. The exit code is decided here only.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sandbot::config::RawEntry;
use sandbot::config::ShardRange;
use sandbot::platform::console::{Console, Mode};
use sandbot::platform::discord;
use sandbot::services::speech;
use sandbot::services::store::{self, PgStore, SqliteStore, Table};
use sandbot::{calibrate, deploy, reload, Config, Dispatcher};
use tracing_subscriber::prelude::*;

#[derive(Parser)]
#[command(name = "sandbot", version, about = "A Discord bot whose every command is a sandboxed WebAssembly component")]
struct Cli {
    /// The configuration file [default: config/sandbot.toml].
    #[arg(long, short, env = "SANDBOT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the bot: on Discord when DISCORD_TOKEN is set, else the local console.
    Run {
        /// The Discord shards this process runs, `first-last/total` (e.g. `0-1/4`);
        /// overrides `discord.shards`.
        #[arg(long)]
        shards: Option<ShardRange>,
    },
    /// Talks to the bot in this terminal, or drives it with JSON lines.
    Console {
        /// One JSON object per input line; one JSON object per effect out.
        #[arg(long)]
        jsonl: bool,
        /// Where files the bot sends are written [default: <data_dir>/console].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prints what is said in audio files, one line each, with the configured
    /// speech engine.
    Transcribe {
        /// WAV, MP3, Ogg Vorbis or FLAC files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Chooses the retrieval's thresholds: teaches a throwaway model the
    /// training file, asks it the development set's questions, and prints
    /// the sweep and the `[model]` settings it calls for.
    Calibrate {
        /// Training examples (JSONL, JSON, CSV or text, as `!train` takes them).
        train: PathBuf,
        /// A JSON list of `{"input", "expected"}`; `expected` is null for
        /// questions the bot should not know.
        dev: PathBuf,
        /// A held-out set of the same shape, scored at the chosen
        /// thresholds (never used to choose them).
        #[arg(long)]
        test: Option<PathBuf>,
        /// The share of unrelated questions allowed a taught answer (and of
        /// paraphrases another fact's) at the chosen threshold.
        #[arg(long, default_value_t = 0.05)]
        max_false: f32,
        /// Also list every question not answered as expected.
        #[arg(long)]
        misses: bool,
        /// Print instead each question's best entries with the parts of
        /// their scores, as JSON lines (the development set's, then the
        /// test set's).
        #[arg(long)]
        hits: bool,
        /// Try another weight for the shared words (see docs/model.md).
        #[arg(long)]
        words_weight: Option<f32>,
        /// Try another penalty for each name the taught question lacks.
        #[arg(long)]
        name_penalty: Option<f32>,
        /// Try another penalty for an answer of the wrong kind.
        #[arg(long)]
        kind_penalty: Option<f32>,
        /// Another sentence-embedding model's folder than the config's
        /// (e.g. `models/all-mpnet-base-v2`).
        #[arg(long)]
        embeddings: Option<PathBuf>,
    },
    /// Prints stored corrections or feedback as JSON lines (from the
    /// configured store: SQLite, or PostgreSQL with `[store] url`).
    Export {
        #[arg(value_enum)]
        table: Table,
    },
    /// Copies a SQLite bot's records (corrections, feedback, answers,
    /// training jobs, datasets, cached vectors) to a PostgreSQL database.
    /// Run again, it copies only what is new.
    MigrateStore {
        /// The PostgreSQL database (`postgres://user@host/database`).
        /// Better from the environment: a password on the command line is
        /// seen by every user of the machine (`ps`).
        #[arg(long, env = "SANDBOT_DATABASE_URL", hide_env_values = true)]
        to: String,
        /// The SQLite file [default: <data_dir>/sandbot.db].
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Deploys a command to every process sharing the PostgreSQL store: the
    /// component is checked as `check` does, stored with its sha256, who
    /// and when, and every running process loads it within a second.
    Deploy {
        /// The command's name, what users type after the prefix.
        name: String,
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// A grant (repeat for more); with --read and --operators-only,
        /// the entry. None of these and no --entry: the config's
        /// `[commands.<name>]` entry.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A root it may read (repeat for more).
        #[arg(long)]
        read: Vec<String>,
        #[arg(long)]
        operators_only: Option<bool>,
        /// A TOML file with the entry (`grants`, `read`, `operators_only`,
        /// `limits`), as in `[commands.<name>]` but without `wasm`.
        #[arg(long, conflicts_with_all = ["grants", "read", "operators_only"])]
        entry: Option<PathBuf>,
    },
    /// Brings back the version of a deployed command before its current
    /// one (or, with none before, the config's entry), in every process.
    Rollback { name: String },
    /// Lists the commands deployed through the store, every version.
    Versions,
    /// Says whether a component fits the bot's world, what it says about
    /// itself, what it asks for and what it calls; with `--config`, also
    /// whether that config's entry grants it. Exits non-zero when it does
    /// not fit, or when the entry would deny a call it needs or makes.
    Check {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// The config entry to compare with [default: the one whose `wasm`
        /// is this file, else the one named as the component describes
        /// itself]. Needs `--config`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Runs one message through one component and prints what it did: no
    /// config needed and nothing left behind (the model and speech are
    /// off; `model.*` and `voice.speak` answer `unavailable`).
    Try {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// The message: `!name args`, `/name option:value`, or any text.
        message: String,
        /// A grant (repeat for more) [default: what the component's
        /// `describe()` says it needs]. `--grant ''`: nothing.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A folder it may read, as `root=folder` (repeat for more).
        #[arg(long, value_parser = sandbot::trial::parse_read)]
        read: Vec<(String, PathBuf)>,
        /// Pins its randomness: the same seed gives the same output.
        #[arg(long)]
        seed: Option<u64>,
        /// The author is an operator.
        #[arg(long)]
        operator: bool,
        /// A file attached to the message (repeat for more).
        #[arg(long)]
        attach: Vec<PathBuf>,
        /// Keeps the files it sends in this folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// One JSON object per effect.
        #[arg(long)]
        jsonl: bool,
    },
    /// Creates a command: a guest crate in `guests/<name>` that builds and
    /// runs as it stands, and its `[commands.<name>]` entry in the config.
    New {
        /// The command's name, what users type after the prefix.
        name: String,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log without `RUST_LOG`: a line per message and what goes wrong.
/// serenity's own spans (`#[instrument]` on every REST request and gateway
/// event, at INFO) format whole requests with `Debug` on every message:
/// most of what sandbot added to a reply's latency. Its warnings stay.
const DEFAULT_LOG: &str = "info,serenity=warn,wasmtime=warn,cranelift=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An author's one-shot commands print their own report; the bot's
    // start-up lines would only bury it.
    let quiet = matches!(cli.command, Command::Try { .. } | Command::Check { .. });
    let default_log = if quiet { "warn" } else { DEFAULT_LOG };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_log.into());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter),
        )
        .with(discord::UnreadableEvents::layer())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let explicit_config = cli.config.clone();
    let config_path = cli.config.clone().unwrap_or_else(|| PathBuf::from("config/sandbot.toml"));
    let config = || Config::load(&config_path);
    match cli.command {
        Command::Run { shards } => {
            let config = config()?;
            if config.discord.token.is_none() {
                if shards.is_some() {
                    tracing::warn!("--shards is for Discord; there is no DISCORD_TOKEN, so it does nothing");
                }
                tracing::info!("no DISCORD_TOKEN: starting the local console");
                return console(config, false, None).await;
            }
            let mut settings = config.discord.clone();
            if let Some(shards) = shards {
                settings.shards = shards;
            }
            let health = config.health_listen;
            if health.is_some() {
                // Before the commands load: each registers its series then.
                sandbot::telemetry::install();
            }
            let dispatcher = Arc::new(Dispatcher::start(config).await?);
            let _reloader = reload::start(dispatcher.clone())?;
            if let Some(listen) = health {
                if settings.gateway {
                    dispatcher.health().expect_gateway();
                }
                sandbot::health::serve(listen, dispatcher.clone()).await?;
            }
            start_dashboard(&dispatcher).await?;
            discord::run(dispatcher, &settings).await
        }
        Command::Console { jsonl, out } => console(config()?, jsonl, out).await,
        Command::Transcribe { files } => {
            let config = config()?;
            let speech = speech::transcriber(&config.speech)?
                .context("speech recognition is turned off in the config (`speech.transcriber`)")?;
            for file in files {
                let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
                let started = std::time::Instant::now();
                let text = speech.transcribe(bytes).await.with_context(|| format!("{}", file.display()))?;
                tracing::info!(file = %file.display(), ms = started.elapsed().as_millis() as u64, "transcribed");
                println!("{text}");
            }
            Ok(())
        }
        // These two need no loaded config.
        Command::Check { wasm, name } => {
            let report = sandbot::check::check(&wasm).await.with_context(|| format!("{}", wasm.display()))?;
            println!("{} fits sandbot:bot.\n{report}", wasm.display());
            let Some(path) = explicit_config else {
                anyhow::ensure!(name.is_none(), "--name picks an entry of the config: give --config too");
                return Ok(());
            };
            let config = Config::load(&path).with_context(|| format!("the config {}", path.display()))?;
            let fit = sandbot::check::against(&config, &report, &wasm, name.as_deref());
            print!("\nconfig:   {}\n{fit}", path.display());
            anyhow::ensure!(fit.is_fit(), "{}: the config's entry does not give it what it calls", wasm.display());
            Ok(())
        }
        Command::Try { wasm, message, grants, read, seed, operator, attach, out, jsonl } => {
            let grants = match grants.as_slice() {
                [] => None,
                given => Some(given.iter().filter(|g| !g.is_empty()).cloned().collect()),
            };
            let trial =
                sandbot::trial::Trial { wasm, message, grants, read, seed, operator, attachments: attach, out, jsonl };
            sandbot::trial::run(trial, Box::new(std::io::stdout())).await
        }
        Command::New { name } => {
            anyhow::ensure!(
                std::path::Path::new("guests/sdk").is_dir(),
                "run `sandbot new` from the sandbot workspace (the folder with guests/sdk)"
            );
            let made = sandbot::scaffold::create(&name, std::path::Path::new("guests"), &config_path)?;
            println!("created {}", made.crate_dir.display());
            if made.config_entry_added {
                println!("added [commands.{name}] to {}", config_path.display());
            } else {
                println!("{} already has [commands.{name}]; left as it is", config_path.display());
            }
            println!("next: `make build`, then `!{name} hello` in the console (`make run`)");
            Ok(())
        }
        Command::Calibrate {
            train,
            dev,
            test,
            max_false,
            misses,
            hits,
            words_weight,
            name_penalty,
            kind_penalty,
            embeddings,
        } => {
            let config = config()?;
            let answers = config.model.answers().context("the model is turned off in the config (`model.provider`)")?;
            let mut scoring = answers.scoring;
            if let Some(dir) = &embeddings {
                let architecture = sandbot::services::model::embedder::architecture(dir);
                scoring = sandbot::services::model::retrieval::Scoring::calibrated(architecture.as_deref());
            }
            let embeddings = embeddings.as_deref().or(answers.embeddings.as_deref());
            scoring.words_weight = words_weight.unwrap_or(scoring.words_weight);
            scoring.name_penalty = name_penalty.unwrap_or(scoring.name_penalty);
            scoring.kind_penalty = kind_penalty.unwrap_or(scoring.kind_penalty);
            let (knowledge, _dir) = calibrate::teach(calibrate::read_examples(&train)?, embeddings, scoring).await?;
            if hits {
                for set in std::iter::once(&dev).chain(test.as_ref()) {
                    print!("{}", calibrate::hits(&knowledge, &calibrate::read_questions(set)?, 8).await?);
                }
                return Ok(());
            }
            let asked = calibrate::ask(&knowledge, &calibrate::read_questions(&dev)?).await?;
            println!("{} taught answers; {} questions in {}\n", knowledge.len(), asked.len(), dev.display());
            println!("{}", calibrate::table(&asked));
            let (accept, near) = calibrate::choose(&asked, max_false, 0.1);
            let shown = |name: &str, asked: &[calibrate::Asked]| {
                let f = calibrate::Figures::at(asked, accept);
                let (para_near, unrelated_near) = calibrate::near_figures(asked, near, accept);
                println!(
                    "{name}: {}/{} paraphrases answered with their fact ({:.0}%), {} with another; \
                     {}/{} unrelated questions answered with a taught fact ({:.0}%); \
                     near band: {para_near} more paraphrases reach the language model with their fact, \
                     {unrelated_near} unrelated questions reach it",
                    f.right,
                    f.paraphrases,
                    100.0 * f.right_rate(),
                    f.wrong,
                    f.false_answers,
                    f.unrelated,
                    100.0 * f.false_answer_rate()
                );
                if misses {
                    print!("{}", calibrate::misses(asked, accept));
                }
            };
            println!("[model]\nmin_similarity = {accept:.2}\nnear_similarity = {near:.2}\n");
            shown("development set", &asked);
            if let Some(test) = test {
                let asked = calibrate::ask(&knowledge, &calibrate::read_questions(&test)?).await?;
                shown("test set", &asked);
            }
            Ok(())
        }
        Command::Export { table } => {
            let config = config()?;
            let store = store::open(config.store_url(), &config.data_dir).await?;
            let rows = store.export(table).await?;
            let count = store::write_lines(&rows, &mut std::io::stdout().lock())?;
            tracing::info!(rows = count, "exported");
            Ok(())
        }
        Command::Deploy { name, wasm, grants, read, operators_only, entry } => {
            let config = config()?;
            let entry = match entry {
                Some(file) => {
                    let text =
                        std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
                    toml::from_str(&text).with_context(|| format!("{}", file.display()))?
                }
                None if grants.is_empty() && read.is_empty() && operators_only.is_none() => {
                    deploy::entry_from_config(&config, &name)?
                }
                None => RawEntry { grants, read, operators_only, ..RawEntry::default() },
            };
            let store = store::open(config.store_url(), &config.data_dir).await?;
            let (deployment, report) =
                deploy::deploy(&config, &*store, &name, &wasm, &entry, &deploy::operator()).await?;
            println!("{report}");
            let reach = if config.store_url().is_some() {
                "every process loads it within a second"
            } else {
                "a running bot on this SQLite store loads it at its next `!reload` or start"
            };
            println!("deployed {name} as #{} (sha256 {}); {reach}", deployment.id, &deployment.sha256[..12]);
            Ok(())
        }
        Command::Rollback { name } => {
            let config = config()?;
            let store = store::open(config.store_url(), &config.data_dir).await?;
            match store.rollback(&name).await? {
                Some(now) => println!("rolled {name} back to #{} (sha256 {})", now.id, &now.sha256[..12]),
                None if config.commands.contains_key(&name) => {
                    println!("rolled {name} back to the config's entry ({})", config.commands[&name].wasm.display())
                }
                None => println!("rolled {name} back; nothing else serves it, so it is gone"),
            }
            Ok(())
        }
        Command::Versions => {
            let config = config()?;
            let store = store::open(config.store_url(), &config.data_dir).await?;
            print!("{}", deploy::versions(&store.deployments().await?, &store.current_deployments().await?));
            Ok(())
        }
        Command::MigrateStore { to, from } => {
            anyhow::ensure!(store::is_postgres(&to), "--to must be a PostgreSQL url (postgres://user@host/database)");
            let from = match from {
                Some(path) => path,
                None => config()?.data_dir.join("sandbot.db"),
            };
            anyhow::ensure!(from.is_file(), "there is no SQLite store at {}", from.display());
            let sqlite = SqliteStore::open(&from).with_context(|| format!("{}", from.display()))?;
            let dump = sqlite.dump().await?;
            let postgres = PgStore::connect(&to).await.context("cannot use the PostgreSQL database")?;
            let copied = postgres.import(&dump).await?;
            println!("copied {copied} from {}", from.display());
            Ok(())
        }
    }
}

async fn console(config: Config, jsonl: bool, out: Option<PathBuf>) -> anyhow::Result<()> {
    let out_dir = out.unwrap_or_else(|| config.data_dir.join("console"));
    let prefix = config.prefix.clone();
    let health = config.health_listen;
    if health.is_some() {
        sandbot::telemetry::install();
    }
    let dispatcher = Arc::new(Dispatcher::start(config).await?);
    let _reloader = reload::start(dispatcher.clone())?;
    if let Some(listen) = health {
        sandbot::health::serve(listen, dispatcher.clone()).await?;
    }
    start_dashboard(&dispatcher).await?;
    let mode = if jsonl { Mode::JsonLines } else { Mode::Interactive };
    let console = Console::new(Box::new(std::io::stdout()), mode, &out_dir)
        .with_context(|| format!("cannot create the output folder {}", out_dir.display()))?;
    if mode == Mode::Interactive && std::io::stdin().is_terminal() {
        eprintln!("sandbot console: type a message, or {prefix}help. Ctrl-D quits.");
    }
    // Run on a worker thread, like an adapter's tasks: from `block_on`,
    // every deadline timer would have to wake the runtime's timer thread.
    let session = tokio::spawn(async move {
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        console.run(&dispatcher, stdin).await
    });
    tokio::select! {
        result = session => result??,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
    Ok(())
}

/// Starts the dashboard when the config has one, and says where it is
/// (with the token it made up, when the config gave none).
async fn start_dashboard(dispatcher: &Arc<Dispatcher>) -> anyhow::Result<()> {
    let Some(settings) = dispatcher.config().dashboard.clone() else { return Ok(()) };
    let started = sandbot::dashboard::serve(&settings, dispatcher.clone()).await?;
    let url = format!("http://{}/", started.address);
    match started.made_up_token {
        Some(token) => eprintln!("dashboard: {url}  (token for this run: {token})"),
        None => eprintln!("dashboard: {url}  (log in with [dashboard] token or SANDBOT_DASHBOARD_TOKEN)"),
    }
    tracing::info!(address = %url, "the dashboard is listening");
    Ok(())
}
