#!/usr/bin/env bash
# The scene behind the outputs in docs/*.md: a network namespace with a few
# stand-in servers, clients and leaks, so the examples are real portctl output
# without the host's own sockets. As root:
#
#   bash scripts/docs-demo.sh            # builds the scene, prints `ready`, holds it until Enter / Ctrl-C
#   ip netns exec portctl-demo portctl listen      # (in another shell)
#
# The processes are python3 started through symlinks named postgres,
# redis-server, nginx, dnsmasq, api-server, app and leaky-worker (the kernel takes a
# process's name from the file it exec'd), under the users postgres, www-data
# and root. What runs:
#
#   postgres      0.0.0.0:5432/tcp   wildcard, user postgres; 3 clients connected
#   redis-server  127.0.0.1:6379/tcp loopback
#   nginx         [::]:443/tcp       dual-stack, a pre-fork pair: master (root) + worker (www-data)
#   dnsmasq       127.0.0.53:53/udp  and 10.20.0.5:53/udp (eth0: a dummy interface, or a veth)
#   api-server    10.20.0.5:8080/tcp one address; answers and closes first: TIME_WAIT on 8080
#                 and DIR/api.sock (unix stream), @api-control (abstract seqpacket),
#                 DIR/log.sock (unix dgram)
#   app           3 connections to postgres, 2 to nginx, 5 calls to the api, 3 clients of
#                 api.sock
#   leaky-worker  holds 4 connections to 127.0.0.1:6379 that the server closed: CLOSE_WAIT
#   tcpdump       an AF_PACKET socket on eth0, every protocol, eth0 made promiscuous
#   ping          a raw ICMP socket
#   DIR/old.sock  a stale socket file: its server exited without removing it
#
# Everything is torn down on exit: the processes (by pid), the namespace, the
# temp dir.
set -euo pipefail
ns=${PORTCTL_DEMO_NS:-portctl-demo}
py=/usr/bin/python3.11
[ -x "$py" ] || py=$(command -v python3)
[ "$(id -u)" -eq 0 ] || { echo "scripts/docs-demo.sh: run as root (network namespaces)" >&2; exit 2; }

dir=$(mktemp -d /tmp/portctl-demo.XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
    # The processes this script started, and their forks: everything in the
    # namespace it created.
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
# eth0: a dummy interface, or one end of a veth pair where dummy is missing.
ip -n "$ns" link add eth0 type dummy 2>/dev/null || {
    ip -n "$ns" link add eth0 type veth peer name eth1
    ip -n "$ns" link set eth1 up
}
ip -n "$ns" addr add 10.20.0.5/24 dev eth0
ip -n "$ns" link set eth0 up

cat >"$dir/role.py" <<'EOF'
import os, socket, sys, time

def listener(family, addr, port, v6only=None, backlog=128):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, port))
    s.listen(backlog)
    return s

def serve(s, close_first=False, keep=None):
    while True:
        c, _ = s.accept()
        if close_first:
            c.recv(100)
            c.close()          # we close first: TIME_WAIT on our side
        else:
            keep.append(c)     # held open

role = sys.argv[1]
if role == "postgres":
    s = listener(socket.AF_INET, "0.0.0.0", 5432)
    serve(s, keep=[])
elif role == "redis":
    s = listener(socket.AF_INET, "127.0.0.1", 6379)
    while True:
        c, _ = s.accept()
        c.close()              # redis closes idle clients: theirs go CLOSE_WAIT
elif role == "nginx":
    s = listener(socket.AF_INET6, "::", 443, v6only=0, backlog=511)
    if os.fork() == 0:         # the worker accepts on it too, as www-data
        import pwd
        try:
            u = pwd.getpwnam("www-data")
        except KeyError:
            u = pwd.getpwnam("nobody")
        os.setgroups([]); os.setgid(u.pw_gid); os.setuid(u.pw_uid)
    serve(s, keep=[])
elif role == "dnsmasq":
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.53", 53))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("10.20.0.5", 53))
    while True:
        time.sleep(3600)
elif role == "api":
    s = listener(socket.AF_INET, "10.20.0.5", 8080)
    import threading
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); u.bind(os.path.abspath("api.sock")); u.listen(128)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); ctl.bind("\0api-control"); ctl.listen(8)
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); log.bind(os.path.abspath("log.sock"))
    threading.Thread(target=serve, args=(u,), kwargs={"keep": []}, daemon=True).start()
    serve(s, close_first=True)
elif role == "clients":
    # an app: connections to postgres and nginx, calls to the api
    held = []
    for _ in range(3):
        held.append(socket.create_connection(("127.0.0.1", 5432)))
    for _ in range(2):
        held.append(socket.create_connection(("::1", 443)))
    for _ in range(5):
        c = socket.create_connection(("10.20.0.5", 8080)); c.send(b"GET /\n"); c.recv(10); c.close()
    for _ in range(3):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); u.connect(os.path.abspath("api.sock")); held.append(u)
    while True:
        time.sleep(3600)
elif role == "leaky":
    held = [socket.create_connection(("127.0.0.1", 6379)) for _ in range(4)]
    while True:
        time.sleep(3600)
elif role == "capture":
    import struct
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    p.bind(("eth0", 3))
    mreq = struct.pack("iHH8s", socket.if_nametoindex("eth0"), 1, 0, b"")  # PACKET_MR_PROMISC
    p.setsockopt(263, 1, mreq)                                             # SOL_PACKET, PACKET_ADD_MEMBERSHIP
    while True:
        time.sleep(3600)
elif role == "ping":
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    while True:
        time.sleep(3600)
elif role == "stale":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(os.path.abspath("old.sock")); s.listen(1)
    # exits without unlinking it
EOF

start() { # user name role
    local user=$1 name=$2 role=$3
    id -u "$user" >/dev/null 2>&1 || user=nobody
    ln -sf "$py" "$dir/$name"
    # From the temp dir, so command lines read `./nginx role.py nginx`.
    (cd "$dir" && exec ip netns exec "$ns" setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
        "./$name" role.py "$role" </dev/null >/dev/null 2>&1) &
    pids+=($!)
}

start postgres postgres postgres
start root redis-server redis
start root nginx nginx
start root dnsmasq dnsmasq
start root api-server api
sleep 0.5
start root app clients
start root leaky-worker leaky
start root tcpdump capture
start root ping ping
start root old-server stale
sleep 0.5
echo ready
# Hold the scene until Enter (or EOF, or a signal).
read -r _ || true
