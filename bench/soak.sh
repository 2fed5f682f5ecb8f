#!/usr/bin/env bash
# The soak of the "nothing measured is lost" issue: `surge run` of the demo
# scenario against the reference cluster (`surge sim up`, its own process),
# with one replica killed (kill -9) every 60 s for DURATION (default 30m),
# sampling the run's resident memory and open file descriptors every 10 s.
# The cluster runs apart so the figures are surge's own, not the test
# double's. Loopback only. Not a test: its figures go into bench/RESULTS.md.
#
#   bench/soak.sh [SURGE_BINARY]     (default target/release/surge)
set -euo pipefail
cd "$(dirname "$0")/.."
surge=$(realpath "${1:-target/release/surge}")
duration=${DURATION:-30m}
port=${PORT:-18090}
out=$(mktemp -d)
samples=$out/samples.csv
"$surge" sim up --port "$port" > "$out/sim.txt" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
echo "elapsed_s,rss_kib,fds" > "$samples"
"$surge" run scenarios/demo.toml --target "http://127.0.0.1:$port" --duration "$duration" \
    --no-progress --out "$out/reports" > "$out/stdout.txt" 2> "$out/stderr.txt" &
pid=$!
start=$(date +%s)
next_kill=60
while kill -0 "$pid" 2>/dev/null; do
    now=$(( $(date +%s) - start ))
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l || true)
    [ -n "$rss" ] && echo "$now,$rss,$fds" >> "$samples"
    if [ "$now" -ge "$next_kill" ]; then
        victim=$(pgrep -f "sim replica --name=r$(( (now / 60) % 3 + 1 ))" | head -1 || true)
        [ -n "$victim" ] && kill -9 "$victim" && echo "$now killed r$(( (now / 60) % 3 + 1 ))" >> "$out/kills.txt"
        next_kill=$(( next_kill + 60 ))
    fi
    sleep 10
done
set +e
wait "$pid"
code=$?
set -e
echo "exit code $code; output in $out; $(wc -l < "$out/kills.txt" 2>/dev/null || echo 0) replicas killed"
python3 - "$samples" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
warm = [r for r in rows if int(r["elapsed_s"]) >= 120] or rows
for key in ("rss_kib", "fds"):
    v = [int(r[key]) for r in warm]
    first, last = v[:6], v[-6:]
    print(f"{key}: after 2 min min {min(v)}, max {max(v)}; first minute mean {sum(first)/len(first):.0f}, last minute mean {sum(last)/len(last):.0f}; {len(rows)} samples")
PY
grep -E "^requests:|^arrivals:|^sessions:|^attachments:|^INTERRUPTED" "$out/stdout.txt" || true
