#!/usr/bin/env bash
# Run by `npm test` before the suite: makes sure the services it talks to are up, PostgreSQL on
# 127.0.0.1:5432 (trust auth, database `test`) and RabbitMQ on 127.0.0.1:5672 with its AMQP 1.0 plugin.
# Starts them when they are installed but stopped; names what is missing when they are not installed.
# Also makes sure the dashboard test has Debian's Chromium (installed when running as root with apt).
# Safe to run again when everything is already up.
set -euo pipefail

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "services-up: $what did not come up" >&2
  return 1
}

missing=()

if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  :
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
elif command -v pg_ctl >/dev/null 2>&1 && [ -n "${PGDATA:-}" ]; then
  pg_ctl -D "$PGDATA" -w start >/dev/null || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
else
  missing+=("PostgreSQL (server not installed or not reachable on 127.0.0.1:5432; Debian/Ubuntu: apt-get install postgresql)")
fi
if [ ${#missing[@]} -eq 0 ]; then
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null | grep -q 1 \
    || createdb -h 127.0.0.1 -U postgres test 2>/dev/null || true
  echo "services-up: PostgreSQL ready"
fi

if command -v rabbitmqctl >/dev/null 2>&1; then
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    rabbitmq-server -detached || true
    wait_for RabbitMQ rabbitmqctl -q status
  fi
  rabbitmq-plugins enable --quiet rabbitmq_amqp1_0 >/dev/null
  wait_for 'RabbitMQ AMQP listener' bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
  rabbitmqctl -q await_startup >/dev/null 2>&1 || true
  echo "services-up: RabbitMQ ready (AMQP 1.0 plugin enabled)"
elif (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "services-up: a broker answers on 127.0.0.1:5672 (not managed here)"
else
  missing+=("RabbitMQ (rabbitmq-server not installed; Debian/Ubuntu: apt-get install rabbitmq-server)")
fi

# The dashboard test drives Debian's headless Chromium through playwright-core (no browser download).
if [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  :
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "services-up: installing Debian's chromium for the dashboard test"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  missing+=("Chromium for the dashboard test (Debian/Ubuntu: apt-get install chromium, or set CHROMIUM_PATH)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "services-up: the test suite needs these services, which are missing:" >&2
  for item in "${missing[@]}"; do echo "  - $item" >&2; done
  exit 1
fi
