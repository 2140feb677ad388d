# bench/lib.sh — shell helpers the benchmark scripts source.

# free_port prints a TCP port on loopback nobody listens on.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# median reads numbers separated by spaces or newlines and prints their median.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# start_private_postfix DIR PORT EXTRA — a private Postfix instance with its
# configuration, queue and data under DIR (DIR/etc, DIR/queue, DIR/data),
# smtpd on 127.0.0.1:PORT, loopback only, no DNS, no local delivery, logging
# to DIR/postfix.log; EXTRA holds more main.cf lines. Stop it with
# postfix -c DIR/etc stop.
start_private_postfix() {
  local dir=$1 port=$2 extra=$3
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  chown postfix "$dir/data"
  sed -E 's/^smtp( +)inet/#smtp\1inet/' /usr/share/postfix/master.cf.dist > "$dir/etc/master.cf"
  echo "127.0.0.1:$port inet n - n - - smtpd" >> "$dir/etc/master.cf"
  cat > "$dir/etc/main.cf" <<EOF
compatibility_level = 3.7
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
default_process_limit = 100
$extra
EOF
  postconf -c "$dir/etc" -F '*/*/chroot = n' >/dev/null
  postfix -c "$dir/etc" start >/dev/null 2>&1
  sleep 2
}
