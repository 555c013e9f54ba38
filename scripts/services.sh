#!/usr/bin/env bash
# Makes sure every service the full test suite talks to is up on loopback,
# installing and starting what is missing:
#   PostgreSQL 127.0.0.1:5432 (trust auth), NATS with JetStream 127.0.0.1:4222,
#   Redis 127.0.0.1:6379, the Kafka-protocol broker tansu 127.0.0.1:9092, and
#   the interop tools
#   (oathtool, nats-server binary, Python's confluent-kafka and PyJWT), and
#   the browser of the passkey test (Debian's Chromium, driven by
#   playwright-core from e2e/browser/package-lock.json), and the Node.js
#   OpenID Connect client (openid-client, e2e/node/package-lock.json).
# Safe to run again: it only acts on what is missing. Logs go to
# target/services/.
set -euo pipefail
cd "$(dirname "$0")/.."
log_dir="$PWD/target/services"
mkdir -p "$log_dir"

say() { printf '[services] %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 tries=${3:-60}
  for _ in $(seq "$tries"); do
    port_open "$port" && return 0
    sleep 1
  done
  say "$what did not come up on port $port"
  return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log_dir/apt.log" 2>&1 || true
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$log_dir/apt.log" 2>&1
}

# --- tools ---------------------------------------------------------------
command -v oathtool >/dev/null || apt_install oathtool
command -v make >/dev/null || apt_install make
command -v gcc >/dev/null || apt_install gcc
# rdkafka (feature `kafka`) builds librdkafka with TLS against the system OpenSSL.
command -v pkg-config >/dev/null || apt_install pkg-config
dpkg -s libssl-dev >/dev/null 2>&1 || apt_install libssl-dev
if ! python3 -c 'import confluent_kafka' >/dev/null 2>&1; then
  say "pip install confluent-kafka"
  python3 -m pip install -q confluent-kafka >"$log_dir/pip.log" 2>&1
fi
# PyJWT with EdDSA support: the independent check of the JWKS (e2e test).
if ! python3 -c 'import jwt, cryptography' >/dev/null 2>&1; then
  say "pip install pyjwt[crypto]"
  python3 -m pip install -q 'pyjwt[crypto]' >>"$log_dir/pip.log" 2>&1
fi
# authlib with requests: an independent OpenID Connect client (e2e test).
if ! python3 -c 'import authlib, requests' >/dev/null 2>&1; then
  say "pip install authlib requests"
  python3 -m pip install -q authlib requests >>"$log_dir/pip.log" 2>&1
fi

# --- PostgreSQL ----------------------------------------------------------
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf="/etc/postgresql/$version/main"
  # trust auth on loopback, as on the project's machines
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$conf/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
fi
for db in test postgres; do
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -d postgres -qc "create database $db"
done

# --- NATS with JetStream -------------------------------------------------
command -v nats-server >/dev/null || apt_install nats-server
if ! port_open 4222; then
  say "starting nats-server with JetStream"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
fi

# --- Redis ----------------------------------------------------------------
command -v redis-server >/dev/null || apt_install redis-server
if ! port_open 6379; then
  say "starting redis-server"
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
    --logfile "$log_dir/redis.log"
  wait_port 6379 Redis
fi

# --- Kafka-protocol broker (tansu) ---------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null; then
  say "cargo install tansu (8-15 minutes on 2 cores, once per machine)"
  cargo install tansu --locked --features dynostore,libsql >"$log_dir/tansu-install.log" 2>&1
fi
if ! port_open 9092; then
  say "starting tansu on 127.0.0.1:9092 (in-memory storage)"
  # Detached, with every descriptor redirected: nothing may keep the
  # caller's stdout open (a pipe reading this script would never end).
  (cd "$log_dir" && exec setsid nohup tansu broker \
    --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >"$log_dir/tansu.log" 2>&1 </dev/null) &
  wait_port 9092 tansu
fi

# --- A real browser (the passkey test), Node.js clients -------------------
command -v chromium >/dev/null || apt_install chromium
command -v npm >/dev/null || apt_install npm
if [ ! -d e2e/browser/node_modules/playwright-core ]; then
  say "npm ci in e2e/browser (playwright-core, no browser download)"
  (cd e2e/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) >"$log_dir/npm.log" 2>&1
fi
if [ ! -d e2e/node/node_modules/openid-client ]; then
  say "npm ci in e2e/node (openid-client)"
  (cd e2e/node && npm ci --no-audit --no-fund) >>"$log_dir/npm.log" 2>&1
fi

say "PostgreSQL, NATS, Redis, tansu and Chromium are ready"
