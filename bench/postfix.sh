#!/usr/bin/env bash
# bench/postfix.sh — Postfix throughput with no milter, with a no-op
# go-milter, and with vsl-milter running the Doe family rules, measured in
# one run, interleaved (A B C A B C ...), with medians and ratios.
#
#   bench/postfix.sh [--rounds N] [--messages N] [--sessions N] [--size BYTES] [--reuse] [--unix]
#
# Defaults: 5 rounds of smtp-source -s 20 -m 5000 -l 2048, one message per
# SMTP session (and so one milter connection per message). --reuse passes -d
# to smtp-source: many messages per session, and Postfix reuses the milter
# connection. --unix connects Postfix to both milters over unix sockets
# instead of TCP on loopback. Needs root, postfix and smtp-source/smtp-sink (./test.sh installs
# them). Everything runs on loopback in a private Postfix instance under a
# temporary directory; nothing else on the machine is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5 messages=5000 sessions=20 size=2048 reuse="" unix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --reuse) reuse="-d"; shift ;;
    --unix) unix=1; shift ;;
    *) echo "usage: $0 [--rounds N] [--messages N] [--sessions N] [--size BYTES] [--reuse] [--unix]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/postfix.sh: needs root to run a private Postfix" >&2; exit 1; }
for t in postfix smtp-source smtp-sink postconf postqueue; do
  command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "bench/postfix.sh: $t missing (run ./test.sh as root once)" >&2; exit 1; }
done

. bench/lib.sh
W=$(mktemp -d /tmp/vsl-bench-XXXXXX); chmod 755 "$W"
PF=$(free_port); SINK=$(free_port); NOOP=$(free_port); VSL=$(free_port)
pids=()
cleanup() {
  postfix -c "$W/etc" stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

echo "building vsl-milter and noop-milter..." >&2
mkdir -p "$W/bin" "$W/rules" "$W/mail"
go build -o "$W/bin/vsl-milter" ./cmd/vsl-milter
(cd bench && go build -o "$W/bin/noop-milter" ./cmd/noop-milter)

cp contrib/examples/doe-family/{main.vsl,objects.vsl,blacklist.txt} "$W/rules/"
if [ -n "$unix" ]; then
  mkdir -p "$W/run"; chmod 755 "$W/run"
  vsl_listen="unix:$W/run/vsl.sock"; noop_args=(-network unix -addr "$W/run/noop.sock")
  vsl_milter="unix:$W/run/vsl.sock"; noop_milter="unix:$W/run/noop.sock"
else
  vsl_listen="inet:127.0.0.1:$VSL"; noop_args=(-addr "127.0.0.1:$NOOP")
  vsl_milter="inet:127.0.0.1:$VSL"; noop_milter="inet:127.0.0.1:$NOOP"
fi
cat > "$W/vsmtp.toml" <<EOF
[server]
domain = "doe-family.com"
[app.vsl]
filepath = "rules/main.vsl"
[milter]
listen = "$vsl_listen"
socket_group = "postfix"
[metrics]
listen = "off"
[log]
level = "warn"
[delivery]
maildir_root = "$W/mail"
EOF
"$W/bin/vsl-milter" serve -c "$W/vsmtp.toml" 2>"$W/vsl.log" & pids+=($!); vsl_pid=$!
"$W/bin/noop-milter" "${noop_args[@]}" 2>"$W/noop.log" & pids+=($!); noop_pid=$!
smtp-sink -u postfix "127.0.0.1:$SINK" 256 & pids+=($!)

start_private_postfix "$W" "$PF" "relayhost = [127.0.0.1]:$SINK
milter_protocol = 6
milter_default_action = tempfail
smtpd_milters ="

cpu_ms() { # user+system CPU time of a process, in ms
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}
busy_ms() { # CPU time the whole machine spent busy (not idle, not waiting for I/O), in ms
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) * 1000 / hz }' /proc/stat
}
drain() { # wait until Postfix's queue is empty
  for _ in $(seq 1 600); do
    [ -z "$(postqueue -c "$W/etc" -j 2>/dev/null | head -c 1)" ] && return
    sleep 0.2
  done
}
run_one() { # config -> "msgs_per_s milter_cpu_ms_per_msg machine_cpu_ms_per_msg"
  local cfg=$1 milter="" pid=""
  case $cfg in
    none) milter="" ;;
    noop) milter=$noop_milter; pid=$noop_pid ;;
    vsl) milter=$vsl_milter; pid=$vsl_pid ;;
  esac
  postconf -c "$W/etc" -e "smtpd_milters = $milter"
  postfix -c "$W/etc" reload >/dev/null 2>&1
  sleep 1.5
  local c0=0 c1=0
  [ -n "$pid" ] && c0=$(cpu_ms "$pid")
  local t0 t1 b0 b1
  b0=$(busy_ms)
  t0=$(date +%s.%N)
  smtp-source $reuse -s "$sessions" -m "$messages" -l "$size" -M client.example -f s@example.org -t r@example.net "127.0.0.1:$PF"
  t1=$(date +%s.%N)
  [ -n "$pid" ] && c1=$(cpu_ms "$pid")
  drain
  b1=$(busy_ms)
  awk -v m="$messages" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v b0="$b0" -v b1="$b1" \
    'BEGIN { printf "%.1f %.3f %.3f\n", m / (t1 - t0), (c1 - c0) / m, (b1 - b0) / m }'
}

declare -A rate cpu busy
for r in $(seq 1 "$rounds"); do
  for cfg in none noop vsl; do
    read -r mps cms bms < <(run_one $cfg)
    rate[$cfg]+="$mps "; cpu[$cfg]+="$cms "; busy[$cfg]+="$bms "
    echo "round $r: $cfg $mps msg/s, milter CPU $cms ms/msg, machine CPU $bms ms/msg" >&2
  done
done
grep -q "warning: .*Milter" "$W/postfix.log" && { echo "postfix logged milter warnings:" >&2; grep "Milter" "$W/postfix.log" | tail -5 >&2; }

base=$(echo "${rate[none]}" | median)
mode="one message per session"; [ -n "$reuse" ] && mode="many messages per session (-d)"
if [ -n "$unix" ]; then mode="$mode, milters on unix sockets"; else mode="$mode, milters on TCP loopback"; fi
echo
echo "Postfix + milters, smtp-source -s $sessions -m $messages -l $size, $mode; median of $rounds interleaved rounds"
echo
printf "| %-28s | %10s | %14s | %18s | %19s |\n" "configuration" "msg/s" "ratio to none" "milter CPU ms/msg" "machine CPU ms/msg"
printf "|%s|%s|%s|%s|%s|\n" "------------------------------" "-----------:" "---------------:" "-------------------:" "--------------------:"
for cfg in none noop vsl; do
  m=$(echo "${rate[$cfg]}" | median); c=$(echo "${cpu[$cfg]}" | median); b=$(echo "${busy[$cfg]}" | median)
  name=$cfg; [ $cfg = none ] && name="Postfix alone"; [ $cfg = noop ] && name="no-op go-milter"; [ $cfg = vsl ] && name="vsl-milter + Doe rules"
  [ $cfg = none ] && c="-"
  printf "| %-28s | %10s | %14s | %18s | %19s |\n" "$name" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$c" "$b"
done
