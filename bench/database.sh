#!/usr/bin/env bash
# Replica lag and the failover window under the national scenario's write
# mix (issue 28), on a real HAPI FHIR 8.8 cluster (targets/hapi-fhir), at two
# arrival rates. The scenario is scenarios/hapi-fhir-national.toml as
# shipped — its personas, weights and requests: registry search 5, $validate
# 2, documents (Binary + DocumentReference) 2, registration (Patient,
# Encounter, Observation) 1 — without its Keycloak (the cluster has none),
# every create read back by its id, and every acknowledged create audited
# after the run.
#
#   lag:      one writer HAPI, an asynchronous standby replaying as fast as
#             it can (no delay), a reader HAPI on it that HAProxy sends every
#             read by id and search to. Each create is read back on the
#             writer and on the reader: what was stale on the reader, and
#             the time until visible everywhere, beside PostgreSQL's own
#             replay_lag (pg_stat_replication, sampled every 200 ms).
#   failover: the database a Patroni pair (asynchronous), its primary's node
#             killed at 20 s (`cluster.sh kill-primary`, no cut before): how
#             long writes failed, how many, and how many acknowledged writes
#             the promoted standby lacks.
#
#   bench/database.sh [path/to/surge]     (default: target/release/surge)
#   RATES="2 6" DURATION=60 bench/database.sh
#   PARTS=failover bench/database.sh      (only one part; default "lag failover")
#
# Prints Markdown rows for bench/RESULTS.md. Everything on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
surge=${1:-target/release/surge}
rates=${RATES:-2 6}
duration=${DURATION:-60}
[[ $duration =~ ^[0-9]+$ ]] && [ "$duration" -ge 30 ] && [ "$duration" -le 600 ] || { echo "DURATION must be 30..600 s" >&2; exit 2; }
work=$(mktemp -d)
chmod 755 "$work" # the database servers run as `postgres`, who must reach it
trap 'for c in "$work"/c-*; do targets/hapi-fhir/cluster.sh down "$c" >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
parts=${PARTS:-lag failover}

# The national scenario at `rate` arrivals/s for `duration` s, its creates
# read back (on `replicas` too), audited; `chaos` an exec command or "".
scenario() { # out rate replicas chaos
    python3 - scenarios/hapi-fhir-national.toml "$@" "$duration" <<'PY'
import re, sys
src, out, rate, replicas, chaos, duration = sys.argv[1:]
text = open(src).read()
# Written elsewhere: its fixtures are the repository's.
import os
text = text.replace('fixtures = "../fixtures"', f'fixtures = "{os.path.abspath("fixtures")}"', 1)
assert os.path.abspath("fixtures") in text
# No Keycloak on this cluster: the [auth] table goes.
text = re.sub(r"\n\[auth\]\n(?:(?!\n\[).)*", "\n", text, flags=re.S)
text = re.sub(r"\n\[load\]\n(?:(?!\n\[\[?[a-z]).)*(?:\n\[\[load\.stages\]\](?:(?!\n\[).)*)+",
              f'\n[load]\nmodel = "open"\nmax_users = 200\n[[load.stages]]\nrate = {rate}\nhold = "{duration}s"\n',
              text, count=1, flags=re.S)
# Every create read back by its id (a search, the way a clinician's next
# screen finds it), not only the Binary.
for name, kind in [("create_patient", "Patient"), ("create_encounter", "Encounter"),
                   ("create_observation", "Observation"), ("create_document_reference", "DocumentReference")]:
    head = f"[requests.{name}]\n"
    assert head in text, name
    text = text.replace(head, head + f'consistency = {{ id = "id", read = "/fhir/{kind}?_id=${{id}}", compare = "search" }}\n', 1)
text = text[: text.index("\n[verify]")]
listed = ", ".join(f'"{u}"' for u in replicas.split()) if replicas else ""
text += f"""
[verify]
visible_within = "15s"
poll = "50ms"
audit = true
budget = 10
{"replicas = [" + listed + "]" if listed else ""}
"""
if chaos:
    text += f"""
[chaos]
recover_within = "60s"
[[chaos.actions]]
action = "exec"
command = "{chaos}"
at = "20s"
"""
text += '\n[thresholds]\n"writes.lost" = "< 1"\n"attachments.missing" = "< 1"\n'
open(out, "w").write(text)
PY
}

summary() { # bundle-dir
    find "$1" -name summary.json | head -1
}

if [[ " $parts " == *" lag "* ]]; then
echo "### Replica lag: an asynchronous standby, no replay delay"
echo
echo "| arrivals/s | creates read back | stale on the reader | visible everywhere p50 / p95 / max ms | PostgreSQL replay_lag p50 / max ms (samples) | requests (failed) |"
echo "|---|---|---|---|---|---|"
for rate in $rates; do
    c="$work/c-lag-$rate"
    targets/hapi-fhir/cluster.sh up "$c" --replicas 1 --standby async --port 18680 >&2
    . "$c/cluster.env"
    scenario "$work/lag-$rate.toml" "$rate" "http://127.0.0.1:${REPLICA_PORTS%% *} http://127.0.0.1:$READER_PORT" ""
    ( while :; do
        psql -h 127.0.0.1 -p "$PG_PORT" -U hapi -d hapi -At -c \
            "SELECT COALESCE(EXTRACT(epoch FROM replay_lag) * 1000, 0) FROM pg_stat_replication WHERE application_name = 'standby'" 2>/dev/null
        sleep 0.2
      done >"$work/lag-$rate.samples" ) &
    sampler=$!
    "$surge" run "$work/lag-$rate.toml" --target "http://127.0.0.1:$HAPROXY_PORT" --out "$work/out-lag-$rate" >"$work/lag-$rate.log" 2>&1 || true
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    python3 - "$rate" "$(summary "$work/out-lag-$rate")" "$work/lag-$rate.samples" <<'PY'
import json, sys
rate, path, samples = sys.argv[1:]
r = json.load(open(path))
c = r["consistency"]
reader = next((x for x in c["replicas"] if x["replica"] == "reader"), {"verdicts": {}})
lags = sorted(float(l) for l in open(samples) if l.strip())
p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
v = c["visible"]
o = r["overall"]
print(f"| {rate} | {c['uploads']} | {reader['verdicts'].get('stale', 0)} | {v['p50']:.0f} / {v['p95']:.0f} / {v['max']:.0f} | {p(lags, .5):.1f} / {max(lags) if lags else float('nan'):.1f} ({len(lags)}) | {o['count']} ({o['failed']}) |")
PY
    targets/hapi-fhir/cluster.sh down "$c" >&2
done
echo
fi
[[ " $parts " == *" failover "* ]] || exit 0
echo "### The failover window: a Patroni pair, asynchronous, the primary's node killed at 20 s"
echo
echo "| arrivals/s | kill | Patroni promoted after s | writes sent | failed (longest outage s) | slowest write s (request) | write p99 ms | acknowledged | lost | audit complete |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for rate in $rates; do
    c="$work/c-fo-$rate"
    targets/hapi-fhir/cluster.sh up "$c" --replicas 1 --patroni async --port 18680 >&2
    . "$c/cluster.env"
    scenario "$work/fo-$rate.toml" "$rate" "" "$PWD/targets/hapi-fhir/cluster.sh kill-primary $c"
    "$surge" run "$work/fo-$rate.toml" --target "http://127.0.0.1:$HAPROXY_PORT" --out "$work/out-fo-$rate" >"$work/fo-$rate.log" 2>&1 || true
    python3 - "$rate" "$(summary "$work/out-fo-$rate")" "$c" <<'PY'
import datetime, json, os, re, sys
rate, path, cluster = sys.argv[1:]
r = json.load(open(path))
w = r["consistency"]["writes"]
a = w.get("audit") or {}
o = w.get("outage")
failed = f"{w['failed']} ({o['to_s'] - o['from_s']:.1f})" if o else f"{w['failed']} (none)"
complete = a and a.get("unanswered", 0) == 0 and a.get("not_audited", 0) == 0
events = (r.get("chaos") or {}).get("events") or []
kill = f"at {events[0]['at_s']:.1f} s" if events else "not run"
# Patroni's own word: when the survivor took the leader key, from the kill.
promoted = "–"
killed = os.path.join(cluster, "killed-primary")
if os.path.exists(killed):
    node, at_ms = open(killed).read().split()
    other = "pg1" if node == "pg0" else "pg0"
    for line in open(os.path.join(cluster, "log", f"patroni-{other}.log")):
        if "promoted self to leader" in line:
            t = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=datetime.timezone.utc)
            promoted = f"{t.timestamp() - int(at_ms) / 1000:.1f}"
            break
creates = {q["name"]: q for q in r["requests"] if q["name"].startswith(("create_", "upload_"))}
slowest = max(creates.items(), key=lambda kv: kv[1]["latency"]["max"])
p99 = max(q["latency"]["p99"] for q in creates.values())
print(f"| {rate} | {kill} | {promoted} | {w['sent']} | {failed} | {slowest[1]['latency']['max'] / 1000:.1f} ({slowest[0]}) | {p99:.0f} | {a.get('acknowledged', '–')} | {a.get('lost', '–')} | {'yes' if complete else 'no'} |")
PY
    targets/hapi-fhir/cluster.sh down "$c" >&2
done
