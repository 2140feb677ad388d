#!/usr/bin/env bash
# bench/run.sh — every benchmark of vsl-milter in one command, written to
# BENCHMARKS.md at the repository root:
#
#   1. vSL against the engines Go programs embed for rules (bench/engines:
#      gopher-lua, starlark-go, goja, tengo, expr), medians and ratios;
#   2. whole milter sessions, vsl-milter against a no-op go-milter server
#      (go test ./milter -bench Session in the main module);
#   3. Postfix alone, with a no-op milter and with vsl-milter
#      (bench/postfix.sh, one message per session and --reuse: needs root
#      and postfix; skipped otherwise);
#   4. standalone mode (bench/standalone.sh, when it exists; with --quick it
#      gets --quick if it takes it, else --rounds 1 --messages 1000 if it
#      takes those).
#
#   bench/run.sh [--quick] [--no-postfix] [--out FILE]
#
# --quick     7 rounds of 200 ms per engine benchmark, 3 runs of 300 milter
#             sessions, one Postfix round of 1,000 messages: two to three
#             minutes. Without it: 10 rounds of 1 s, 5 runs of 3,000
#             sessions and the scripts' defaults (5 rounds of 5,000
#             messages): about a quarter of an hour.
# --no-postfix  skip the two scripts that run a Postfix (postfix.sh and
#             standalone.sh; both need root).
# --out FILE  write the report there instead of BENCHMARKS.md.
#
# The engine benchmarks run in rounds, each a whole pass over every
# workload and engine, so that a slow spell of a shared machine spreads
# over all engines instead of falling on one; the tables take medians.
# The raw outputs stay in bench/out/ (benchstat reads them as they are).
set -euo pipefail
cd "$(dirname "$0")"
bench=$PWD root=$(cd .. && pwd)

quick="" postfix=1 out="$root/BENCHMARKS.md" args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; args+=("$1"); shift ;;
    --no-postfix) postfix=""; args+=("$1"); shift ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    *) echo "usage: $0 [--quick] [--no-postfix] [--out FILE]" >&2; exit 2 ;;
  esac
done
if [ -n "$quick" ]; then
  rounds=7 benchtime=200ms
  milter_flags=(-count 3 -benchtime 300x) concurrent_flags=(-count 3 -benchtime 2000x)
  postfix_flags=(--rounds 1 --messages 1000)
else
  rounds=10 benchtime=1s
  # The concurrent benchmark's percentiles need many sessions to settle
  # (the 99th percentile of 3,000 is its 30 slowest, most of them warm-up).
  milter_flags=(-count 5 -benchtime 3000x) concurrent_flags=(-count 5 -benchtime 20000x)
  postfix_flags=()
fi

O=$bench/out
mkdir -p "$O"
rm -f "$O"/*.txt "$O"/*.log "$O"/*.test
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start ))s)" >&2; }

eng_cmd="go test ./engines -run '^\$' -bench . -benchmem -benchtime $benchtime"
go test -c -o "$O/engines.test" ./engines
for r in $(seq 1 "$rounds"); do
  step "engines: round $r of $rounds"
  (cd engines && "$O/engines.test" -test.run '^$' -test.bench . -test.benchmem -test.benchtime "$benchtime") | tee -a "$O/engines.txt" >&2
done

step "milter sessions: go test ./milter -bench 'Session\$' ${milter_flags[*]}, -bench SessionConcurrent ${concurrent_flags[*]}"
milter_cmd="go test ./milter -run '^\$' -bench 'Session\$' -benchmem ${milter_flags[*]}\` and \`go test ./milter -run '^\$' -bench SessionConcurrent -benchmem ${concurrent_flags[*]}"
(cd "$root" && go test -c -o "$O/milter.test" ./milter)
(cd "$root/milter" && "$O/milter.test" -test.run '^$' -test.bench 'Session$' -test.benchmem "${milter_flags[@]/#-/-test.}" &&
  "$O/milter.test" -test.run '^$' -test.bench SessionConcurrent -test.benchmem "${concurrent_flags[@]/#-/-test.}") | tee "$O/milter.txt" >&2

have_postfix() { [ "$(id -u)" = 0 ] && { command -v postfix >/dev/null || [ -x /usr/sbin/postfix ]; }; }
postfix_cmd=""
if [ -z "$postfix" ]; then
  echo "Skipped (\`bench/run.sh --no-postfix\`)." > "$O/postfix.txt"
elif ! have_postfix; then
  echo "Skipped: needs root and postfix (\`./test.sh\` as root installs it)." > "$O/postfix.txt"
else
  # One message per SMTP session (a milter connection per message), then
  # many (-d: Postfix reuses the milter connection).
  postfix_cmd="bench/postfix.sh${postfix_flags[*]:+ ${postfix_flags[*]}}\` and \`bench/postfix.sh --reuse${postfix_flags[*]:+ ${postfix_flags[*]}}"
  : > "$O/postfix.txt"
  for mode in "" --reuse; do
    step "postfix: bench/postfix.sh $mode ${postfix_flags[*]}"
    if ! "$bench/postfix.sh" $mode "${postfix_flags[@]}" > "$O/postfix.part" 2> "$O/postfix.log"; then
      { echo "Failed: \`bench/postfix.sh $mode\` exited with an error; its last lines:"; echo; echo '```'; tail -5 "$O/postfix.log"; echo '```'; } > "$O/postfix.part"
    fi
    { cat "$O/postfix.part"; echo; } >> "$O/postfix.txt"
    cat "$O/postfix.log" >&2
  done
  rm -f "$O/postfix.part"
fi

standalone_cmd=""
if [ ! -f "$bench/standalone.sh" ]; then
  echo "Not available yet: \`bench/standalone.sh\` does not exist." > "$O/standalone.txt"
elif [ -z "$postfix" ]; then
  echo "Skipped (\`bench/run.sh --no-postfix\`)." > "$O/standalone.txt"
elif ! have_postfix; then
  echo "Skipped: needs root and postfix (\`./test.sh\` as root installs it)." > "$O/standalone.txt"
else
  sa=()
  if [ -n "$quick" ]; then
    if grep -q -- '--quick' "$bench/standalone.sh"; then
      sa=(--quick)
    elif grep -q -- '--rounds' "$bench/standalone.sh" && grep -q -- '--messages' "$bench/standalone.sh"; then
      sa=(--rounds 1 --messages 1000)
    fi
  fi
  standalone_cmd="bench/standalone.sh${sa[*]:+ ${sa[*]}}"
  step "standalone: $standalone_cmd"
  if ! bash "$bench/standalone.sh" "${sa[@]}" > "$O/standalone.txt" 2> "$O/standalone.log"; then
    { echo "Failed: \`$standalone_cmd\` exited with an error; its last lines:"; echo; echo '```'; tail -5 "$O/standalone.log"; echo '```'; } > "$O/standalone.txt"
  fi
  cat "$O/standalone.log" >&2
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)
if [ -n "$commit" ] && [ -n "$(git -C "$root" --no-optional-locks status --porcelain 2>/dev/null | head -1)" ]; then
  commit="$commit, with uncommitted changes"
fi

step "report: $out"
go run ./cmd/report \
  -engines "$O/engines.txt" -engines-cmd "$eng_cmd" \
  -milter "$O/milter.txt" -milter-cmd "$milter_cmd" \
  -postfix "$O/postfix.txt" -postfix-cmd "$postfix_cmd" \
  -standalone "$O/standalone.txt" -standalone-cmd "$standalone_cmd" \
  -notes "$bench/NOTES.md" -commit "$commit" \
  -run "bench/run.sh${args[*]:+ ${args[*]}}" -o "$out"
step "done"
