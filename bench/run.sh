#!/usr/bin/env bash
# portctl benchmark: builds a socket population with examples/sockpop.rs inside a private
# network namespace, then times portctl (owners from BPF and from /proc) against ss / lsof /
# netstat and the floors, interleaved round after round (bench/interleave.py).
#
#   sudo bench/run.sh [--scale small|medium|large|unix|all] [--runs N] [--no-build] [--out DIR]
#                     [--baseline BIN]
#
# --scale unix is 20k unix sockets (2k listeners, 9k pairs) over 100 processes, timed
# against ss -xap and lsof -U. --scale all runs the four one after the other and ends
# with the performance targets over all of them (bench/report.py --summary).
# --baseline BIN also times another portctl binary (main's, say) on the same population,
# interleaved with this one run by run, for a before/after (compare.md).
# Environment overrides: PORTCTL=/path/to/portctl  SOCKPOP=/path/to/sockpop
#                        CARGO_TARGET_DIR (where the builds go, default ./target)
# See bench/README.md.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

SCALE=small
RUNS=5
BUILD=1
OUT=""
BASELINE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE="${2:?--scale needs a value}"; shift 2 ;;
        --scale=*) SCALE="${1#*=}"; shift ;;
        --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
        --runs=*) RUNS="${1#*=}"; shift ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="${2:?--out needs a value}"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --baseline) BASELINE="${2:?--baseline needs a binary}"; shift 2 ;;
        --baseline=*) BASELINE="${1#*=}"; shift ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*) echo "run.sh: --runs must be a number" >&2; exit 2 ;; esac
[ "$RUNS" -ge 2 ] || { echo "run.sh: --runs must be at least 2" >&2; exit 2; }

if [ "$SCALE" = all ]; then
    # Each scale in its own run (its own namespace and population); build once.
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    base="${OUT:-${CARGO_TARGET_DIR:-$here/../target}/bench/all-$(date +%Y%m%d-%H%M%S)}"
    build_flag=()
    [ "$BUILD" = 1 ] || build_flag=(--no-build)
    baseline_flag=()
    [ -z "$BASELINE" ] || baseline_flag=(--baseline "$BASELINE")
    for scale in small medium large unix; do
        bash "$here/run.sh" --scale "$scale" --runs "$RUNS" "${build_flag[@]}" "${baseline_flag[@]}" --out "$base/$scale"
        build_flag=(--no-build)
    done
    python3 "$here/report.py" --summary "$base/small" "$base/medium" "$base/large" "$base/unix" | tee "$base/targets.md"
    exit 0
fi

BASE_PORT=20000
# Scale presets. A command whose single run takes longer than SKIP_SECS is skipped.
case "$SCALE" in
    small)  SP_ARGS=(--procs 10  --listeners 100  --established 1200  --time-wait 300   --close-wait 30   --udp 50) ;;
    medium) SP_ARGS=(--procs 50  --listeners 500  --established 20000 --time-wait 4000  --close-wait 300  --udp 200) ;;
    large)  SP_ARGS=(--procs 200 --listeners 1000 --established 60000 --time-wait 10000 --close-wait 1000 --udp 500) ;;
    # Unix sockets: the files go in a directory of the run's own (below), every listener
    # on a path; the population is the namespace's only one.
    unix)   SP_ARGS=(--procs 100 --unix-listeners 2000 --unix-pairs 9000) ;;
    *) echo "run.sh: --scale must be small, medium, large, unix or all" >&2; exit 2 ;;
esac
if [ "$SCALE" = unix ]; then
    SP_ARGS+=(--hold-secs 3600)
else
    SP_ARGS+=(--shared-listener --base-port "$BASE_PORT" --hold-secs 3600)
fi
SKIP_SECS=60
PORT=$BASE_PORT  # first listener: also carries established connections

[ "$(id -u)" -eq 0 ] || { echo "run.sh: must run as root (network namespaces)" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Relative overrides are relative to where the script was started.
for v in PORTCTL SOCKPOP CARGO_TARGET_DIR BASELINE; do
    if [ -n "${!v:-}" ] && [ "${!v#/}" = "${!v}" ]; then printf -v "$v" '%s/%s' "$PWD" "${!v}"; fi
done
cd "$ROOT"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------- tools
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/bpf/libbpf.h ] || need+=(libbpf-dev)
{ command -v ip && command -v ss; } >/dev/null 2>&1 || need+=(iproute2)
command -v lsof >/dev/null 2>&1 || need+=(lsof)
command -v netstat >/dev/null 2>&1 || need+=(net-tools)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v timeout >/dev/null 2>&1 || need+=(coreutils)
if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------- build
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$BUILD" = 1 ]; then
    if [ -z "${SOCKPOP:-}" ]; then
        log "cargo build --release --example sockpop"
        if ! cargo build --release --example sockpop; then
            # The example only needs libc: build it alone so a broken crate cannot stop
            # the reference measurements.
            log "crate build failed; building sockpop standalone"
            sa="$TARGET_DIR/bench/sockpop-standalone"
            mkdir -p "$sa/src"
            cp examples/sockpop.rs "$sa/src/main.rs"
            printf '[package]\nname = "sockpop"\nversion = "0.0.0"\nedition = "2024"\n\n[dependencies]\nlibc = "0.2"\n\n[workspace]\n' >"$sa/Cargo.toml"
            CARGO_TARGET_DIR="$sa/target" cargo build --release --manifest-path "$sa/Cargo.toml"
            SOCKPOP="$sa/target/release/sockpop"
        fi
    fi
    if [ -z "${PORTCTL:-}" ]; then
        log "cargo build --release --bin portctl --example floor"
        cargo build --release --bin portctl --example floor || log "portctl build failed: its rows will read n/a"
    fi
fi
# The floors: one full TCP dump plus a one-thread /proc fd walk (examples/floor.rs), and plus
# a one-thread read of the task_file iterator (bench/floor_bpf.c, C and libbpf).
FLOOR="${FLOOR:-$TARGET_DIR/release/examples/floor}"
FLOOR_BPF="${FLOOR_BPF:-$TARGET_DIR/bench/floor_bpf}"
if [ "$BUILD" = 1 ] || [ ! -x "$FLOOR_BPF" ]; then
    log "cc -O2 bench/floor_bpf.c -lbpf"
    mkdir -p "$(dirname "$FLOOR_BPF")"
    cc -O2 -Wall -o "$FLOOR_BPF" bench/floor_bpf.c -lbpf || log "floor_bpf build failed: its row will read n/a"
fi
SOCKPOP="${SOCKPOP:-$TARGET_DIR/release/examples/sockpop}"
PORTCTL="${PORTCTL:-$TARGET_DIR/release/portctl}"
[ -x "$SOCKPOP" ] || { echo "run.sh: no sockpop binary at $SOCKPOP" >&2; exit 1; }
[ -x "$PORTCTL" ] || log "no portctl binary at $PORTCTL: its rows will read n/a"

OUT="${OUT:-$TARGET_DIR/bench/$SCALE-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ "$SCALE" = unix ]; then
    # sockpop removes the files when it exits; the directory is the run's.
    mkdir -p "$OUT/unix-sockets"
    SP_ARGS+=(--unix-dir "$OUT/unix-sockets")
fi

# ---------------------------------------------------------------------------- namespace
NS="portctl-bench-$$"
SP_PID=""
HOLDERS=()
SP_IN=""
CHILD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    # A probe or the timing run still going (it runs in the background so signals are
    # handled at once): stop it by its pid.
    if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM "$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    if [ -n "$SP_IN" ]; then exec {SP_IN}>&-; fi          # stdin EOF: sockpop stops
    if [ -n "$SP_PID" ] && kill -0 "$SP_PID" 2>/dev/null; then
        kill -TERM "$SP_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SP_PID" 2>/dev/null
    fi
    [ -n "$SP_PID" ] && wait "$SP_PID" 2>/dev/null
    # Holders die with sockpop (PDEATHSIG); make sure, by the pids it printed.
    local p st
    for p in "${HOLDERS[@]}"; do
        st=$(awk '/^State:/{print $2}' "/proc/$p/status" 2>/dev/null)
        if [ -n "$st" ] && [ "$st" != Z ] && grep -qx sockpop "/proc/$p/comm" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    ip netns del "$NS" 2>/dev/null
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "namespace $NS"
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
inns() { ip netns exec "$NS" "$@"; }
# Runs a command in the background and waits for it, so that INT/TERM reach the traps
# without waiting for a long measurement to finish; returns its exit status.
bg_wait() {
    "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

# ---------------------------------------------------------------------------- population
log "starting sockpop ${SP_ARGS[*]}"
START=$(date +%s.%N)
coproc SOCKPOP_CO { exec ip netns exec "$NS" "$SOCKPOP" "${SP_ARGS[@]}" 2>"$OUT/sockpop.log"; }
SP_PID=$SOCKPOP_CO_PID
# Own copies of the coproc pipes (bash closes its own when the coproc ends).
exec {SP_OUT}<&"${SOCKPOP_CO[0]}" {SP_IN}>&"${SOCKPOP_CO[1]}"
eval "exec ${SOCKPOP_CO[0]}<&- ${SOCKPOP_CO[1]}>&-"
ready=0
while IFS= read -r -t 300 line <&"$SP_OUT"; do
    case "$line" in
        pid\ *) HOLDERS+=("${line#pid }") ;;
        ready) ready=1; break ;;
    esac
done
if [ "$ready" != 1 ]; then
    echo "run.sh: sockpop did not get ready:" >&2
    cat "$OUT/sockpop.log" >&2
    exit 1
fi
BUILD_SECS=$(echo "$(date +%s.%N) $START" | awk '{printf "%.2f", $1-$2}')
log "population ready in ${BUILD_SECS}s (${#HOLDERS[@]} holder processes)"

counts() { # $1 = file
    {
        echo "holders=${#HOLDERS[@]}"
        echo "build_secs=$BUILD_SECS"
        for st in established time-wait close-wait fin-wait-2 listening; do
            echo "tcp_${st//-/_}=$(inns ss -Htan state "$st" | wc -l)"
        done
        echo "tcp_all=$(inns ss -Htan | wc -l)"
        echo "udp=$(inns ss -Huan | wc -l)"
        echo "port_${PORT}_tcp=$(inns ss -Htan "( sport = :$PORT or dport = :$PORT )" | wc -l)"
        echo "ss_s_tcp=$(inns ss -s | awk '/^TCP:/{sub(/^TCP: */,""); print; exit}')"
        echo "unix_all=$(inns ss -Hxa | wc -l)"
        echo "unix_listening=$(inns ss -Hxl | wc -l)"
    } >"$1"
}
counts "$OUT/counts-before.txt"
cat "$OUT/counts-before.txt" >&2

# ---------------------------------------------------------------------------- benchmark
# portctl-X runs with the default owner source (auto: BPF as root), portctl-X-proc with
# --owners-from proc: both in the same interleaved run.
NAMES=(portctl-conns portctl-conns-proc portctl-listen portctl-listen-proc portctl-who portctl-who-proc
       portctl-conns-flags portctl-conns-expr
       floor floor-bpf ss-tanp ss-tan ss-tlnp ss-tanp-sport lsof-i lsof-iTCP-port netstat-tanp)
# The same selection twice: with flags, and as an ss filter expression (one
# bytecode program either way; the expression must cost no more).
PORT_HI=$((BASE_PORT + 499))
declare -A CMD=(
    [portctl-conns]="$PORTCTL conns --state all --tcp --json"
    [portctl-conns-proc]="$PORTCTL conns --state all --tcp --json --owners-from proc"
    [portctl-conns-flags]="$PORTCTL conns --state all --json --sport $BASE_PORT-$PORT_HI --dst 127.0.0.0/8"
    [portctl-conns-expr]="$PORTCTL conns --json state all sport ge :$BASE_PORT and sport le :$PORT_HI and dst 127.0.0.0/8"
    [portctl-listen]="$PORTCTL listen --json"
    [portctl-listen-proc]="$PORTCTL listen --json --owners-from proc"
    [portctl-who]="$PORTCTL who :$PORT --json"
    [portctl-who-proc]="$PORTCTL who :$PORT --json --owners-from proc"
    [floor]="$FLOOR"
    [floor-bpf]="$FLOOR_BPF $ROOT/bpf/portctl.bpf.o"
    [ss-tanp]="ss -tanp"
    [ss-tan]="ss -tan"
    [ss-tlnp]="ss -tlnp"
    [ss-tanp-sport]="ss -tanp 'sport = :$PORT'"
    [lsof-i]="lsof -nP -i"
    [lsof-iTCP-port]="lsof -nP -iTCP:$PORT"
    [netstat-tanp]="netstat -tanp"
)
if [ "$SCALE" = unix ]; then
    # Listener 0's path: its pairs' accepted ends and clients are the `who` answer.
    UPATH="$OUT/unix-sockets/u0.sock"
    NAMES=(portctl-conns-unix portctl-listen-unix portctl-who-unix ss-xap ss-xa ss-xlp lsof-U)
    CMD[portctl-conns-unix]="$PORTCTL conns -x --state all --json"
    CMD[portctl-listen-unix]="$PORTCTL listen -x --json"
    CMD[portctl-who-unix]="$PORTCTL who $UPATH --json"
    CMD[ss-xap]="ss -xap"
    CMD[ss-xa]="ss -xa"
    CMD[ss-xlp]="ss -xlp"
    CMD[lsof-U]="lsof -nP -U"
fi
{
    echo "scale=$SCALE"
    echo "runs=$RUNS"
    echo "sockpop_args=${SP_ARGS[*]}"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "timing=bench/interleave.py, $RUNS interleaved rounds"
    echo "owners=$(inns "$PORTCTL" -v listen --port 1 2>&1 >/dev/null | sed -n 's/^portctl: owners from //p' | head -1)"
    echo "ss=$(ss -V 2>&1 | head -1)"
    echo "lsof=$(lsof -v 2>&1 | awk '/revision/{print $NF; exit}')"
    echo "netstat=$(netstat --version 2>&1 | head -1)"
    echo "portctl=$PORTCTL"
} >"$OUT/meta.txt"
: >"$OUT/commands.tsv"

# One command's probe run; when it works, a line of the plan (its repeats per round) for
# bench/interleave.py, and a line in commands.tsv either way.
probe() { # name cmd plan
    local name=$1 cmd=$2 plan=$3 rc=0 secs rss_kb why reps
    # One probe run: checks the command works, gives its wall time and peak RSS
    # (/usr/bin/time %M; `exec` so the shell is not in between).
    bg_wait inns /usr/bin/time -f '%e %M' -o "$OUT/$name.time" \
        timeout $((SKIP_SECS + 30)) bash -c "exec $cmd" >/dev/null 2>"$OUT/$name.err" || rc=$?
    read -r secs rss_kb <<<"$(tail -1 "$OUT/$name.time" 2>/dev/null || echo '0 0')"
    if [ "$rc" = 124 ]; then
        log "$name: probe timed out (> $((SKIP_SECS + 30)) s): skipped"
        printf '%s\t%s\tskipped\t>%ss per run\t\n' "$name" "$cmd" "$SKIP_SECS" >>"$OUT/commands.tsv"
        return
    fi
    if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
        why=$(grep -v '^Command exited' "$OUT/$name.err" | head -1 | tr '\t' ' ')
        log "$name: failed (exit $rc): ${why:-no message}"
        printf '%s\t%s\tfailed\texit %s: %s\t%s\n' "$name" "$cmd" "$rc" "$why" "$rss_kb" >>"$OUT/commands.tsv"
        return
    fi
    if awk -v s="$secs" -v l="$SKIP_SECS" 'BEGIN{exit !(s > l)}'; then
        log "$name: one run took ${secs}s (> ${SKIP_SECS}s): skipped"
        printf '%s\t%s\tskipped\t%ss per run\t%s\n' "$name" "$cmd" "$secs" "$rss_kb" >>"$OUT/commands.tsv"
        return
    fi
    # Fast commands (the small scale: a few ms, where run-to-run jitter of 1-2 ms is common)
    # run several times a round, so that each gets about 0.2 s of runs per round and its
    # median is steady.
    reps=$(awk -v s="$secs" 'BEGIN{ r = (s > 0) ? int(0.2 / s) : 20; if (r < 1) r = 1; if (r > 20) r = 20; print r }')
    log "$name: probe ${secs}s, ${rss_kb} KiB; $reps run(s) per round"
    printf '%s\t%s\t%s\n' "$name" "$reps" "$cmd" >>"$plan"
    printf '%s\t%s\tok\t%s\t%s\n' "$name" "$cmd" "$((reps * RUNS))" "$rss_kb" >>"$OUT/commands.tsv"
}

# The commands of a plan, interleaved: each once (or a few times) per round, round after
# round: a shared machine's load drifts, and it should weigh on both sides of every ratio
# alike.
interleave() { # plan
    [ -s "$1" ] || return 0
    log "interleaved: $RUNS rounds (+1 warm-up) of $(wc -l <"$1") commands"
    bg_wait inns python3 "$ROOT/bench/interleave.py" "$OUT" "$RUNS" "$1"
}

: >"$OUT/plan.tsv"
for name in "${NAMES[@]}"; do
    probe "$name" "${CMD[$name]}" "$OUT/plan.tsv"
done
interleave "$OUT/plan.tsv"

# ---------------------------------------------------------------------------- before/after
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { echo "run.sh: --baseline $BASELINE is not executable" >&2; exit 1; }
    echo "baseline=$BASELINE" >>"$OUT/meta.txt"
    # Each round runs every portctl command once with each binary, alternating which goes
    # first, so drifts in the machine's load hit both alike.
    rounds=$(( RUNS < 10 ? 10 : RUNS ))
    log "before/after: $rounds interleaved rounds against $BASELINE"
    : >"$OUT/compare.txt"
    : >"$OUT/compare-skipped.txt"
    # A command the baseline cannot run (an option it does not have: exit 2) is left
    # out of the comparison, and said so, instead of timing its error message.
    declare -A SKIP=()
    for name in "${NAMES[@]}"; do
        case "$name" in portctl-*) ;; *) continue ;; esac
        new="${CMD[$name]}"
        rc=0
        inns bash -c "exec $BASELINE${new#"$PORTCTL"}" >/dev/null 2>&1 || rc=$?
        if [ "$rc" -gt 1 ]; then
            SKIP[$name]=1
            printf '%s\t%s\n' "$name" "$rc" >>"$OUT/compare-skipped.txt"
            log "before/after: the baseline cannot run $name (exit $rc): left out"
        fi
    done
    for round in $(seq "$rounds"); do
        for name in "${NAMES[@]}"; do
            case "$name" in portctl-*) ;; *) continue ;; esac
            [ -z "${SKIP[$name]:-}" ] || continue
            new="${CMD[$name]}"
            old="$BASELINE${new#"$PORTCTL"}"
            order=(old new)
            [ $((round % 2)) = 0 ] && order=(new old)
            for which in "${order[@]}"; do
                cmd=$new
                [ "$which" = old ] && cmd=$old
                bg_wait inns /usr/bin/time -a -o "$OUT/compare.txt" -f "$name $which %e %U %S %M" \
                    bash -c "exec $cmd" >/dev/null 2>&1 || true
            done
        done
    done
fi

# ---------------------------------------------------------------------------- NAT rules
# The same listen and who with NAT rules loaded (issue 17): Docker's layout (published
# ports without a socket) and 5,000 unrelated rules in the nat table, first through
# iptables-nft (the target: within 1.2x of the runs without rules just before), then as
# native nftables rules in a nat-hooked chain (for the record: listing those takes nft
# itself ~0.3-0.5 s). The rules live in the namespace, so the runs with and without them
# cannot be interleaved with each other: each set is interleaved on its own, one right
# after the other.
# The fixtures are tests/fixtures/nat; the rules go with the namespace.
NAT_FX="$ROOT/tests/fixtures/nat"
if [ "$SCALE" = unix ]; then
    : # no TCP population: the NAT runs time the TCP commands
elif command -v nft >/dev/null 2>&1 && command -v iptables-nft >/dev/null 2>&1; then
    # The runs without rules again, right before the rules go in, so that the ratio
    # compares runs minutes apart, not the whole benchmark apart.
    : >"$OUT/plan-nat-base.tsv"
    probe portctl-listen-base "${CMD[portctl-listen]}" "$OUT/plan-nat-base.tsv"
    probe portctl-who-base "${CMD[portctl-who]}" "$OUT/plan-nat-base.tsv"
    interleave "$OUT/plan-nat-base.tsv"
    log "NAT: docker-iptables + 5,000 iptables-nft nat rules"
    USERLAND_PROXY=false bash "$NAT_FX/docker-iptables.sh" "$NS" >/dev/null
    NOISE_BACKEND=iptables-nft NOISE_TABLE=nat bash "$NAT_FX/noise-5000.sh" "$NS" >/dev/null
    echo "nat_rules_iptables=$(inns iptables-nft-save -t nat | grep -c '^-A')" >>"$OUT/meta.txt"
    : >"$OUT/plan-nat.tsv"
    probe portctl-listen-nat "${CMD[portctl-listen]}" "$OUT/plan-nat.tsv"
    probe portctl-who-nat "${CMD[portctl-who]}" "$OUT/plan-nat.tsv"
    interleave "$OUT/plan-nat.tsv"
    log "NAT: the 5,000 rules as native nftables rules in a nat prerouting chain instead"
    inns iptables-nft -w -t nat -D PREROUTING -j NOISE
    inns iptables-nft -w -t nat -F NOISE
    inns iptables-nft -w -t nat -X NOISE
    NOISE_BACKEND=nft NOISE_TABLE=nat bash "$NAT_FX/noise-5000.sh" "$NS" >/dev/null
    echo "nat_rules_nft=$(inns nft list table inet noise | grep -c -e accept -e drop -e return)" >>"$OUT/meta.txt"
    : >"$OUT/plan-natnft.tsv"
    probe portctl-listen-natnft "${CMD[portctl-listen]}" "$OUT/plan-natnft.tsv"
    probe portctl-who-natnft "${CMD[portctl-who]}" "$OUT/plan-natnft.tsv"
    interleave "$OUT/plan-natnft.tsv"
else
    log "NAT: nft or iptables-nft missing: the NAT runs are skipped (apt-get install nftables iptables)"
fi

counts "$OUT/counts-after.txt"
python3 "$ROOT/bench/report.py" "$OUT" | tee "$OUT/report.md"
log "results in $OUT"
