#!/usr/bin/env python3
"""Splits a `perf script` call-graph dump of sandbot or the plain serenity
bot into the groups of BENCHMARKS.md ("Where sandbot's CPU goes").

Each sample counts once, in the first group (in the order below) that
any frame of its stack matches, so code both bots share is counted alike.

    perf script -i perf.data | python3 scripts/perf-groups.py [CPU_US_A_MESSAGE]

With the bench's CPU a message for that bot, each group's share is also
printed in microseconds a message.
"""

import collections
import re
import sys

GROUPS = [
    ("the store freed", r"drop_in_place<wasmtime::runtime::store::StoreInner|StoreOpaque as core::ops::drop::Drop"),
    ("the spare made (instantiation)", r"sandbot::sandbox::instantiate|instantiate_async"),
    ("a store and its context built", r"Sandbox::new_store|WasiCtxBuilder|GuestCtx::new"),
    ("the log line", r"tracing_subscriber|tracing_core::event"),
    ("serenity's Http::request", r"serenity::http::client::Http::request"),
    ("the host's send-message", r"chat::Host for sandbot::host::GuestCtx>::send_message"),
    ("the guest's handle", r"call_handle"),
    ("Dispatcher::invoke, routing, shares", r"sandbot::shares|sandbot::dispatch"),
    ("the adapter's handler", r"sandbot::platform::discord::events::Handler|plain_serenity_bot::Greeter"),
    ("serenity's event dispatch", r"dispatch_model|FullEvent::dispatch"),
    ("gateway (shard runner)", r"ShardRunner"),
    ("hyper's connection task, reqwest", r"hyper|reqwest"),
    ("epoll, parking", r"epoll_wait|park|futex"),
    ("the epoch ticker", r"sandbot::sandbox::engine"),
]


def samples(lines):
    """Each sample's frames; `perf script` prints a header line, then one
    indented line per frame, then a blank line."""
    stack = []
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[:1] in "\t ":
            stack.append(line.strip())
        else:
            stack = []
    if stack:
        yield stack


def main():
    per_message = float(sys.argv[1]) if len(sys.argv) > 1 else None
    groups = [(name, re.compile(pattern)) for name, pattern in GROUPS]
    counts = collections.Counter()
    total = 0
    for stack in samples(sys.stdin):
        total += 1
        name = next((n for n, rx in groups if any(rx.search(f) for f in stack)), "other")
        counts[name] += 1
    for name, count in counts.most_common():
        share = count / total
        micros = f"  ≈{share * per_message:.1f} µs a message" if per_message else ""
        print(f"{share * 100:6.2f}%  {name}{micros}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
