#!/usr/bin/env bash
# Capacity error of `surge calibrate` on the reference cluster, whose true
# capacity is known: pool ÷ hold per replica, with the hold time measured
# from the pool's own metrics (a sleep holds a little longer than asked).
# Three pool/hold settings, each calibrated with a FHIR search (no login) and
# with an OpenMRS login-then-search persona (sessions shared between the
# replicas, so round-robin does not log users out). Loopback only; every staircase
# is bounded (8 steps of 8 s at most).
#
#   bench/calibration.sh [path/to/surge]     (default: target/release/surge)
#
# The staircase starts at START (default 0.5) of the true capacity and climbs
# by STEP (default 0.1) of it: STEP=0.05 START=0.7 halves the step.
#
# Prints one Markdown row per calibration for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
surge=${1:-target/release/surge}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "| replicas × pool × hold | scenario | truth req/s per pod (pool ÷ measured hold) | calibrated | error | logins/s left out at the capacity step | knee step | capacity step |"
echo "|---|---|---|---|---|---|---|---|"
for setting in "3 4 20ms" "2 6 15ms" "3 10 100ms"; do
    read -r replicas pool hold <<<"$setting"
    port=$(free_port)
    base=$((10000 + RANDOM % 20000))
    "$surge" sim up --replicas "$replicas" --pool "$pool" --hold "$hold" \
        --balancing round-robin --sessions shared --port "$port" --replica-port-base "$base" \
        >"$work/sim.log" 2>&1 &
    sim=$!
    for _ in $(seq 100); do
        grep -q "Ctrl-C to stop" "$work/sim.log" && break
        sleep 0.1
    done
    hold_ms=${hold%ms}
    truth=$(python3 -c "print($replicas * $pool / ($hold_ms / 1000))")
    start=$(python3 -c "print(round($truth * ${START:-0.5}))")
    step=$(python3 -c "print(round($truth * ${STEP:-0.1}))")
    metrics=()
    for i in $(seq 0 $((replicas - 1))); do
        metrics+=(--metrics-url "http://127.0.0.1:$((base + i))/actuator/prometheus")
    done
    for scenario in capacity-fhir-search capacity-openmrs-search; do
        out="$work/$scenario-$replicas-$pool-$hold"
        "$surge" calibrate "scenarios/$scenario.toml" --target "http://127.0.0.1:$port" \
            --replicas "$replicas" --slo-p99 500ms --start-rate "$start" --step-rate "$step" \
            --step-duration 8s --max-steps 8 "${metrics[@]}" --out "$out" >"$out.log" 2>&1 || true
        python3 - "$out" "$replicas" "$pool" "$hold" "$scenario" <<'PY'
import json, glob, sys
out, replicas, pool, hold, scenario = sys.argv[1:]
files = glob.glob(f"{out}/*/calibration.json")
if not files:
    print(f"| {replicas} × {pool} × {hold} | {scenario} | – | no calibration written (see its log) | | | | |")
    sys.exit()
c = json.load(open(files[0]))
# Hold time per checkout from the scraped HikariCP-style counters (Δsum ÷ Δcount per endpoint).
by_url = {}
for s in c.get("pool_metrics", []):
    by_url.setdefault(s["url"], []).append(s)
total_sum = total_count = 0.0
for rows in by_url.values():
    if rows[-1]["usage_count"] > rows[0]["usage_count"]:
        total_sum += rows[-1]["usage_sum"] - rows[0]["usage_sum"]
        total_count += rows[-1]["usage_count"] - rows[0]["usage_count"]
hold_s = total_sum / total_count if total_count else None
truth = int(pool) / hold_s if hold_s else None
cap = c.get("capacity_per_pod")
i = c.get("capacity_step")
setup = c["steps"][i]["setup_per_s"] if i is not None else None
err = f"{(cap / truth - 1) * 100:+.1f}%" if cap and truth else "–"
knee = c.get("knee_step")
truth_text = f"{truth:.1f} (hold {hold_s * 1000:.2f} ms)" if truth else "no checkouts scraped"
if cap is None:
    last = c["reasons"][-1] if c["reasons"] else ""
    print(f"| {replicas} × {pool} × {hold} | {scenario} | {truth_text} | none: {last} | – | – | – | – |")
else:
    print(f"| {replicas} × {pool} × {hold} | {scenario} | {truth_text} | {cap:.1f} | {err} | {setup:.1f} | {knee + 1 if knee is not None else '–'} | {i + 1} |")
PY
    done
    kill "$sim"
    wait "$sim" 2>/dev/null || true
done
