#!/usr/bin/env bash
# The whole test suite of vsl-milter: formatting, vet, unit/golden/integration
# tests, and a short fuzzing run of each fuzz target. README.md names this
# script as the test command and .ci/run calls it.
#   FUZZTIME=20s ./test.sh    (default 20s per fuzz target; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")"

fuzztime=${FUZZTIME:-20s}

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 ./...

if [ "$fuzztime" != "0" ]; then
  echo "== fuzz ($fuzztime each)"
  go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$fuzztime" ./vsl/syntax
  go test -run '^$' -fuzz '^FuzzRun$' -fuzztime "$fuzztime" ./vsl
fi
echo "== all tests passed"
