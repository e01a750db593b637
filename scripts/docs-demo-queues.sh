#!/usr/bin/env bash
# The scene behind the accept queue, UDP drop and kernel counter examples in
# docs/*.md and README.md: a server that stopped accepting. As root:
#
#   bash scripts/docs-demo-queues.sh     # builds the scene, prints `ready`, holds it until Enter / Ctrl-C
#   portctl who 9180 --netns portctl-demo-queues      # (in another shell)
#
# In the namespace portctl-demo-queues, with net.core.somaxconn 8 (so every
# backlog asked for above 8 becomes 8):
#
#   api     0.0.0.0:9180/tcp   listen(128), never accepts: 12 clients fill the
#                              queue to 9 of 8 and the rest are dropped
#           127.0.0.1:5353/udp SO_RCVBUF 1, never reads: all but one of 500
#                              datagrams dropped
#   web     127.0.0.1:80/tcp   listen(64); sends 200 kB to its client
#   client  the 12 connections to api, one to web that it reads 1000 bytes of
#           (its receive buffer fills: the kernel drops what does not fit),
#           the 500 datagrams, then a new connection attempt every 100 ms
#           for an hour: each SYN overflows api's queue (TcpExt ListenOverflows)
#
# The processes are python3 started through symlinks named api, web and
# client (the kernel takes a process's name from the file it exec'd). All of
# it is torn down on exit: the processes (by pid), the namespace, the temp
# dir.
set -euo pipefail
ns=portctl-demo-queues
py=/usr/bin/python3.11
[ -x "$py" ] || py=$(command -v python3)
[ "$(id -u)" -eq 0 ] || { echo "scripts/docs-demo-queues.sh: run as root (network namespaces)" >&2; exit 2; }

dir=$(mktemp -d /tmp/portctl-demo-queues.XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
    local inside
    inside=$(ip netns pids "$ns" 2>/dev/null || true)
    for p in "${pids[@]}" $inside; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${pids[@]}" $inside; do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -qw net.core.somaxconn=8

cat >"$dir/role.py" <<'EOF'
import socket, sys, threading, time

role = sys.argv[1]
if role == "api":
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", 9180))
    l.listen(128)                       # somaxconn makes it 8
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    u.bind(("127.0.0.1", 5353))
    time.sleep(3600)                    # never accepts, never reads
elif role == "web":
    l = socket.socket()
    l.bind(("127.0.0.1", 80))
    l.listen(64)
    held = []
    while True:
        c, _ = l.accept()
        held.append(c)
        c.sendall(b"x" * 200000)
elif role == "client":
    held = []
    for _ in range(12):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", 9180))
        except BlockingIOError:
            pass
        held.append(c)
    w = socket.create_connection(("127.0.0.1", 80))
    w.recv(1000)                        # and no more
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(500):
        t.sendto(b"q" * 200, ("127.0.0.1", 5353))
    for _ in range(36000):              # an hour of new clients, 10 a second
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", 9180))
        except BlockingIOError:
            pass
        c.close()
        time.sleep(0.1)
EOF

start() { # name role
    local name=$1 role=$2
    ln -sf "$py" "$dir/$name"
    (cd "$dir" && exec ip netns exec "$ns" "./$name" role.py "$role" </dev/null >/dev/null 2>&1) &
    pids+=($!)
}

start api api
start web web
sleep 0.5
start client client
sleep 1
echo ready
# Hold the scene until Enter (or EOF, or a signal).
read -r _ || true
