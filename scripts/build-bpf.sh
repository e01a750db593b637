#!/usr/bin/env bash
# Compiles the BPF programs (bpf/portctl.bpf.c) into the object portctl embeds
# (bpf/portctl.bpf.o, committed, so that `cargo build` needs no BPF toolchain).
#
#   scripts/build-bpf.sh           rebuild bpf/portctl.bpf.o
#   scripts/build-bpf.sh --check   rebuild into a temporary file and fail if it
#                                  differs from the committed object (CI)
#
# Needs clang and libbpf's headers (bpf_helpers.h, bpf_core_read.h) from
# Debian: `apt-get install clang libbpf-dev`; as root they are installed when
# missing. The output depends on the compiler: the committed object is built by
# the clang named in bpf/CLANG_VERSION (Debian 12's), and --check refuses to
# compare against another major version rather than report a false difference.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-bpf.sh: unknown argument: $1" >&2; exit 2 ;;
esac

CLANG="${CLANG:-clang}"
need=()
command -v "$CLANG" >/dev/null 2>&1 || need+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "build-bpf.sh: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
        exit 2
    fi
fi

want=$(cat bpf/CLANG_VERSION)
have=$("$CLANG" -dumpversion)
if [ "${have%%.*}" != "${want%%.*}" ]; then
    msg="clang $have is not clang $want, which built the committed object"
    if [ "$check" = 1 ]; then
        echo "build-bpf.sh: $msg: cannot check it (other versions emit other bytes)" >&2
        exit 2
    fi
    echo "build-bpf.sh: warning: $msg; update bpf/CLANG_VERSION if you commit this build" >&2
fi

out=bpf/portctl.bpf.o
if [ "$check" = 1 ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    out="$tmp/portctl.bpf.o"
fi
# -g: BTF and CO-RE relocations (.BTF, .BTF.ext) come with the debug info.
# The debug info names the source by the relative path given here and the
# compilation directory as ".", so the bytes do not depend on the checkout's
# location.
"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Werror -fdebug-compilation-dir=. \
    -c bpf/portctl.bpf.c -o "$out"

if [ "$check" = 1 ]; then
    if ! cmp -s "$out" bpf/portctl.bpf.o; then
        echo "build-bpf.sh: bpf/portctl.bpf.o is not what bpf/portctl.bpf.c compiles to: run scripts/build-bpf.sh and commit the object" >&2
        exit 1
    fi
    echo "bpf/portctl.bpf.o matches bpf/portctl.bpf.c (clang $have)"
else
    echo "wrote $out ($(stat -c %s "$out") bytes, clang $have)"
fi
