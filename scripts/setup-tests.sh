#!/usr/bin/env bash
# What `make test` needs beyond what `make run` needs:
# - PostgreSQL's server programs, for the throwaway databases the store and
#   fleet tests start themselves (initdb in a temporary folder, on a free
#   loopback port; see runtime/src/services/store/throwaway.rs). No server
#   is left running and none is configured: Debian's package would create
#   and start a cluster of its own, which `create_main_cluster = false`
#   prevents.
# - Chromium and ChromeDriver (Debian's chromium, chromium-driver), which
#   the dashboard's tests drive headless (tests/dashboard.rs).
# Idempotent: installs only what is missing.
set -euo pipefail

sudo=""
[ "$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && sudo="sudo -n"; }
can_install() { { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; } && command -v apt-get >/dev/null 2>&1; }
apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get"

if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
    if can_install; then
        echo "setup-tests: installing Chromium and ChromeDriver (Debian's chromium, chromium-driver) for the dashboard tests"
        $apt install -y -qq chromium chromium-driver >/dev/null \
            || { $apt update -qq && $apt install -y -qq chromium chromium-driver >/dev/null; }
    fi
fi
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
    echo "setup-tests: /usr/bin/chromium and /usr/bin/chromedriver are missing (Debian: apt-get install chromium" \
        "chromium-driver); the dashboard tests need them" >&2
    exit 1
fi

have_initdb() {
    [ -n "${SANDBOT_PG_BIN:-}" ] && [ -x "$SANDBOT_PG_BIN/initdb" ] && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if ! have_initdb; then
    if can_install; then
        echo "setup-tests: installing PostgreSQL (Debian's postgresql) for the store tests"
        $sudo mkdir -p /etc/postgresql-common
        if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
            echo 'create_main_cluster = false' | $sudo tee -a /etc/postgresql-common/createcluster.conf >/dev/null
        fi
        $apt install -y -qq postgresql >/dev/null \
            || { $apt update -qq && $apt install -y -qq postgresql >/dev/null; }
    fi
fi
if ! have_initdb; then
    echo "setup-tests: PostgreSQL's initdb is missing (Debian: apt-get install postgresql, or set SANDBOT_PG_BIN);" \
        "the store tests need it" >&2
    exit 1
fi
