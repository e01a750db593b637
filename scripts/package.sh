#!/usr/bin/env bash
# Builds the Debian package, target/debian/portctl_<version>-1_<arch>.deb
# (the path is printed on the last line of stdout).
#
# 1. cargo build --release. build.rs generates the man pages and the shell
#    completions from the clap definitions; the binary embeds them.
# 2. Writes them into target/assets/ with `portctl man --out-dir` and
#    `portctl completions SHELL`; man pages gzipped (-n: no timestamp).
# 3. cargo deb --no-build --strip, with the assets listed in Cargo.toml's
#    [package.metadata.deb]. cargo-deb is installed from crates.io when
#    missing (cargo install --locked cargo-deb, about a minute on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "scripts/package.sh: installing cargo-deb from crates.io" >&2
    cargo install --locked --quiet cargo-deb
fi

cargo build --locked --release --bin portctl
bin="${CARGO_TARGET_DIR:-target}/release/portctl"

# Cargo.toml's assets name these paths relative to the repository, wherever
# CARGO_TARGET_DIR points.
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --out-dir "$assets/man"
gzip -9n "$assets"/man/*.1
"$bin" completions bash >"$assets/completions/portctl.bash"
"$bin" completions zsh >"$assets/completions/_portctl"
"$bin" completions fish >"$assets/completions/portctl.fish"

# --strip: the release profile keeps line tables for backtraces; the package
# ships the stripped binary (about 3 MB instead of 20).
cargo deb --no-build --strip
