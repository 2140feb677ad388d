#!/usr/bin/env bash
# The whole test suite of vsl-milter: formatting, vet, unit, golden,
# integration and end-to-end tests (a real Postfix), and a short fuzzing run
# of each fuzz target. README.md names this script as the test command and
# .ci/run calls it.
#   FUZZTIME=250000x ./test.sh  (default: 250,000 inputs per fuzz target, about
#                                20 s each here; a duration such as 30s works too;
#                                0 skips fuzzing)
# The end-to-end tests need postfix and swaks (Debian packages): run as
# root, this script installs them when they are missing; otherwise those
# tests skip (under CI=true a missing tool fails them).
set -euo pipefail
cd "$(dirname "$0")"

# A count, not a duration: with -fuzztime 20s, Go 1.26's fuzz coordinator
# sometimes fails a target with a bare "context deadline exceeded" at the
# end of the window (golang/go#75804, fixed in Go 1.27); a count has no
# deadline to race.
fuzztime=${FUZZTIME:-250000x}

if ! command -v swaks >/dev/null || ! [ -x /usr/sbin/postfix ] || ! perl -MNet::SSLeay -e1 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing postfix and swaks (with its TLS module) for the end-to-end tests"
    apt-get update -q >/dev/null
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string test.localdomain" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix swaks libnet-ssleay-perl libio-socket-ssl-perl >/dev/null
  else
    echo "== postfix/swaks missing and not root: the end-to-end tests will skip"
  fi
fi
if ! command -v promtool >/dev/null || ! python3 -c 'import yaml' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing promtool (Debian's prometheus) and python3-yaml for the deploy/ checks"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus python3-yaml >/dev/null
  fi
fi
if [ "${CI:-}" = true ]; then
  export VSL_E2E=1
fi

echo "== deploy/: manifests, alerts and dashboard"
if command -v promtool >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
  for f in deploy/kubernetes/*.yaml deploy/prometheus/*.yml; do
    python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" || { echo "$f: not valid YAML"; exit 1; }
  done
  promtool check config deploy/prometheus/prometheus.yml >/dev/null
  promtool test rules deploy/prometheus/alerts_test.yml >/dev/null
  python3 deploy/grafana/check_queries.py >/dev/null
elif [ "${CI:-}" = true ]; then
  echo "promtool or python3-yaml missing"; exit 1
else
  echo "promtool or python3-yaml missing: skipped"
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...
(cd bench && go vet ./...)   # the benchmark module: built and vetted, not timed

echo "== go test"
go test -count=1 ./...

if [ "$fuzztime" != "0" ]; then
  echo "== fuzz ($fuzztime each)"
  go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$fuzztime" ./vsl/syntax
  go test -run '^$' -fuzz '^FuzzRun$' -fuzztime "$fuzztime" ./vsl
fi
echo "== all tests passed"
