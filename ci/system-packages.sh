#!/bin/sh
# The Debian packages the tests use, installed where that can be done: as root with apt,
# and only if missing. Prometheus (its server and promtool) proves the alert rules and the
# dashboard's queries; Java runs Spark (edml score --engine spark). Elsewhere nothing is
# installed and those tests skip, saying why.
# Never fails the command it is part of: a machine without apt still runs every other test.
need=""
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v java >/dev/null 2>&1 || need="$need openjdk-17-jre-headless"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ci/system-packages.sh: not root with apt: not installing$need (their tests skip)"
    exit 0
fi
log=$(mktemp)
if { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends $need; } >"$log" 2>&1; then
    echo "ci/system-packages.sh: installed$need"
else
    echo "ci/system-packages.sh: apt could not install$need (their tests will fail); last lines:"
    tail -5 "$log"
fi
rm -f "$log"
exit 0
