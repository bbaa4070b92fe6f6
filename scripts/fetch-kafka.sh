#!/usr/bin/env bash
# Fetch an Apache Kafka broker (KRaft) as jars from Maven Central.
#
# The Kafka distribution tarball is not reachable from our machines, so this resolves
# org.apache.kafka:kafka_2.13 and its runtime dependencies with Maven, plus a log4j2
# SLF4J binding so the broker logs, into
#   ${ALPHASPT_CACHE_DIR:-$HOME/.cache/alphaspt}/kafka-<version>/libs
# Idempotent: exits at once when the version stamp is present.
#
# Usage: scripts/fetch-kafka.sh [--force]
# Env:   ALPHASPT_KAFKA_VERSION (default 4.1.1), ALPHASPT_CACHE_DIR, MVN (default mvn)
set -euo pipefail

KAFKA_VERSION="${ALPHASPT_KAFKA_VERSION:-4.1.1}"
CACHE_DIR="${ALPHASPT_CACHE_DIR:-$HOME/.cache/alphaspt}"
DEST="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIBS="$DEST/libs"
STAMP="$DEST/.complete"
MVN="${MVN:-mvn}"
MVN_ARGS=(-B -q -Dstyle.color=never -Dmaven.repo.local="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}")

log() { printf '[fetch-kafka] %s\n' "$*" >&2; }
# Maven 3.8 with -q still prints bare ANSI reset codes; strip them. Output goes to stderr so
# that stdout carries only the libs path.
mvn_run() { "$MVN" "${MVN_ARGS[@]}" "$@" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' >&2; }

if [[ "${1:-}" == "--force" ]]; then
  rm -f "$STAMP"
fi

if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$KAFKA_VERSION" ]] \
  && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
  log "Kafka $KAFKA_VERSION already present in $LIBS"
  echo "$LIBS"
  exit 0
fi

command -v "$MVN" >/dev/null || { log "error: '$MVN' not found (apt-get install -y maven)"; exit 1; }
command -v java >/dev/null || { log "error: java not found (need Java 17+)"; exit 1; }

mkdir -p "$CACHE_DIR"
WORK="$(mktemp -d "$CACHE_DIR/.fetch-kafka.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>alphaspt.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM

log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and runtime dependencies with Maven..."
start=$(date +%s)
mvn_run -f "$WORK/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime \
  -DoutputDirectory="$WORK/libs"

if ! compgen -G "$WORK/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
  log "error: kafka_2.13-$KAFKA_VERSION.jar missing after resolution"
  exit 1
fi

# The broker logs through SLF4J, but kafka_2.13's POM brings no SLF4J binding; the official
# distribution ships log4j2's. Pick the one matching the resolved slf4j-api and log4j-core.
jar_version() { # $1 = artifact name; prints the version of $WORK/libs/$1-<version>.jar
  local f
  f="$(compgen -G "$WORK/libs/$1-[0-9]*.jar" | head -n1 || true)"
  [[ -n "$f" ]] || return 1
  f="${f##*/"$1"-}"
  echo "${f%.jar}"
}
slf4j_version="$(jar_version slf4j-api)" || { log "error: slf4j-api not resolved"; exit 1; }
log4j_version="$(jar_version log4j-core)" || { log "error: log4j-core not resolved"; exit 1; }
if [[ "$slf4j_version" == 1.* ]]; then binding=log4j-slf4j-impl; else binding=log4j-slf4j2-impl; fi
log "adding SLF4J binding org.apache.logging.log4j:$binding:$log4j_version (slf4j-api $slf4j_version)"
mvn_run -f "$WORK/pom.xml" dependency:copy \
  -Dartifact="org.apache.logging.log4j:$binding:$log4j_version" \
  -DoutputDirectory="$WORK/libs"

rm -rf "$LIBS"
mkdir -p "$DEST"
mv "$WORK/libs" "$LIBS"
echo "$KAFKA_VERSION" >"$STAMP"
log "done: $(find "$LIBS" -name '*.jar' | wc -l) jars in $LIBS ($(( $(date +%s) - start ))s)"
echo "$LIBS"
