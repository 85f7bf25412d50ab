#!/usr/bin/env bash
# Initialises the cluster on first start (database and role from POSTGRES_DB/POSTGRES_USER,
# the password from the file POSTGRES_PASSWORD_FILE, a compose secret that only root can
# read), then runs postgres as the postgres user on POSTGRES_LISTEN:POSTGRES_PORT with
# scram-sha-256 for every TCP client.
set -euo pipefail
data=/var/lib/postgresql/data
bin=$(echo /usr/lib/postgresql/*/bin)
db=${POSTGRES_DB:-executor}
user=${POSTGRES_USER:-executor}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [[ ! -s "$data/PG_VERSION" ]]; then
    secret=${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE}
    if [[ ! -s "$secret" ]]; then
        echo "error: the password file $secret is missing or empty" >&2
        exit 2
    fi
    # A copy only postgres reads, gone once the role has it: never a command line.
    readable=$(mktemp)
    trap 'rm -f "$readable"' EXIT
    install -o postgres -m 0400 "$secret" "$readable"
    chown postgres:postgres "$data"
    as_postgres "$bin/initdb" -D "$data" --username=postgres --auth-local=peer \
        --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
    as_postgres "$bin/pg_ctl" -D "$data" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" \
        -w start >/dev/null
    as_postgres psql -h /tmp -v ON_ERROR_STOP=1 -v user="$user" -v db="$db" <<SQL
\\set password \`cat $readable\`
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
    as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    rm -f "$readable"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data" \
    -c listen_addresses="${POSTGRES_LISTEN:-127.0.0.1}" -c port="${POSTGRES_PORT:-5432}" \
    -c unix_socket_directories=/tmp
