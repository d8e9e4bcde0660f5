//! Runs guests: compile once, then a fresh, limited instance per message.
//!
//! Every invocation gets its own [`Store`]: memory capped by a resource
//! limiter, a wall-clock deadline enforced by epochs (the guest yields its
//! thread every tick, so a spinning guest never stalls other users), a cap
//! on bytes passed to the host per call, and a permit from a semaphore
//! sized to the instance pool. The store is dropped when the call returns:
//! nothing survives from one message to the next.
//!
//! The deadline is enforced twice: by epochs while guest code runs (a
//! spinning guest traps), and by a timer around the whole call, which also
//! stops a guest waiting in a host call or in WASI's own `poll` (a guest
//! can `sleep`).

pub mod cache;
pub mod engine;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{CallHook, Engine, PoolConcurrencyLimitError, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::types::Failure;
use crate::bindings::{types, v0_1, v0_2_1, Command, CommandPre};
use crate::config::Limits;
use crate::error::InvokeError;
use crate::host::{self, GuestCtx};
use crate::telemetry;
use crate::text::printable;
use cache::CompileCache;
pub use engine::{EngineSettings, SPARES};

/// What a guest's stderr (panic messages) may fill, for the log.
const STDERR_CAPACITY: usize = 4096;

/// The data of one invocation's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    stderr: MemoryOutputPipe,
    /// The slow lane's turn this invocation holds while its code runs, if
    /// any (see [`SLOW_AFTER`]).
    slow_turn: Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>,
    /// Times the epoch's callback ran: tells wasmtime's entries into the
    /// host for a tick from the component's calls (see [`Sandbox::warm`]).
    epoch_callbacks: u64,
    pub guest: GuestCtx,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and remembers that it did, so an allocation bomb is
/// reported as "out of memory" rather than as a generic trap.
struct MemoryLimiter {
    max_bytes: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Refused, not trapped: memory.grow returns −1 as WebAssembly
        // says, and a guest that checks goes on. One that aborts after it
        // is still reported as out of memory.
        if desired > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Host-side handles one invocation may hold (streams, clock
/// subscriptions, answers): each costs host memory outside the guest's
/// limit. wasmtime's default is a million.
const MAX_RESOURCES: usize = 10_000;

/// Random bytes in one WASI call; std asks for a few dozen. WASI's
/// default is 64 MiB, allocated on the host.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// Epoch ticks (10 ms each) an invocation runs as it likes; past them it
/// is a long runner, and its code runs only with a turn of the slow lane,
/// taken again at every tick and given back whenever it calls the host
/// (a guest waiting for an answer holds no turn). `!hi` ends within its
/// first tick, so a short command never waits behind commands that spin
/// to their deadline.
const SLOW_AFTER: u64 = 3;

/// Long runners that may run at once: one thread fewer than the machine
/// has, so that short commands always find one.
fn slow_lane_turns() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1)
}

/// The process's sandbox: one engine, one linker, one pool.
pub struct Sandbox {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// Slots of the pool for messages, `slots` in all.
    permits: Semaphore,
    slots: usize,
    /// Turns for invocations past their first ticks (see [`SLOW_AFTER`]).
    slow_lane: Arc<Semaphore>,
    /// The pool's one extra slot, for `describe()` (see [`engine::build`]).
    describing: Semaphore,
    /// Spare instances alive now, at most [`SPARES`].
    spares: Arc<AtomicU32>,
    /// The epoch's ticks so far (see [`Sandbox::warm`]).
    ticks: Arc<AtomicU64>,
    cache: Option<Arc<CompileCache>>,
    /// Set by [`Sandbox::pin_randomness`]; `None`: fresh randomness per instance.
    random_seed: Option<u64>,
    _ticker: engine::EpochTicker,
}

/// One command's instance made ahead of its message: instantiating is
/// most of what the sandbox costs a message (≈30 µs of `!hi` through
/// Discord), so it is done after a message has been answered, for the
/// next one. Each message still gets an instance nobody used before: a
/// spare has run only the component's own start-up, which may not call
/// the host (a component whose start-up does is instantiated per message,
/// as it comes). A command swapped or reconfigured drops its spare.
#[derive(Default)]
pub struct SpareSlot {
    spare: std::sync::Mutex<Option<Spare>>,
    /// A spare is being made: one at a time.
    warming: AtomicBool,
    /// Its start-up failed or called the host: no spares for it.
    refused: AtomicBool,
    /// Start-ups in a row that missed, for a reason that can be the
    /// moment's rather than the component's (see [`SpareSlot::missed`]);
    /// [`MISSED_START_UPS`] are the component's.
    missed: AtomicU32,
}

/// Start-ups in a row that missed after which a command gets no more
/// spares (a late one costs a worker the whole deadline).
const MISSED_START_UPS: u32 = 3;

impl SpareSlot {
    fn take(&self) -> Option<Spare> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether a spare waits.
    pub fn ready(&self) -> bool {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Whether the command gets no more spares.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    /// Keeps a spare made in time: the start-ups that missed before it
    /// were the moment's.
    fn keep(&self, spare: Spare) {
        self.made_one();
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(spare);
    }

    fn made_one(&self) {
        self.missed.store(0, Ordering::Release);
    }

    /// A start-up that ran past the deadline (a busy machine, maybe), or
    /// that entered the host just as the epoch ticked (which can be
    /// wasmtime's own call for the tick, see [`Sandbox::warm`]): tried
    /// again after the next message, unless it keeps happening.
    fn missed(&self, command: &str, why: &str) {
        let strikes = self.missed.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::debug!(command, strikes, why, "a spare's start-up missed");
        if strikes >= MISSED_START_UPS {
            self.refuse(command, why);
        }
    }

    fn refuse(&self, command: &str, why: &str) {
        if !self.refused.swap(true, Ordering::AcqRel) {
            tracing::info!(command, why, "no more spare instances: each message instantiates the command");
        }
    }
}

/// A spare's start-up called the host: what a message's instance does
/// must wait for its message.
#[derive(Debug, thiserror::Error)]
#[error("called the host while made ahead of a message")]
struct CalledTheHost;

struct Spare {
    store: Store<HostState>,
    instance: Instance,
    _counted: SpareCount,
}

/// An instantiated component, of either contract.
enum Instance {
    Current(Command),
    V0_2_1(v0_2_1::Command),
    V0_1(v0_1::Command),
}

/// A spare being made; the slot is free for another once this is dropped.
struct Warming<'a>(&'a AtomicBool);

impl Drop for Warming<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One of the pool's [`SPARES`] places, given back when dropped.
struct SpareCount(Arc<AtomicU32>);

impl SpareCount {
    fn take(count: &Arc<AtomicU32>) -> Option<SpareCount> {
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < SPARES).then_some(n + 1)).ok()?;
        Some(SpareCount(count.clone()))
    }
}

impl Drop for SpareCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn instantiate(pre: &GuestPre, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
    Ok(match pre {
        GuestPre::Current(pre) => Instance::Current(pre.instantiate_checked_at_load(store).await?),
        GuestPre::V0_2_1(pre) => Instance::V0_2_1(pre.instantiate_checked_at_load(store).await?),
        GuestPre::V0_1(pre) => Instance::V0_1(pre.instantiate_checked_at_load(store).await?),
    })
}

/// A component linked against the version of the world it was built for.
#[derive(Clone)]
pub enum GuestPre {
    /// `sandbot:bot@0.2.2`, the current contract.
    Current(CommandPre<HostState>),
    /// `sandbot:bot@0.2.0` or 0.2.1: the current interfaces (which only
    /// add to theirs), and a `handle` whose `err` is plain text.
    V0_2_1(v0_2_1::CommandPre<HostState>),
    /// `sandbot:bot@0.1.0`: described and invoked through `host::v0_1`.
    V0_1(v0_1::CommandPre<HostState>),
}

impl GuestPre {
    fn component(&self) -> &Component {
        match self {
            GuestPre::Current(pre) => pre.instance_pre().component(),
            GuestPre::V0_2_1(pre) => pre.instance_pre().component(),
            GuestPre::V0_1(pre) => pre.instance_pre().component(),
        }
    }

    /// The contract's version the component was built for, for operators:
    /// what its `sandbot:bot` imports name.
    pub fn version(&self) -> String {
        let engine = match self {
            GuestPre::Current(pre) => pre.instance_pre().engine(),
            GuestPre::V0_2_1(pre) => pre.instance_pre().engine(),
            GuestPre::V0_1(pre) => pre.instance_pre().engine(),
        };
        self.component()
            .component_type()
            .imports(engine)
            .find_map(|(name, _)| {
                name.strip_prefix("sandbot:bot/").and_then(|rest| rest.split_once('@')).map(|(_, v)| v.to_string())
            })
            .unwrap_or_else(|| if matches!(self, GuestPre::V0_1(_)) { "0.1.0" } else { "0.2" }.to_string())
    }
}

/// A component compiled and checked against the world.
pub struct Prepared {
    pub pre: GuestPre,
    /// The wasm's sha256, hex.
    pub sha256: String,
    /// Loaded from the compile cache rather than compiled.
    pub cached: bool,
}

impl Sandbox {
    pub fn new(settings: EngineSettings) -> anyhow::Result<Sandbox> {
        let engine = engine::build(settings)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)?;
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Sandbox {
            engine,
            linker: Arc::new(linker),
            permits: Semaphore::new(settings.max_concurrency as usize),
            slots: settings.max_concurrency as usize,
            slow_lane: Arc::new(Semaphore::new(slow_lane_turns())),
            describing: Semaphore::new(1),
            spares: Arc::default(),
            ticks: ticker.ticks(),
            cache: None,
            random_seed: None,
            _ticker: ticker,
        })
    }

    /// Every instance's random numbers (secure and insecure alike) from
    /// `seed`: the same message gets the same output (`sandbot try --seed`).
    pub fn pin_randomness(&mut self, seed: u64) {
        self.random_seed = Some(seed);
    }

    /// The pool's slots running a message now.
    pub fn slots_in_use(&self) -> usize {
        self.slots.saturating_sub(self.permits.available_permits())
    }

    /// Keeps compiled components in `dir` (see [`cache`]); on an error the
    /// sandbox stays uncached.
    pub fn use_cache(&mut self, dir: &Path) -> std::io::Result<()> {
        self.cache = Some(Arc::new(CompileCache::open(dir, &self.engine)?));
        Ok(())
    }

    /// Compiles a component (or loads it from the cache) and checks it
    /// against the world: every import must be one the host provides, and
    /// `describe` and `handle` must be exported. Runs on the blocking pool
    /// (compiling takes milliseconds to seconds).
    pub async fn prepare(&self, wasm: Vec<u8>) -> anyhow::Result<Prepared> {
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Prepared> {
            let sha256 = cache::sha256_hex(&wasm);
            let cached = cache.as_ref().and_then(|c| c.load(&engine, &sha256));
            let from_cache = cached.is_some();
            let component = match cached {
                Some(component) => component,
                None => Component::new(&engine, &wasm)?,
            };
            let instance_pre = linker.instantiate_pre(&component)?;
            // The exports' types tell the versions apart (their names are
            // the same): the current one first, then the ones kept.
            let pre = match CommandPre::new(instance_pre.clone()) {
                Ok(pre) => GuestPre::Current(pre),
                Err(current) => {
                    if let Ok(pre) = v0_2_1::CommandPre::new(instance_pre.clone()) {
                        GuestPre::V0_2_1(pre)
                    } else if let Ok(pre) = v0_1::CommandPre::new(instance_pre) {
                        GuestPre::V0_1(pre)
                    } else {
                        // The current world's complaint is the useful one.
                        return Err(current.into());
                    }
                }
            };
            // Only what fits the world is worth keeping.
            if let (false, Some(cache)) = (from_cache, &cache) {
                cache.store(&sha256, &component);
            }
            Ok(Prepared { pre, sha256, cached: from_cache })
        })
        .await?
    }

    /// The interfaces a prepared component imports, as the WIT names them.
    pub fn imports(&self, pre: &GuestPre) -> Vec<String> {
        pre.component().component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect()
    }

    /// Each imported interface with the functions the component takes from
    /// it: the linker trims an instance's type to what the code calls.
    pub fn imported_functions(&self, pre: &GuestPre) -> Vec<(String, Vec<String>)> {
        use wasmtime::component::types::ComponentItem;
        pre.component()
            .component_type()
            .imports(&self.engine)
            .map(|(name, item)| {
                let functions = match item.ty {
                    ComponentItem::ComponentInstance(instance) => instance
                        .exports(&self.engine)
                        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(function, _)| function.to_string())
                        .collect(),
                    _ => Vec::new(),
                };
                (name.to_string(), functions)
            })
            .collect()
    }

    /// Calls `describe` on a fresh instance; the guest context comes back
    /// (what `describe()` read).
    pub async fn describe(
        &self,
        pre: &GuestPre,
        guest: GuestCtx,
        limits: &Limits,
    ) -> (GuestCtx, Result<types::CommandInfo, InvokeError>) {
        let Ok(_permit) = self.describing.acquire().await else {
            return (guest, Err(InvokeError::Unavailable("shutting down".into())));
        };
        let mut store = self.new_store(guest, limits);
        self.arm(&mut store, limits);
        let run = async {
            match pre {
                GuestPre::Current(pre) => pre.instantiate_async(&mut store).await?.call_describe(&mut store).await,
                GuestPre::V0_2_1(pre) => pre.instantiate_async(&mut store).await?.call_describe(&mut store).await,
                GuestPre::V0_1(pre) => {
                    let info = pre.instantiate_async(&mut store).await?.call_describe(&mut store).await?;
                    Ok(host::v0_1::command_info(info))
                }
            }
        };
        let result = match tokio::time::timeout(limits.deadline, run).await {
            Err(_) => Err(InvokeError::Deadline(limits.deadline)),
            Ok(Ok(info)) => Ok(info),
            Ok(Err(trap)) => Err(classify(trap, store.data(), limits)),
        };
        (store.into_data().guest, result)
    }

    /// Calls `handle` on a fresh instance: the command's spare if one
    /// waits (see [`SpareSlot`]), else one made now. The store is dropped
    /// on return; the guest context comes back, with what the invocation
    /// left to do (training jobs to report).
    pub async fn handle(
        &self,
        pre: &GuestPre,
        spare: &SpareSlot,
        guest: GuestCtx,
        invocation: &types::Invocation,
    ) -> (GuestCtx, Result<(), InvokeError>) {
        let limits = guest.command.limits.clone();
        let permit = match self.permits.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                let _waiting = telemetry::Waiting::start();
                self.permits.acquire().await
            }
        };
        let Ok(_permit) = permit else {
            return (guest, Err(InvokeError::Unavailable("shutting down".into())));
        };
        let (mut store, made) = match spare.take() {
            Some(Spare { mut store, instance, .. }) => {
                store.data_mut().guest = guest;
                (store, Some(instance))
            }
            None => (self.new_store(guest, &limits), None),
        };
        // The deadline counts from now, for a spare too.
        self.arm(&mut store, &limits);
        let run = async {
            let instance = match made {
                Some(instance) => instance,
                None => instantiate(pre, &mut store).await?,
            };
            match instance {
                Instance::Current(command) => command.call_handle(&mut store, invocation).await,
                Instance::V0_2_1(command) => {
                    command.call_handle(&mut store, invocation).await.map(|r| r.map_err(Failure::Reply))
                }
                Instance::V0_1(command) => {
                    let invocation = host::v0_1::invocation(invocation);
                    command.call_handle(&mut store, &invocation).await.map(|r| r.map_err(Failure::Reply))
                }
            }
        };
        let result = match tokio::time::timeout(limits.deadline, run).await {
            Err(_) => Err(InvokeError::Deadline(limits.deadline)),
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(failure))) => Err(InvokeError::from(failure)),
            Ok(Err(trap)) => Err(classify(trap, store.data(), &limits)),
        };
        (store.into_data().guest, result)
    }

    /// Makes the command's next instance, if it has none waiting and the
    /// pool has a spare place. `nobody` makes a context of no message: its
    /// start-up may not call the host at all (the call traps, and the
    /// command gets no spares), so it never serves one.
    pub async fn warm(&self, pre: &GuestPre, slot: &SpareSlot, nobody: impl FnOnce() -> GuestCtx, limits: &Limits) {
        if slot.refused() || slot.ready() || slot.warming.swap(true, Ordering::AcqRel) {
            return;
        }
        // Given back however this ends, even if the caller goes away.
        let _warming = Warming(&slot.warming);
        if let Some(counted) = SpareCount::take(&self.spares) {
            let mut store = self.new_store(nobody(), limits);
            // Read before the deadline is set: the epoch cannot have
            // passed it without this count moving.
            let ticks = self.ticks.clone();
            let mut seen = ticks.load(Ordering::SeqCst);
            self.arm(&mut store, limits);
            // wasmtime enters the host for the component's imports, and
            // for its own reasons too, the epoch's callback among them (at
            // every tick). One entry a tick may be the callback's; any other
            // is refused before it runs. The one let through is checked on
            // its way out: if the callback did not run, it was a call (made
            // just after a tick), and the start-up fails all the same.
            let mut let_through: Option<u64> = None;
            store.call_hook(move |store, hook| match hook {
                CallHook::CallingHost => {
                    let now = ticks.load(Ordering::SeqCst);
                    if now == seen {
                        return Err(wasmtime::Error::new(CalledTheHost));
                    }
                    seen = now;
                    let_through = Some(store.data().epoch_callbacks);
                    Ok(())
                }
                CallHook::ReturningFromHost => match let_through.take() {
                    Some(before) if store.data().epoch_callbacks == before => Err(wasmtime::Error::new(CalledTheHost)),
                    _ => Ok(()),
                },
                _ => Ok(()),
            });
            let made = tokio::time::timeout(limits.deadline, instantiate(pre, &mut store)).await;
            store.data().slow_turn.lock().unwrap_or_else(|p| p.into_inner()).take();
            let command = |store: &Store<HostState>| store.data().guest.command.name.clone();
            match made {
                Ok(Ok(instance)) => slot.keep(Spare { store, instance, _counted: counted }),
                // The pool is busy now; another time.
                Ok(Err(e)) if e.chain().any(|c| c.is::<PoolConcurrencyLimitError>()) => {}
                Err(_) => slot.missed(&command(&store), "its start-up ran past the deadline"),
                Ok(Err(e)) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                    slot.missed(&command(&store), "its start-up ran past the deadline")
                }
                // Most likely the component's doing; possibly a host call
                // at the very instant of a tick, counted before the epoch
                // moved.
                Ok(Err(e)) if e.chain().any(|c| c.is::<CalledTheHost>()) => {
                    slot.missed(&command(&store), "its start-up calls the host")
                }
                Ok(Err(e)) => slot.refuse(&command(&store), &format!("its start-up failed: {e:#}")),
            }
        }
    }

    /// A store for one invocation, its limits set; [`Sandbox::arm`] starts
    /// its clock.
    fn new_store(&self, guest: GuestCtx, limits: &Limits) -> Store<HostState> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Nothing but what Rust's std needs: no env, no args, no preopens,
        // no sockets; stderr captured for the log.
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone()).max_random_size(MAX_RANDOM_BYTES);
        if let Some(seed) = self.random_seed {
            use rand::SeedableRng;
            wasi.secure_random(rand::rngs::StdRng::seed_from_u64(seed))
                .insecure_random(rand::rngs::StdRng::seed_from_u64(seed.rotate_left(32)))
                .insecure_random_seed(u128::from(seed));
        }
        let wasi = wasi.build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = HostState {
            wasi,
            table,
            limiter: MemoryLimiter { max_bytes: limits.memory_bytes, exceeded: false },
            stderr,
            slow_turn: Arc::default(),
            epoch_callbacks: 0,
            guest,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
    }

    /// Starts the invocation's clock: the deadline from now, the bytes it
    /// may pass to the host, and the slow lane past its first ticks.
    fn arm(&self, store: &mut Store<HostState>, limits: &Limits) {
        store.set_hostcall_fuel(limits.hostcall_bytes);
        let deadline = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        let lane = self.slow_lane.clone();
        let turn = store.data().slow_turn.clone();
        // The turn is given back at every tick, at every call into the
        // host, and when the store is dropped.
        store.call_hook(|store, hook| {
            if matches!(hook, CallHook::CallingHost) {
                store.data().slow_turn.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            Ok(())
        });
        let mut ticks = 0u64;
        store.epoch_deadline_callback(move |mut store| {
            store.data_mut().epoch_callbacks += 1;
            if Instant::now() >= deadline {
                return Err(Trap::Interrupt.into());
            }
            ticks += 1;
            if ticks < SLOW_AFTER {
                return Ok(UpdateDeadline::Yield(1));
            }
            turn.lock().unwrap_or_else(|p| p.into_inner()).take();
            let (lane, turn) = (lane.clone(), turn.clone());
            // The semaphore is fair: long runners take turns in order.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    if let Ok(next) = lane.acquire_owned().await {
                        *turn.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
                    }
                }),
            ))
        });
    }
}

/// Names the reason a call trapped, from the trap and what the store saw.
fn classify(error: wasmtime::Error, state: &HostState, limits: &Limits) -> InvokeError {
    if state.limiter.exceeded {
        return InvokeError::OutOfMemory { limit_bytes: limits.memory_bytes };
    }
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).trim().to_string();
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Deadline(limits.deadline),
        Some(Trap::StackOverflow) => InvokeError::StackOverflow,
        // Guests abort on panic, which is an `unreachable` instruction; the
        // panic message went to stderr first.
        // The message is the guest's: escaped, so it cannot forge log lines.
        Some(Trap::UnreachableCodeReached) if !stderr.is_empty() => InvokeError::Panic(printable(&stderr)),
        Some(trap) => InvokeError::Crashed(trap.to_string()),
        None => {
            let text = format!("{error:#}");
            if text.contains("fuel allocated for hostcalls") {
                InvokeError::TooMuchData { limit_bytes: limits.hostcall_bytes }
            } else {
                InvokeError::Crashed(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One late start-up can be the machine's load; only
    /// [`MISSED_START_UPS`] in a row stop a command's spares.
    #[test]
    fn spares_stop_after_late_start_ups_in_a_row_only() {
        let slot = SpareSlot::default();
        for _ in 1..MISSED_START_UPS {
            slot.missed("test", "late");
        }
        assert!(!slot.refused(), "refused before {MISSED_START_UPS} late start-ups");
        // A spare made in time starts the count again.
        slot.made_one();
        for _ in 1..MISSED_START_UPS {
            slot.missed("test", "late");
        }
        assert!(!slot.refused(), "a start-up in time did not reset the count");
        slot.missed("test", "late");
        assert!(slot.refused(), "still making spares after {MISSED_START_UPS} late start-ups in a row");
    }
}
