#!/usr/bin/env bash
# The soak of the "nothing measured is lost" issue: `surge demo` with one
# replica killed every 60 s (bench/soak.toml) for DURATION (default 30m),
# sampling the surge process's resident memory and open file descriptors
# every 10 s. Loopback only (the reference cluster). Not a test: its figures
# go into bench/RESULTS.md.
#
#   bench/soak.sh [SURGE_BINARY]     (default target/release/surge)
set -euo pipefail
cd "$(dirname "$0")/.."
surge=${1:-target/release/surge}
duration=${DURATION:-30m}
out=$(mktemp -d)
samples=$out/samples.csv
echo "elapsed_s,rss_kib,fds" > "$samples"
"$surge" demo --scenario bench/soak.toml --duration "$duration" --out "$out/reports" > "$out/stdout.txt" 2> "$out/stderr.txt" &
pid=$!
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l || true)
    [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$rss,$fds" >> "$samples"
    sleep 10
done
set +e
wait "$pid"
code=$?
set -e
echo "exit code $code; output in $out"
python3 - "$samples" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
warm = [r for r in rows if int(r["elapsed_s"]) >= 120] or rows
def span(key, rs):
    v = [int(r[key]) for r in rs]
    return min(v), max(v)
for key in ("rss_kib", "fds"):
    lo, hi = span(key, warm)
    first = [int(r[key]) for r in warm[:6]]
    last = [int(r[key]) for r in warm[-6:]]
    print(f"{key}: after 2 min warm-up min {lo}, max {hi}; first minute mean {sum(first)/len(first):.0f}, last minute mean {sum(last)/len(last):.0f}; {len(rows)} samples")
PY
tail -n 40 "$out/stdout.txt"
