#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up: PostgreSQL on 127.0.0.1:5432 and RabbitMQ on
# 127.0.0.1:5672 with its AMQP 1.0 plugin enabled. Safe to run again when everything is already up.
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

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
fi
echo "services-up: PostgreSQL ready"

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  rabbitmq-server -detached || true
  wait_for RabbitMQ rabbitmqctl -q status
fi
rabbitmq-plugins enable --quiet rabbitmq_amqp1_0 >/dev/null
wait_for 'RabbitMQ AMQP listener' bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
rabbitmqctl -q await_startup >/dev/null 2>&1 || true
echo "services-up: RabbitMQ ready (AMQP 1.0 plugin enabled)"
