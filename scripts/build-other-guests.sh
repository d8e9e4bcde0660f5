#!/usr/bin/env bash
# Builds the commands written in Python (componentize-py) and JavaScript
# (componentize-js) into the guests folder, beside the Rust ones, against
# the same WIT. The tools come from PyPI (by hash) and the npm registry (by
# the lock file's integrity hashes) into target/polyglot/. Idempotent: a
# component is built again only when its source or the WIT is newer.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/wasm32-wasip2/guest
TOOLS=target/polyglot
WIT=wit/0.2.1
mkdir -p "$OUT" "$TOOLS"

sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
apt_install() {
    if { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; } && command -v apt-get >/dev/null 2>&1; then
        local apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get"
        $apt install -y -qq "$@" >/dev/null || { $apt update -qq && $apt install -y -qq "$@" >/dev/null; }
    else
        echo "build-other-guests: $* missing (Debian: apt-get install $*)" >&2
        exit 1
    fi
}

# componentize-py, in a virtual environment of its own.
PY=$TOOLS/python
if ! "$PY/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py 0.25.1"; then
    echo "build-other-guests: installing componentize-py (PyPI, by hash)"
    python3 -m venv "$PY" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$PY"; }
    "$PY/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r guests/python/requirements.txt
fi

# componentize-js, exactly as the lock file says.
JS=$TOOLS/javascript
if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
if [ ! -x "$JS/node_modules/.bin/componentize-js" ] || ! cmp -s guests/javascript/package-lock.json "$JS/package-lock.json"; then
    echo "build-other-guests: installing componentize-js (npm ci)"
    rm -rf "$JS" && mkdir -p "$JS"
    cp guests/javascript/package.json guests/javascript/package-lock.json "$JS/"
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# stale OUT SOURCE...: the component is missing or older than a source or the WIT.
stale() {
    local out=$1; shift
    [ -f "$out" ] || return 0
    local newest
    newest=$(find "$@" "$WIT" -type f -newer "$out" -print -quit)
    [ -n "$newest" ]
}

# python_guest NAME DIR MODULE: DIR/MODULE.py as OUT/NAME.wasm.
python_guest() {
    local name=$1 dir=$2 module=$3 out="$OUT/$1.wasm"
    stale "$out" "$dir" || return 0
    echo "build-other-guests: $out (Python)"
    # Not the tools' own environment: only the command's folder is packed.
    env -u VIRTUAL_ENV "$PY/bin/componentize-py" -d "$WIT" -w command componentize -p "$dir" "$module" -o "$out.tmp" >/dev/null
    mv "$out.tmp" "$out"
}

# js_guest NAME FILE: FILE as OUT/NAME.wasm.
js_guest() {
    local name=$1 file=$2 out="$OUT/$1.wasm"
    stale "$out" "$file" || return 0
    echo "build-other-guests: $out (JavaScript)"
    # No wasi:http in the bot: leave StarlingMonkey's fetch out.
    "$JS/node_modules/.bin/componentize-js" "$file" --wit "$WIT" --world-name command \
        --disable http fetch-event -o "$out.tmp" >/dev/null
    mv "$out.tmp" "$out"
}

# The `wit_world` package as plain Python, for unit tests on CPython
# (guests/python/testing/sandbot_testing.py fakes its host functions).
BINDINGS=$TOOLS/python-bindings
if stale "$BINDINGS/wit_world/__init__.py" "$PY/bin/componentize-py"; then
    rm -rf "$BINDINGS"
    env -u VIRTUAL_ENV "$PY/bin/componentize-py" -d "$WIT" -w command bindings "$BINDINGS" >/dev/null
fi

python_guest pycount guests/python/wordcount app
js_guest jscount guests/javascript/wordcount/wordcount.js
# The tests' misbehaving ones.
python_guest pyhostile tests/guests/polyglot pyhostile
js_guest jshostile tests/guests/polyglot/jshostile.js
