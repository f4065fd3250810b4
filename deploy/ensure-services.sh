#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ are installed and running (Debian, as root).
#
# Idempotent. When both services already answer, it only probes the TCP ports
# (plus one psql query) and returns quickly. Reachability is checked over TCP,
# never through systemd (which may not be PID 1).
#
# Environment:
#   PGHOST / PGPORT          PostgreSQL to check   (default 127.0.0.1 / 5432)
#   AMQP_HOST / AMQP_PORT    RabbitMQ to check     (default 127.0.0.1 / 5672)
#   SERVICES_TIMEOUT_S       seconds to wait for a service to come up (default 90;
#                            the older name SERVICES_TIMEOUT is still read)
#   SLA_ENGINE_ALLOW_TRUST_AUTH=1 (or CI=true)
#                            when the tests cannot connect as postgres over TCP
#                            without a password, add 'host all all 127.0.0.1/32
#                            trust' to pg_hba.conf. Never done otherwise: it lets
#                            every local user in as any role, which only a
#                            development or CI machine can afford.
# When a host is not local, the service is only checked for reachability:
# nothing is installed or started.
#
# With --with-prometheus (make test) it also makes sure Debian's prometheus package
# is installed: the tests run promtool on the alert rules and a real Prometheus
# server against the engine. They start their own server on a free port, so the
# package's own service is left stopped where the install would start it.
#
# With --with-browser (make test) it also makes sure Debian's chromium package is
# installed: the browser tests open the SLA sheet's pages in it, driven by playwright
# (whose own browser download cannot be reached from every machine).
#
# With --with-proxy (make test) it also makes sure Debian's nginx package is installed:
# a test puts the HTTP port behind deploy/nginx/sla-engine.conf, the reverse proxy the
# README describes, in an nginx of its own on a free port; the package's own service is
# left stopped where the install would start it.
set -euo pipefail

WITH_PROMETHEUS=0
WITH_BROWSER=0
WITH_PROXY=0
for arg in "$@"; do
    case "$arg" in
        --with-prometheus) WITH_PROMETHEUS=1 ;;
        --with-browser) WITH_BROWSER=1 ;;
        --with-proxy) WITH_PROXY=1 ;;
        *) echo "ensure-services: unknown argument: $arg (known: --with-prometheus, --with-browser, --with-proxy)" >&2; exit 2 ;;
    esac
done

export PATH="/usr/local/sbin:/usr/sbin:/sbin:${PATH}"
export DEBIAN_FRONTEND=noninteractive

PG_HOST="${PGHOST:-127.0.0.1}"
PG_PORT="${PGPORT:-5432}"
AMQP_HOST="${AMQP_HOST:-127.0.0.1}"
AMQP_PORT="${AMQP_PORT:-5672}"
TIMEOUT_S="${SERVICES_TIMEOUT_S:-${SERVICES_TIMEOUT:-90}}"
# The daemon's database (make run) and the tests' (make test).
DATABASES=(sla_engine sla_engine_test)
DB_QUERY="select string_agg(datname, ' ' order by datname) from pg_database where datname in ('sla_engine', 'sla_engine_test')"
LOG_DIR="${TMPDIR:-/tmp}"
LOCK_FILE="${LOG_DIR}/sla-engine-ensure-services.lock"
ERR_FILE=$(mktemp "${LOG_DIR}/sla-engine-services.XXXXXX")
trap 'rm -f "$ERR_FILE"' EXIT

die() { echo "ensure-services: ERROR: $*" >&2; exit 1; }
note() { echo "ensure-services: $*" >&2; }

[[ "$TIMEOUT_S" =~ ^[0-9]+$ ]] \
    || die "SERVICES_TIMEOUT_S (or the older SERVICES_TIMEOUT) must be whole seconds, not '${TIMEOUT_S}'"

trust_auth_allowed() {
    [[ "${SLA_ENGINE_ALLOW_TRUST_AUTH:-}" == 1 || "${CI:-}" == true ]]
}

is_local() {
    case "$1" in
        127.0.0.1 | localhost | ::1 | "") return 0 ;;
        *) return 1 ;;
    esac
}

# tcp_open HOST PORT: true if a TCP connection succeeds within 2 s.
tcp_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for DESCRIPTION DEADLINE_SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local what="$1" limit="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            note "timed out after ${limit}s waiting for ${what}"
            return 1
        fi
        sleep 0.5
    done
}

# Serialise the slow path (installing/starting) between concurrent runs.
LOCKED=0
take_lock() {
    if ((LOCKED == 0)); then
        exec 9>"$LOCK_FILE"
        flock -w "$TIMEOUT_S" 9 || die "could not acquire ${LOCK_FILE}"
        LOCKED=1
    fi
}

APT_UPDATED=0
apt_install() {
    [[ $(id -u) -eq 0 ]] || die "installing $* requires root"
    take_lock
    local log="${LOG_DIR}/sla-engine-apt.log"
    if ((APT_UPDATED == 0)); then
        note "apt-get update"
        apt-get update </dev/null >"$log" 2>&1 9>&- || { cat "$log" >&2; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    note "apt-get install -y $*"
    apt-get install -y "$@" </dev/null >>"$log" 2>&1 9>&- \
        || { tail -n 50 "$log" >&2; die "apt-get install $* failed (full log: ${log})"; }
}

# ---------------------------------------------------------------------------
# Installation (only for local services, only what is missing)
# ---------------------------------------------------------------------------
pg_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && command -v pg_ctlcluster >/dev/null; }
rabbit_installed() { command -v rabbitmq-server >/dev/null && command -v rabbitmqctl >/dev/null; }

missing=()
PG_ACTION=""
RABBIT_ACTION=""
if is_local "$PG_HOST" && ! tcp_open "$PG_HOST" "$PG_PORT" && ! pg_installed; then
    missing+=(postgresql)
fi
if is_local "$AMQP_HOST" && ! tcp_open "$AMQP_HOST" "$AMQP_PORT" && ! rabbit_installed; then
    missing+=(rabbitmq-server)
fi
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
    for pkg in "${missing[@]}"; do
        case "$pkg" in
            postgresql) PG_ACTION="installed" ;;
            rabbitmq-server) RABBIT_ACTION="installed" ;;
        esac
    done
fi

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
pg_ready() {
    tcp_open "$PG_HOST" "$PG_PORT" || return 1
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    fi
}

# psql as superuser over the Unix socket (peer auth), independent of pg_hba TCP rules.
pg_socket_psql() {
    runuser -u postgres -- psql -X -q -h /var/run/postgresql -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 "$@"
}

# psql as user postgres over TCP, exactly as the tests connect.
pg_tcp_psql() {
    PGCONNECT_TIMEOUT=5 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# Set PG_VER / PG_CLUSTER to the local cluster to start, creating one if needed.
pg_pick_cluster() {
    local ver cluster port
    # A cluster configured on the wanted port, if any.
    while read -r ver cluster port _; do
        if [[ "$port" == "$PG_PORT" ]]; then
            PG_VER="$ver" PG_CLUSTER="$cluster"
            return
        fi
    done < <(pg_lsclusters -h 2>/dev/null || true)
    # Otherwise "main" of the newest version with a configuration directory.
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$ver" && -d "/etc/postgresql/$ver/main" ]]; then
        PG_VER="$ver" PG_CLUSTER=main
        return
    fi
    # No cluster at all: create one for the newest installed server.
    ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$ver" ]] || die "postgresql: no server found under /usr/lib/postgresql"
    note "postgresql: pg_createcluster $ver main --port $PG_PORT"
    pg_createcluster "$ver" main --port "$PG_PORT" >&2 9>&- || die "postgresql: pg_createcluster $ver main failed"
    PG_ACTION="${PG_ACTION:+$PG_ACTION, }created cluster $ver/main"
    PG_VER="$ver" PG_CLUSTER=main
}

ensure_postgresql() {
    local status="running"
    if ! is_local "$PG_HOST"; then
        wait_for "PostgreSQL at ${PG_HOST}:${PG_PORT}" "$TIMEOUT_S" pg_ready \
            || die "postgresql: ${PG_HOST}:${PG_PORT} is not reachable (remote host: not managed here)"
        echo "postgresql: reachable at ${PG_HOST}:${PG_PORT} (remote, not managed)"
        return
    fi

    if ! pg_ready; then
        take_lock
        if ! pg_ready; then
            pg_pick_cluster
            note "postgresql: starting cluster $PG_VER/$PG_CLUSTER"
            # setsid: keep the server out of our process group and session;
            # 9>&-: the server must not inherit the lock.
            setsid --wait pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PG_CLUSTER" start </dev/null >&2 9>&- \
                || note "postgresql: pg_ctlcluster $PG_VER $PG_CLUSTER start returned an error"
            wait_for "PostgreSQL on ${PG_HOST}:${PG_PORT}" "$TIMEOUT_S" pg_ready \
                || die "postgresql: not accepting connections on ${PG_HOST}:${PG_PORT} (see /var/log/postgresql/postgresql-${PG_VER}-${PG_CLUSTER}.log)"
            status="started $PG_VER/$PG_CLUSTER"
        fi
    fi

    # Fast path: one query checks TCP auth and the databases at once.
    local out err
    if out=$(pg_tcp_psql -Atc "$DB_QUERY" 2>"$ERR_FILE"); then
        :
    else
        err=$(cat "$ERR_FILE")
        if grep -qiE 'authentication failed|no password supplied|pg_hba\.conf|password' <<<"$err"; then
            take_lock
            local hba
            hba=$(pg_socket_psql -Atc 'show hba_file') || die "postgresql: cannot query hba_file over the Unix socket"
            if ! grep -qE '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
                trust_auth_allowed || die "postgresql: cannot connect as postgres to ${PG_HOST}:${PG_PORT} without a password:
$(sed 's/^/    /' "$ERR_FILE")
  Either, on a development or CI machine only, let this script add
  'host all all 127.0.0.1/32 trust' to ${hba} (any local user may then connect
  as any role without a password):
    SLA_ENGINE_ALLOW_TRUST_AUTH=1 make services   (make test will set it)
  or give the postgres role a password and export PGPASSWORD (psql and the tests read it)."
                note "postgresql: adding 'host all all 127.0.0.1/32 trust' at the top of $hba"
                cp -p "$hba" "${hba}.bak-sla-engine"
                { echo "host all all 127.0.0.1/32 trust"; cat "${hba}.bak-sla-engine"; } >"$hba"
            fi
            pg_socket_psql -Atc 'select pg_reload_conf()' >/dev/null || die "postgresql: reload failed"
            status="${status}, trust auth for 127.0.0.1"
            out=$(pg_tcp_psql -Atc "$DB_QUERY") \
                || die "postgresql: still cannot connect as postgres to ${PG_HOST}:${PG_PORT} without a password"
        else
            echo "$err" >&2
            die "postgresql: cannot connect as postgres to ${PG_HOST}:${PG_PORT}"
        fi
    fi
    local db
    for db in "${DATABASES[@]}"; do
        [[ " $out " == *" $db "* ]] && continue
        pg_tcp_psql -c "create database ${db} owner postgres" >/dev/null 2>"$ERR_FILE" \
            || grep -q 'already exists' "$ERR_FILE" \
            || { cat "$ERR_FILE" >&2; die "postgresql: cannot create database ${db}"; }
        status="${status}, created database ${db}"
    done
    echo "postgresql: ${PG_ACTION:+$PG_ACTION, }${status} (${PG_HOST}:${PG_PORT})"
}

# ---------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------
# AMQP handshake: send the AMQP 0-9-1 protocol header and expect a method frame
# (type 1, Connection.Start) back. Stronger than a bare TCP connect, which some
# proxies/NATs accept for any address.
rabbit_ready() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3
        IFS= read -r -N 1 -t 2 frame_type <&3 || exit 1
        [[ "$frame_type" == $'"'"'\x01'"'"' ]]
    ' _ "$AMQP_HOST" "$AMQP_PORT" 2>/dev/null
}
rabbit_node_running() { pgrep -u rabbitmq -f 'beam.*rabbit' >/dev/null 2>&1; }

ensure_rabbitmq() {
    local status="running"
    if ! is_local "$AMQP_HOST"; then
        wait_for "RabbitMQ at ${AMQP_HOST}:${AMQP_PORT}" "$TIMEOUT_S" rabbit_ready \
            || die "rabbitmq: ${AMQP_HOST}:${AMQP_PORT} is not reachable (remote host: not managed here)"
        echo "rabbitmq: reachable at ${AMQP_HOST}:${AMQP_PORT} (remote, not managed)"
        return
    fi

    if ! rabbit_ready; then
        take_lock
        if ! rabbit_ready; then
            if rabbit_node_running; then
                note "rabbitmq: node process exists but port ${AMQP_PORT} is closed; waiting for it to finish booting"
                status="was booting, now running"
            else
                note "rabbitmq: starting (rabbitmq-server -detached)"
                local log="${LOG_DIR}/sla-engine-rabbitmq-start.log"
                setsid --wait rabbitmq-server -detached </dev/null >"$log" 2>&1 9>&- \
                    || { cat "$log" >&2; die "rabbitmq: rabbitmq-server -detached failed"; }
                status="started"
            fi
            wait_for "RabbitMQ on ${AMQP_HOST}:${AMQP_PORT}" "$TIMEOUT_S" rabbit_ready \
                || die "rabbitmq: port ${AMQP_HOST}:${AMQP_PORT} did not open within ${TIMEOUT_S}s (see /var/log/rabbitmq/)"
        fi
    fi
    echo "rabbitmq: ${RABBIT_ACTION:+$RABBIT_ACTION, }${status} (${AMQP_HOST}:${AMQP_PORT})"
}

ensure_prometheus() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        echo "prometheus: $(promtool --version 2>&1 | head -n 1)"
        return
    fi
    apt_install --no-install-recommends prometheus
    # Installed for its binaries: do not leave a second Prometheus running on :9090.
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now prometheus >/dev/null 2>&1 \
            || note "prometheus: could not stop the package's service (it may be running on :9090)"
    fi
    echo "prometheus: installed, $(promtool --version 2>&1 | head -n 1)"
}

# The browser tests drive /usr/bin/chromium, the path Debian's package installs.
ensure_browser() {
    if [[ -x /usr/bin/chromium ]]; then
        echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
        return
    fi
    apt_install --no-install-recommends chromium
    [[ -x /usr/bin/chromium ]] || die "chromium: installed, but /usr/bin/chromium is missing"
    echo "chromium: installed, $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
}

# The proxy test runs /usr/sbin/nginx, the path Debian's package installs.
ensure_proxy() {
    # openssl makes the test's certificate, htpasswd (apache2-utils) its password file,
    # as the README tells administrators to.
    if [[ -x /usr/sbin/nginx ]] && command -v openssl >/dev/null && command -v htpasswd >/dev/null; then
        echo "nginx: $(/usr/sbin/nginx -v 2>&1 | head -n 1)"
        return
    fi
    # The package starts a server of its own on :80, and its install fails if :80 is
    # taken: tell invoke-rc.d to start nothing while it installs (unless the machine
    # already has a policy of its own).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# ensure-services: nothing starts while nginx installs\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f "$ERR_FILE" /usr/sbin/policy-rc.d' EXIT
        apt_install --no-install-recommends nginx openssl apache2-utils
        rm -f /usr/sbin/policy-rc.d
        trap 'rm -f "$ERR_FILE"' EXIT
    else
        apt_install --no-install-recommends nginx openssl apache2-utils
    fi
    [[ -x /usr/sbin/nginx ]] || die "nginx: installed, but /usr/sbin/nginx is missing"
    # Installed for its binary: do not leave it serving port 80.
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now nginx >/dev/null 2>&1 \
            || note "nginx: could not stop the package's service (it may be serving :80)"
    elif [[ -s /run/nginx.pid ]]; then
        /usr/sbin/nginx -s quit >/dev/null 2>&1 \
            || note "nginx: could not stop the package's server (it may be serving :80)"
    fi
    echo "nginx: installed, $(/usr/sbin/nginx -v 2>&1 | head -n 1)"
}

ensure_postgresql
ensure_rabbitmq
if ((WITH_PROMETHEUS)); then
    ensure_prometheus
fi
if ((WITH_BROWSER)); then
    ensure_browser
fi
if ((WITH_PROXY)); then
    ensure_proxy
fi
