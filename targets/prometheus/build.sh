#!/usr/bin/env bash
# build.sh — Prometheus 3.16 with its OTLP receiver, for surge's
# `--metrics-out otlp=URL` test (Debian's Prometheus 2.42 has none): built
# from its Go module (go.mod here) once, without service discovery
# (`-tags remove_all_sd`), and cached. Prints the binary's path.
#
# The binary goes to $SURGE_PROMETHEUS_CACHE (default
# ~/.cache/surge/prometheus), in a folder named by the release, and is
# reused while it is there. The first build takes minutes (see the README).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
release="v3.16.0"
cache="${SURGE_PROMETHEUS_CACHE:-$HOME/.cache/surge/prometheus}/$release"
binary="$cache/prometheus"

die() {
    echo "build.sh: $*" >&2
    exit 2
}

if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi
if command -v go >/dev/null 2>&1; then
    go=$(command -v go)
elif [ -x /usr/local/go/bin/go ]; then
    go=/usr/local/go/bin/go
else
    die "Go is not installed: Prometheus $release builds from its Go module (Go 1.26 or newer)"
fi
mkdir -p "$cache"
log="$cache/build.log"
started=$(date +%s)
echo "build.sh: building Prometheus $release into $cache; the first build takes minutes" >&2
(
    cd "$here"
    # -mod=readonly: go.mod and go.sum here pin every module the build needs.
    GOFLAGS=-mod=readonly "$go" build -trimpath -buildvcs=false -tags remove_all_sd \
        -o "$binary.new" github.com/prometheus/prometheus/cmd/prometheus
) >"$log" 2>&1 || die "the build failed; its output is in $log"
mv "$binary.new" "$binary"
echo "built in $(($(date +%s) - started)) s" >>"$log"
echo "build.sh: built in $(($(date +%s) - started)) s" >&2
echo "$binary"
