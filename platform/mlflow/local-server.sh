#!/usr/bin/env bash
# The team tracking server without Docker: PostgreSQL from Debian's packages as the backend
# store (runs in database `mlflow`, users and permissions in `mlflow_auth`), artifacts proxied
# by the server into a local folder (--serve-artifacts), and MLflow's basic-auth app in front.
# Every file lives in one folder; `stop` ends exactly the processes `start` began (by PID).
#
#   MLFLOW_AUTH_ADMIN_PASSWORD=... platform/mlflow/local-server.sh start DIR [PORT]
#   platform/mlflow/local-server.sh stop DIR
#
# Run it as root (PostgreSQL runs as the `postgres` user, so DIR must be a folder that user can
# reach: /srv/mlflow, or a fresh folder under /tmp) or as an ordinary user who owns DIR. It
# listens on 127.0.0.1 only: put a TLS proxy in front to serve a team (README.md).
set -euo pipefail

command=${1:?usage: local-server.sh start|stop DIR [PORT]}
dir=${2:?usage: local-server.sh start|stop DIR [PORT]}
port=${3:-5000}
pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
here=$(cd "$(dirname "$0")" && pwd)

as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
    if [[ -f "$dir/mlflow.pid" ]]; then
        local pid
        pid=$(<"$dir/mlflow.pid")
        kill -TERM -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$dir/mlflow.pid"
    fi
    if [[ -f "$dir/pg/postmaster.pid" ]]; then
        as_postgres "$pg_bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null
    fi
}

start() {
    : "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (12 characters or more) for the admin account}"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"
    local pg_port pg_password
    pg_port=$(free_port)
    if [[ ! -f "$dir/pg/PG_VERSION" ]]; then
        mkdir -p "$dir/pg"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pg"
        pg_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
        # The database password lives only in a file readable by its owner, never on a command line.
        (umask 077 && printf '%s' "$pg_password" >"$dir/pg.password")
        [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pg.password"
        as_postgres "$pg_bin/initdb" -D "$dir/pg" -U mlflow --pwfile="$dir/pg.password" \
            --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$dir/initdb.log"
    fi
    touch "$dir/postgres.log"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/postgres.log"
    as_postgres "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$dir/pg" start >/dev/null
    PGPASSWORD=$(<"$dir/pg.password")
    export PGPASSWORD
    for database in mlflow mlflow_auth; do
        if ! "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U mlflow -d postgres -tAc \
            "select 1 from pg_database where datname = '$database'" | grep -q 1; then
            "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U mlflow "$database"
        fi
    done
    sed "s|^database_uri = .*|database_uri = postgresql+psycopg2://mlflow@127.0.0.1:$pg_port/mlflow_auth|" \
        "$here/basic_auth.ini" >"$dir/basic_auth.ini"
    mkdir -p "$dir/artifacts"
    MLFLOW_AUTH_CONFIG_PATH="$dir/basic_auth.ini" \
        MLFLOW_FLASK_SERVER_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(16))') \
        setsid mlflow server --backend-store-uri "postgresql+psycopg2://mlflow@127.0.0.1:$pg_port/mlflow" \
        --artifacts-destination "$dir/artifacts" --serve-artifacts --app-name basic-auth \
        --host 127.0.0.1 --port "$port" --workers "${MLFLOW_WORKERS:-1}" \
        </dev/null >>"$dir/mlflow.log" 2>&1 &
    echo $! >"$dir/mlflow.pid"
    for _ in $(seq 1200); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" \
            2>/dev/null; then
            echo "MLflow with basic auth on http://127.0.0.1:$port (PostgreSQL on 127.0.0.1:$pg_port, logs in $dir)"
            return 0
        fi
        kill -0 "$(<"$dir/mlflow.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "local-server: MLflow did not start; see $dir/mlflow.log" >&2
    tail -n 20 "$dir/mlflow.log" >&2
    stop
    return 1
}

case "$command" in
start) start ;;
stop) stop ;;
*)
    echo "usage: local-server.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
