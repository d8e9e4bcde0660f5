#!/usr/bin/env bash
# Installs what building and running sandbot needs on a fresh machine.
# Idempotent: each step checks first and does nothing when already done.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi

# Guests are WebAssembly components built for wasm32-wasip2.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

# The data folder the default config points at.
mkdir -p data/shared
