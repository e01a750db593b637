#!/usr/bin/env bash
# Runs every test. Installs what the tests need (iproute2 for ss/ip/nstat,
# util-linux for setpriv and nsenter, procps, prometheus for promtool,
# groff-base and bsdextrautils for the man page and `column -t` checks;
# nftables, iptables, nfacct and xxd for the NAT fixtures of
# tests/fixtures/nat; lsof, psmisc (fuser) and net-tools (netstat) for the
# filter tests and docs/coming-from.md's pairs; clang and libbpf-dev to check
# that the committed BPF object is what its source compiles to, bpftool to
# list loaded BPF programs) when missing, without recommends (prometheus
# recommends node-exporter, a listener on :9100). As root it also runs the
# root-only tests (network namespaces, other users, BPF): --include-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nstat >/dev/null 2>&1 || need+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v column >/dev/null 2>&1 || need+=(bsdextrautils)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v iptables-legacy >/dev/null 2>&1 || need+=(iptables)
command -v nfacct >/dev/null 2>&1 || need+=(nfacct)
command -v xxd >/dev/null 2>&1 || need+=(xxd)
command -v lsof >/dev/null 2>&1 || need+=(lsof)
command -v fuser >/dev/null 2>&1 || need+=(psmisc)
command -v netstat >/dev/null 2>&1 || need+=(net-tools)
command -v clang >/dev/null 2>&1 || need+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v bpftool >/dev/null 2>&1 || [ -x /usr/sbin/bpftool ] || need+=(bpftool)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "scripts/test.sh: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
        exit 2
    fi
fi

extra=()
if [ "$(id -u)" -eq 0 ]; then
    extra=(--include-ignored)
fi
# Examples are test fixtures (sockpop builds socket populations): build them first.
cargo build --locked --examples --quiet
exec cargo test --locked -- "${extra[@]}" "$@"
