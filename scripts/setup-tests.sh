#!/usr/bin/env bash
# What `make test` needs beyond what `make run` needs: PostgreSQL's server
# programs, for the throwaway databases the store and fleet tests start
# themselves (initdb in a temporary folder, on a free loopback port; see
# runtime/src/services/store/throwaway.rs). No server is left running and
# none is configured: Debian's package would create and start a cluster of
# its own, which `create_main_cluster = false` prevents.
# Idempotent: does nothing when initdb is already there.
set -euo pipefail

have_initdb() {
    [ -n "${SANDBOT_PG_BIN:-}" ] && [ -x "$SANDBOT_PG_BIN/initdb" ] && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if ! have_initdb; then
    sudo=""
    [ "$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && sudo="sudo -n"; }
    if { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; } && command -v apt-get >/dev/null 2>&1; then
        echo "setup-tests: installing PostgreSQL (Debian's postgresql) for the store tests"
        $sudo mkdir -p /etc/postgresql-common
        if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
            echo 'create_main_cluster = false' | $sudo tee -a /etc/postgresql-common/createcluster.conf >/dev/null
        fi
        apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get"
        $apt install -y -qq postgresql >/dev/null \
            || { $apt update -qq && $apt install -y -qq postgresql >/dev/null; }
    fi
fi
if ! have_initdb; then
    echo "setup-tests: PostgreSQL's initdb is missing (Debian: apt-get install postgresql, or set SANDBOT_PG_BIN);" \
        "the store tests need it" >&2
    exit 1
fi
