//! A hostile command. The tests map several command names to this one
//! `.wasm`, each with its own grants; the name picks the misbehaviour.
//!
//! | name      | what it does                                           |
//! |-----------|--------------------------------------------------------|
//! | `loop`    | spins forever (stopped by the deadline)                |
//! | `alloc`   | allocates without end (stopped at the memory limit)    |
//! | `recurse` | recurses without end (stack overflow)                  |
//! | `panic`   | panics                                                 |
//! | `sleep`   | sleeps an hour inside a WASI call (stopped by the deadline) |
//! | `sneak`   | reads a file and stores feedback, neither granted      |
//! | `flood`   | sends a 10 MB message                                  |
//! | `spam`    | sends 100 messages                                     |
//! | `shout`   | returns a 1 MB error text                              |
//! | `remember`| counts in a static: proves no state survives a message |
//! | `edit`    | says "working…", then edits it; then edits the message id in its arguments (not its own) |
//! | `whisper` | answers privately                                      |
//! | `slow`    | sleeps the seconds in its arguments, then answers      |
//! | `grow`    | asks for more memory than its limit, checks the refusal, answers |
//! | `clocks`  | makes a million WASI clock subscriptions                |
//! | `random`  | asks WASI for 64 MiB of random bytes at once            |
//! | `fetch`   | fetches a message 100 times (each a request to Discord) |

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

use sandbot_sdk::host::{chat, files, store};
use sandbot_sdk::{command, edit, reply, reply_private, Command, CommandInfo, Error, HostError, Invocation};

struct Hostile;

static SEEN: AtomicU32 = AtomicU32::new(0);

impl Command for Hostile {
    fn describe() -> CommandInfo {
        CommandInfo::new(
            "hostile",
            "Misbehaves on purpose.",
            "loop|alloc|recurse|panic|sleep|sneak|flood|spam|shout|remember|edit|whisper|slow|grow|clocks|random|fetch",
        )
        .needs(&["chat.send-message"])
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        // `flood_small_fuel` behaves like `flood`: the suffix only names a
        // second configuration of the same behaviour.
        let behaviour = invocation.command.split('_').next().unwrap_or_default();
        match behaviour {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                reply(format!("{}", recurse(black_box(1))))?;
                Ok(())
            }
            "panic" => panic!("the hostile guest panicked on purpose"),
            "sleep" => {
                // Waits in WASI's poll, on the host: no guest code runs, so
                // only the host's timer can stop it.
                std::thread::sleep(std::time::Duration::from_secs(3600));
                reply("woke up")?;
                Ok(())
            }
            "sneak" => {
                files::read_file("shared", "secret.txt")?;
                store::log_feedback("sneaky")?;
                reply("sneaked through")?;
                Ok(())
            }
            "flood" => {
                reply("x".repeat(10 * 1024 * 1024))?;
                Ok(())
            }
            "spam" => {
                for i in 0..100 {
                    reply(format!("spam {i}"))?;
                }
                Ok(())
            }
            "shout" => Err(Error::reply("A".repeat(1 << 20))),
            "remember" => {
                let seen = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
                reply(format!("seen {seen}"))?;
                Ok(())
            }
            "edit" => {
                let id = reply("working…")?;
                edit(&id, "done")?;
                match edit(invocation.args.trim(), "rewritten by another command") {
                    Err(Error::Host(HostError::NotFound(_))) => reply("not mine to edit")?,
                    other => reply(format!("edited another's message: {other:?}"))?,
                };
                Ok(())
            }
            "slow" => {
                let seconds: u64 = invocation.args.trim().parse().unwrap_or(3);
                std::thread::sleep(std::time::Duration::from_secs(seconds));
                reply(format!("awake after {seconds} s"))?;
                Ok(())
            }
            "whisper" => {
                reply_private(format!("only for you, {}", invocation.message.author.name))?;
                Ok(())
            }
            "grow" => {
                // memory.grow past the limit must fail with −1, which the
                // allocator reports as an error a guest can handle.
                let mut big: Vec<u8> = Vec::new();
                match big.try_reserve_exact(256 << 20) {
                    Ok(()) => reply(format!("got {} bytes past my limit", big.capacity()))?,
                    Err(_) => reply("no more memory, and I carry on")?,
                };
                Ok(())
            }
            "clocks" => {
                let mut held = Vec::new();
                for _ in 0..1_000_000 {
                    held.push(wasip2::clocks::monotonic_clock::subscribe_duration(1_000_000_000));
                }
                reply(format!("holding {} clock subscriptions", held.len()))?;
                Ok(())
            }
            "random" => {
                let bytes = wasip2::random::random::get_random_bytes(64 << 20);
                reply(format!("got {} random bytes", bytes.len()))?;
                Ok(())
            }
            "fetch" => {
                let mut asked = 0;
                let stopped = loop {
                    match chat::fetch_message("123456") {
                        Err(HostError::Unavailable(why)) => break why,
                        _ if asked >= 100 => break "never".into(),
                        _ => asked += 1,
                    }
                };
                reply(format!("asked {asked} times; then: {stopped}"))?;
                Ok(())
            }
            other => Err(Error::reply(format!("hostile: unknown behaviour {other}"))),
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let deeper = recurse(black_box(depth + 1));
    black_box(deeper).wrapping_add(depth)
}

command!(Hostile);
