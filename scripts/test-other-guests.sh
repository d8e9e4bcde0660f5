#!/usr/bin/env bash
# Unit tests of the Python and JavaScript commands on plain CPython and
# Node, each against its fake host (guests/python/testing,
# guests/javascript/testing). `make test` runs this after
# build-other-guests.sh, which installs the tools and writes the bindings.
set -euo pipefail
cd "$(dirname "$0")/.."

BINDINGS=target/polyglot/python-bindings
# One run per command folder: each command's module is its own `app`.
for dir in guests/python/*/; do
    [ "$dir" = guests/python/testing/ ] && continue
    compgen -G "$dir/test_*.py" >/dev/null || continue
    echo "test-other-guests: $dir (Python)"
    PYTHONPATH="$BINDINGS:guests/python/testing:$dir" python3 -m unittest discover -s "$dir" -p 'test_*.py'
done

echo "test-other-guests: guests/javascript (JavaScript)"
node --import ./guests/javascript/testing/register.mjs --test guests/javascript/
