#!/usr/bin/env bash
# Resolve Apache Kafka's jars from Maven Central into bench/kafka/.cache/libs/.
#
#   bash bench/kafka/fetch.sh
#
# Writes .cache/libs/.version (the Kafka release, for reports).
#
# Idempotent: the cache carries a stamp with the checksum of pom.xml, and a
# run that finds a matching stamp does nothing (no Maven, no network). Edit
# pom.xml (say, kafka.version) and the next run rebuilds the cache from
# scratch, so jars of two releases never mix on one classpath.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIBS=$HERE/.cache/libs
STAMP=$LIBS/.stamp
want=$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)

if [[ -f "$STAMP" && -f "$LIBS/.version" && "$(cat "$STAMP")" == "$want" ]]; then
	exit 0
fi

echo "fetch: resolving Kafka jars into $LIBS" >&2
rm -rf "$LIBS"
mkdir -p "$LIBS"
# -q would hide which artifact failed to resolve; the log keeps everything.
if ! mvn -B -Dstyle.color=never -f "$HERE/pom.xml" package >"$HERE/.cache/mvn.log" 2>&1; then
	tail -n 30 "$HERE/.cache/mvn.log" >&2
	echo "fetch: mvn failed; full log in $HERE/.cache/mvn.log" >&2
	exit 1
fi
# A classpath with a second slf4j binding or a stray Kafka release would load
# whichever comes first; refuse it instead of running something unintended.
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")
for jar in "$LIBS"/kafka*.jar; do
	if [[ "$jar" != *"-$version.jar" ]]; then
		echo "fetch: $jar is not Kafka $version" >&2
		exit 1
	fi
done
shopt -s nullglob
bindings=("$LIBS"/log4j-slf4j-impl-*.jar "$LIBS"/slf4j-reload4j-*.jar "$LIBS"/slf4j-log4j12-*.jar \
	"$LIBS"/slf4j-simple-*.jar "$LIBS"/logback-classic-*.jar)
if ((${#bindings[@]} != 1)); then
	echo "fetch: want exactly one slf4j binding, got: ${bindings[*]:-none}" >&2
	exit 1
fi
if [[ ! -f "$LIBS/kafka_2.13-$version.jar" || ! -f "$LIBS/kafka-tools-$version.jar" ]]; then
	echo "fetch: kafka_2.13 or kafka-tools $version missing from $LIBS" >&2
	exit 1
fi
# .version is what the scripts report as "the Kafka release".
echo "$version" >"$LIBS/.version"
echo "$want" >"$STAMP"
jars=("$LIBS"/*.jar)
echo "fetch: ${#jars[@]} jars, Kafka $version" >&2
