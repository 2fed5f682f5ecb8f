#!/usr/bin/env bash
# Throughput of a real HAPI FHIR 8.8 JPA server per replica on this machine at
# p99 ≤ 500 ms: Patient search and Patient create, with 1 and with 3 replicas
# (targets/hapi-fhir/cluster.sh: PostgreSQL ← pgBouncer 20 ← replicas with
# HikariCP 5 ← HAProxy, all on loopback). Each figure is a `surge calibrate`
# staircase (20 s warm-up, then up to 12 steps of 10 s from 20/s by 20/s,
# Poisson arrivals) with the
# HikariCP series scraped from every replica.
#
#   bench/hapi.sh [path/to/surge]     (default: target/release/surge)
#   REPLICAS="3" bench/hapi.sh        (only some replica counts; default "1 3")
#   WARMUP=60s bench/hapi.sh          (a longer warm-up; default 20s)
#   KINDS=search bench/hapi.sh        (only some requests; default "search create")
#
# Prints one Markdown row per staircase for bench/RESULTS.md: the highest
# step that met p99 ≤ 500 ms and kept up, calibration's capacity (which also
# stops at the knee: p99 above three times the first step's), the knee, the
# pool series' hold time and checkouts per request, and the pool recommended.
set -euo pipefail
cd "$(dirname "$0")/.."
surge=${1:-target/release/surge}
work=$(mktemp -d)
chmod 755 "$work" # PostgreSQL runs as `postgres`, who must reach the cluster's folder
trap 'for c in "$work"/cluster-*; do targets/hapi-fhir/cluster.sh down "$c" >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT

echo "| replicas | request | best step meeting p99 ≤ 500 ms: req/s per replica (p99) | calibrated capacity per replica | knee step (offered/s) | hold ms | checkouts per request | pool recommended |"
echo "|---|---|---|---|---|---|---|---|"
for replicas in ${REPLICAS:-1 3}; do
    cluster="$work/cluster-$replicas"
    targets/hapi-fhir/cluster.sh up "$cluster" --replicas "$replicas" --port 18480 >&2
    metrics=()
    for p in $(. "$cluster/cluster.env"; echo $REPLICA_PORTS); do
        metrics+=(--metrics-url "http://127.0.0.1:$p/actuator/prometheus")
    done
    for kind in ${KINDS:-search create}; do
        out="$work/cal-$replicas-$kind"
        start=20
        "$surge" calibrate "scenarios/capacity-fhir-$kind.toml" --target http://127.0.0.1:18480 \
            --replicas "$replicas" --slo-p99 500ms --warm-up "${WARMUP:-20s}" --start-rate "$start" \
            --step-rate 20 --step-duration 10s --max-steps 12 "${metrics[@]}" \
            --out "$out" >"$out.log" 2>&1 || true
        python3 - "$replicas" "$kind" "$out" <<'PY'
import json, re, sys, glob
replicas, kind, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = json.load(open(glob.glob(out + "/*-calibrate/calibration.json")[0]))
def keeps_up(s):
    offered = (s.get("arrivals_per_s") or s["rate"]) * (s.get("work_per_arrival") or 1.0)
    return s["dropped"] == 0 and s["achieved"] >= 0.95 * offered and s["error_rate"] <= 0.01
good = [s for s in c["steps"] if s["p99_ms"] <= 500 and keeps_up(s)]
best = max(good, key=lambda s: s["achieved"]) if good else None
text = " ".join(c["reasons"])
hold = re.search(r"measured from hikaricp_connections_usage_seconds: ([0-9.]+) ms", text)
k = re.search(r"([0-9.]+) connection checkouts per work request", text)
knee = c.get("knee_step")
print("| {} | Patient {} | {} | {} | {} | {} | {} | {} |".format(
    replicas, kind,
    f"{best['achieved'] / replicas:.1f} ({best['p99_ms']:.0f} ms)" if best else "none",
    f"{c['capacity_per_pod']:.1f}" if c.get("capacity_per_pod") else "none",
    f"{knee + 1} ({c['steps'][knee]['rate']:.0f})" if knee is not None else "not reached",
    hold.group(1) if hold else "–", k.group(1) if k else "–",
    (c.get("pool") or {}).get("size", "–")))
PY
    done
    targets/hapi-fhir/cluster.sh down "$cluster" >&2
done
