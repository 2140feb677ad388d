#!/usr/bin/env bash
# bench/standalone.sh — vsl-milter as the SMTP server itself against
# Postfix, vSMTP's own benchmark method: every message is accepted and
# held (vsl-milter: a quarantine rule at preq, stored under app.dirpath;
# Postfix: check_recipient_access static:HOLD, its hold queue), fsync on in
# both, smtp-source -s 20 -m N at 2 KiB and 100 KiB, interleaved rounds,
# medians and the ratio of vsl-milter to Postfix.
#
#   bench/standalone.sh [--rounds N] [--messages N] [--sessions N]
#
# Needs root, postfix and smtp-source (./test.sh installs them). Everything
# runs on loopback under a temporary directory (a private Postfix instance).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5 messages=5000 sessions=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--messages N] [--sessions N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/standalone.sh: needs root to run a private Postfix" >&2; exit 1; }
for t in postfix smtp-source postconf postsuper; do
  command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "bench/standalone.sh: $t missing (run ./test.sh as root once)" >&2; exit 1; }
done

. bench/lib.sh
W=$(mktemp -d /tmp/vsl-bench-sa-XXXXXX); chmod 755 "$W"
PF=$(free_port); VSL=$(free_port)
pids=()
cleanup() {
  postfix -c "$W/etc" stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

echo "building vsl-milter..." >&2
mkdir -p "$W/bin" "$W/spool" "$W/app"
go build -o "$W/bin/vsl-milter" ./cmd/vsl-milter

cat > "$W/main.vsl" <<'EOF'
#{ preq: [ rule "hold everything" || quarantine("bench") ] }
EOF
cat > "$W/vsmtp.toml" <<EOF
[server]
domain = "mx.bench.test"
client_count_max = 100
message_size_limit = 20000000
[server.interfaces]
addr = ["127.0.0.1:$VSL"]
[server.queues]
dirpath = "$W/spool"
[app]
dirpath = "$W/app"
[app.vsl]
filepath = "main.vsl"
[milter]
listen = "off"
[metrics]
listen = "off"
[log]
level = "warn"
EOF
"$W/bin/vsl-milter" serve -c "$W/vsmtp.toml" 2>"$W/vsl.log" & pids+=($!)

start_private_postfix "$W" "$PF" "smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject
message_size_limit = 20000000"

run_one() { # target size -> msgs_per_s
  local port=$1 size=$2 t0 t1
  t0=$(date +%s.%N)
  smtp-source -s "$sessions" -m "$messages" -l "$size" -M client.example -f s@example.org -t r@example.net "127.0.0.1:$port"
  t1=$(date +%s.%N)
  awk -v m="$messages" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f\n", m / (t1 - t0) }'
}
reset_held() {
  postsuper -c "$W/etc" -d ALL hold >/dev/null 2>&1 || true
  rm -rf "$W/app/bench"
  sync
}

declare -A rate
for r in $(seq 1 "$rounds"); do
  for size in 2048 102400; do
    for target in postfix vsl; do
      reset_held
      port=$PF; [ $target = vsl ] && port=$VSL
      mps=$(run_one "$port" "$size")
      rate[$target.$size]+="$mps "
      echo "round $r: $target ${size}B $mps msg/s" >&2
    done
  done
done
held=$(find "$W/app/bench" -name '*.eml' 2>/dev/null | wc -l)
echo "last vsl round: $held messages in the quarantine (want $messages)" >&2

echo
echo "Standalone: smtp-source -s $sessions -m $messages, every message held, fsync on; median of $rounds interleaved rounds"
echo
printf "| %-10s | %16s | %22s | %16s |\n" "size" "Postfix msg/s" "vsl-milter msg/s" "vsl / Postfix"
printf "|%s|%s|%s|%s|\n" "------------" "------------------" "------------------------" "------------------"
for size in 2048 102400; do
  p=$(echo "${rate[postfix.$size]}" | median); v=$(echo "${rate[vsl.$size]}" | median)
  printf "| %-10s | %16s | %22s | %16s |\n" "$((size / 1024)) KiB" "$p" "$v" "$(awk -v a="$v" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
done
