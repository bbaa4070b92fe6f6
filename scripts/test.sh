#!/usr/bin/env bash
# Install everything the test suite needs into .venv and the cache, then run it.
#
#   scripts/test.sh [pytest args]
#
# Idempotent: a second run reuses .venv, the Kafka jars (~/.cache/alphaspt/kafka-*) and the
# kube-apiserver/etcd binaries (~/.cache/alphaspt/k8s). Needs Python >= 3.11, Java 17 and
# Maven (Apache Kafka jars), Go (kube-apiserver), and root or sudo for Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PYTHON" -m venv .venv
fi
step "installing alphaspt with its test extras"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

if ! command -v chromium >/dev/null 2>&1; then
  step "installing Debian's chromium (dashboard browser test)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

step "Apache Kafka jars (Maven Central)"
scripts/fetch-kafka.sh >/dev/null
step "kube-apiserver and etcd (Go modules; ~5 min the first time)"
scripts/build-kube-apiserver.sh

step "static checks: ruff, mypy --strict, import-linter"
.venv/bin/ruff check alphaspt tests bench
.venv/bin/mypy
.venv/bin/lint-imports

step "tests (Kafka broker: ${ALPHASPT_TEST_KAFKA:-tansu})"
exec .venv/bin/python -m pytest "$@"
