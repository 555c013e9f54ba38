#!/usr/bin/env bash
# The whole suite: starts any missing service on loopback, then checks
# formatting, lints, docs, and runs every test of every crate with every
# feature (the end-to-end HTTP test of the axum_service example among them,
# package security-e2e), each fuzz target briefly, and the quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

scripts/services.sh

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
# Tests that need a service fail (never skip) when it is missing.
export SECURITY_TEST_SERVICES=required

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (every crate, every feature)"
cargo test --workspace --all-features --no-fail-fast

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "fuzz targets (smoke: a few seconds each)"
scripts/fuzz.sh 5

step "examples"
cargo run --quiet --all-features --example quickstart >/dev/null
cargo run --quiet --all-features --example postgres_kafka >/dev/null
audit_export="$(mktemp)"
operator_key="$(cargo run --quiet --all-features --example audit -- demo "$audit_export" | sed -n 's/^operator key: //p')"
cargo run --quiet --all-features --example audit -- verify "$audit_export" --operator-key "$operator_key" >/dev/null
rm -f "$audit_export"

step "all green"
