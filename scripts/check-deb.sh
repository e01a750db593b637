#!/usr/bin/env bash
# Checks a .deb built by scripts/package.sh: `dpkg-deb -c` lists the binary,
# the man pages (gzipped) and the bash, zsh and fish completions; then, from
# the package's own files, the binary runs, the man page renders and the bash
# completion loads. Usage: scripts/check-deb.sh target/debian/portctl_*.deb
set -euo pipefail
deb=${1:?usage: scripts/check-deb.sh PACKAGE.deb}
fail() { echo "scripts/check-deb.sh: $*" >&2; exit 1; }

listing=$(dpkg-deb -c "$deb")
for f in \
    ./usr/bin/portctl \
    ./usr/share/man/man1/portctl.1.gz \
    ./usr/share/man/man1/portctl-listen.1.gz \
    ./usr/share/man/man1/portctl-who.1.gz \
    ./usr/share/man/man1/portctl-stats.1.gz \
    ./usr/share/bash-completion/completions/portctl \
    ./usr/share/zsh/vendor-completions/_portctl \
    ./usr/share/fish/vendor_completions.d/portctl.fish \
    ./usr/share/doc/portctl/copyright; do
    grep -qE " $f\$" <<<"$listing" || fail "$deb does not contain $f"$'\n'"$listing"
done
grep -qE '^-rwxr-xr-x .* \./usr/bin/portctl$' <<<"$listing" || fail "usr/bin/portctl is not mode 755"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
version=$("$root/usr/bin/portctl" --version)
[[ $version == "portctl "* ]] || fail "unexpected --version output: $version"
dpkg-deb -f "$deb" Package Version Architecture Depends | sed 's/^/  /'
zcat "$root/usr/share/man/man1/portctl.1.gz" | grep -q '^\.TH portctl 1' || fail "portctl.1.gz is not a man page"
if command -v man >/dev/null 2>&1; then
    text=$(MANWIDTH=80 man -l "$root/usr/share/man/man1/portctl-listen.1.gz" 2>&1)
    grep -q -- '--format' <<<"$text" || fail "man -l portctl-listen.1.gz does not render the options:"$'\n'"$text"
fi
bash -c "source '$root/usr/share/bash-completion/completions/portctl' && complete -p portctl" >/dev/null ||
    fail "the bash completion does not register for portctl"
head -1 "$root/usr/share/zsh/vendor-completions/_portctl" | grep -q '^#compdef portctl' || fail "_portctl is not a zsh completion"
grep -q '^complete -c portctl' "$root/usr/share/fish/vendor_completions.d/portctl.fish" || fail "portctl.fish is not a fish completion"
echo "ok: $deb ($version): $(grep -c . <<<"$listing") entries"
