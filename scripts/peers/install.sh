#!/usr/bin/env bash
# The benchmarks' peers, in a venv of their own (target/peers): faster-whisper
# for speech to text, llama.cpp for the language model (llama-cpp-python
# builds it from source with this CPU's features: a few minutes the first
# time; with its OpenAI-compatible server, which tests/openai.rs drives
# when it is here). Pinned versions; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=target/peers
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    faster-whisper==1.2.1 ctranslate2==4.8.5 'llama-cpp-python[server]==0.3.36'
echo "peers: $VENV/bin/python"
