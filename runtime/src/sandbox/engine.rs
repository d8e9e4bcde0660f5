//! The one wasmtime engine of the process, and the thread that ticks its
//! epoch. wasmtime is narrowed here to what sandbot uses: async calls,
//! the pooling allocator with copy-on-write memory images, and epochs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of deadlines, and how
/// often a running guest yields its thread to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Sizing of the engine, from the config.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Instances alive at once (the pool's size).
    pub max_concurrency: u32,
    /// The largest linear memory any guest may have.
    pub max_memory_bytes: usize,
}

/// Instances made ahead of their message, one per command at most (see
/// `SpareSlot`): they have places of their own in the pool.
pub const SPARES: u32 = 16;

/// Core module instances one component may make (see `build`).
const MAX_CORE_INSTANCES: u32 = 32;

/// How many freed regions are reset together (see `build`).
const DECOMMIT_BATCH: usize = 16;

pub fn build(settings: EngineSettings) -> wasmtime::Result<Engine> {
    // One slot more than messages may use: `describe()` at load time has
    // it to itself, so a `!reload` (which holds a message's slot while it
    // waits) never waits for the pool it is holding.
    let n = settings.max_concurrency + 1;
    // Spares hold an instance, its memory and tables; a stack only while
    // one is made, outside the messages' places.
    let instances = n + SPARES;
    // Freed memories, tables and stacks wait in batches to be reset, and
    // one thread's flush of a batch keeps its slots from every other
    // thread until it ends: without this headroom, a burst that holds
    // every message slot saw instantiations fail ("maximum concurrent
    // limit … reached"). The semaphores in `Sandbox` still bound how many
    // guests run.
    let limbo = DECOMMIT_BATCH as u32;
    let mut pool = PoolingAllocationConfig::new();
    // A Rust wasip2 component is one core module plus a few small shims;
    // a Python one (componentize-py) links CPython, libc and their shims
    // as 14 core instances sharing one memory and one table.
    // Per-component maxima times `n` fit in the totals, so no guest can
    // starve the pool for others; one memory per component, so the memory
    // limit is the guest's whole budget.
    pool.total_component_instances(instances)
        .total_core_instances(instances * MAX_CORE_INSTANCES)
        .total_memories(instances + limbo)
        .total_tables(instances * 8 + limbo)
        .total_stacks(instances + limbo)
        .max_memories_per_component(1)
        .max_tables_per_component(8)
        .max_core_instances_per_component(MAX_CORE_INSTANCES)
        .max_memory_size(settings.max_memory_bytes)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // Reset a freed slot by rewriting only the pages the guest touched
        // (found with Linux's PAGEMAP_SCAN where available) instead of
        // `madvise`: no TLB shootdowns across cores, no page faults next time.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        // What still needs `madvise` is done in batches.
        .decommit_batch_size(DECOMMIT_BATCH);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .max_wasm_stack(512 << 10)
        .async_stack_size(2 << 20);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let engine = engine.clone();
        let (flag, count) = (stop.clone(), ticks.clone());
        let thread = std::thread::Builder::new().name("sandbot-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                // Counted before the engine's epoch moves: a guest that
                // sees the new epoch finds this count moved too.
                count.fetch_add(1, Ordering::SeqCst);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop, ticks, thread: Some(thread) })
    }

    /// The ticks so far. wasmtime cannot be asked its epoch; this tells
    /// whether one passed (see `Sandbox::warm`).
    pub fn ticks(&self) -> Arc<AtomicU64> {
        self.ticks.clone()
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
