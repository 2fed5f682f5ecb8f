#!/usr/bin/env bash
# surge merge of SHARDS synthetic shard bundles (examples/shard_bundles.rs:
# each shard's requests through surge's own recorder, 3 requests × 3
# replicas, 60 s of timeline) at several request counts per shard: wall time
# and peak memory of the merge, which must not grow with the request count
# (histograms and per-second rows do not).
#
# Usage: bench/merge.sh [SHARDS=8] [COUNTS="10000 1000000"]
# Needs: GNU time. Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${1:-8}
COUNTS=${2:-"10000 1000000"}
cargo build --release --quiet --bin surge --example shard_bundles
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| requests per shard | requests merged | bundle size per shard | merge wall time | merge peak RSS |"
echo "|---|---|---|---|---|"
for n in $COUNTS; do
    rm -rf "$work/shards" "$work/merged"
    ./target/release/examples/shard_bundles "$work/shards" "$SHARDS" "$n"
    size=$(du -sk "$work/shards/shard0" | cut -f1)
    /usr/bin/time -v -o "$work/time" ./target/release/surge merge "$work"/shards/* --out "$work/merged" >"$work/out" 2>&1 || {
        code=$?; [ "$code" -le 1 ] || { cat "$work/out" >&2; exit "$code"; }
    }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    merged=$(python3 -c 'import json,glob,sys; s=json.load(open(glob.glob(sys.argv[1]+"/*/summary.json")[0])); print(s["overall"]["count"])' "$work/merged")
    echo "| $n | $merged | ${size} KB | $wall | $((rss / 1024)) MB |"
done
