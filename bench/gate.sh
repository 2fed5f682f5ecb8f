#!/usr/bin/env bash
# Does the CI gate cry wolf? PAIRS A/A pairs (the same build, run after run)
# and PAIRS A/B pairs (one endpoint, /fhir/Patient, slowed by its sim's
# --slow), judged side by side by the gate as it was (BEFORE: a surge binary
# from before issue 17, one baseline, no environment) and by this build with
# one baseline and with the three runs before as its history. Counts the
# REGRESSION verdicts (exit 1; for A/A pairs they are false alarms) and the
# inconclusive ones (exit 4).
#
# A third set: A/A pairs whose current run had two spinning processes
# beside it (a compile on the CI machine) — the false alarms the issue saw.
#
# Usage: bench/gate.sh BEFORE_BINARY [PAIRS=10] [SLOW=1.5]
# Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: bench/gate.sh BEFORE_BINARY [PAIRS] [SLOW]}
PAIRS=${2:-10}
SLOW=${3:-1.5}
cargo build --release --quiet --bin surge
AFTER=./target/release/surge
work=$(mktemp -d)
$AFTER sim up --replicas 3 --port 18180 >/dev/null 2>&1 &
a=$!
$AFTER sim up --replicas 3 --port 18280 --slow "/fhir/Patient=$SLOW" >/dev/null 2>&1 &
b=$!
trap 'kill $a $b 2>/dev/null; rm -rf "$work"' EXIT
for port in 18180 18280; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done
run() { # TARGET_PORT NAME
    $AFTER run bench/gate.toml --target "http://127.0.0.1:$1" --no-progress --out "$work/$2" >/dev/null 2>&1 || true
    ls -d "$work/$2"/*/
}
# The same run with two processes spinning beside it (a compile on the CI
# machine); `timeout` ends them.
busy_run() {
    timeout 8 sh -c 'while :; do :; done' &
    local s1=$!
    timeout 8 sh -c 'while :; do :; done' &
    local s2=$!
    run "$@"
    wait $s1 $s2 2>/dev/null || true
}
p50() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1]+"/summary.json")); print([r["latency"]["p50"] for r in s["requests"] if r["name"]=="fhir_search"][0])' "$1"; }
code() { set +e; "$@" >/dev/null 2>&1; echo $?; set -e; }

A=()
for i in 1 2 3; do A+=("$(run 18180 a$i)"); done
declare -A n
for k in aa_before aa_one aa_three ab_before ab_one ab_three aa_one_4 aa_three_4 ab_one_4 ab_three_4 busy_before busy_one busy_three busy_one_4 busy_three_4; do n[$k]=0; done
slowdown=()
for i in $(seq "$PAIRS"); do
    cur=$(run 18180 "a$((i + 3))")
    slowed=$(run 18280 "b$i")
    prev=${A[-1]}
    h3=("${A[-3]}" "${A[-2]}" "${A[-1]}")
    c=$(code "$BEFORE" compare "$prev" "$cur"); [ "$c" = 1 ] && n[aa_before]=$((n[aa_before] + 1))
    c=$(code $AFTER compare "$prev" "$cur"); [ "$c" = 1 ] && n[aa_one]=$((n[aa_one] + 1)); [ "$c" = 4 ] && n[aa_one_4]=$((n[aa_one_4] + 1))
    c=$(code $AFTER compare "${h3[@]}" "$cur"); [ "$c" = 1 ] && n[aa_three]=$((n[aa_three] + 1)); [ "$c" = 4 ] && n[aa_three_4]=$((n[aa_three_4] + 1))
    A+=("$cur")
    h3=("${A[-3]}" "${A[-2]}" "${A[-1]}")
    c=$(code "$BEFORE" compare "$cur" "$slowed"); [ "$c" = 1 ] && n[ab_before]=$((n[ab_before] + 1))
    c=$(code $AFTER compare "$cur" "$slowed"); [ "$c" = 1 ] && n[ab_one]=$((n[ab_one] + 1)); [ "$c" = 4 ] && n[ab_one_4]=$((n[ab_one_4] + 1))
    c=$(code $AFTER compare "${h3[@]}" "$slowed"); [ "$c" = 1 ] && n[ab_three]=$((n[ab_three] + 1)); [ "$c" = 4 ] && n[ab_three_4]=$((n[ab_three_4] + 1))
    slowdown+=("$(python3 -c "print($(p50 "$slowed") / $(p50 "$cur") - 1)")")
    busy=$(busy_run 18180 "busy$i")
    c=$(code "$BEFORE" compare "$cur" "$busy"); [ "$c" = 1 ] && n[busy_before]=$((n[busy_before] + 1))
    c=$(code $AFTER compare "$cur" "$busy"); [ "$c" = 1 ] && n[busy_one]=$((n[busy_one] + 1)); [ "$c" = 4 ] && n[busy_one_4]=$((n[busy_one_4] + 1))
    c=$(code $AFTER compare "${h3[@]}" "$busy"); [ "$c" = 1 ] && n[busy_three]=$((n[busy_three] + 1)); [ "$c" = 4 ] && n[busy_three_4]=$((n[busy_three_4] + 1))
done
median=$(printf '%s\n' "${slowdown[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "fhir_search p50 slowed by a median of $(python3 -c "print(round($median * 100))")% in the A/B pairs (--slow /fhir/Patient=$SLOW)."
echo
echo "| gate | A/A: REGRESSION (false alarms) | A/A: inconclusive | A/A, current beside 2 spinning processes: REGRESSION (false alarms) | same: inconclusive | A/B: REGRESSION (detected) | A/B: inconclusive |"
echo "|---|---|---|---|---|---|---|"
echo "| before (one baseline, no environment) | ${n[aa_before]} of $PAIRS | — | ${n[busy_before]} of $PAIRS | — | ${n[ab_before]} of $PAIRS | — |"
echo "| this build, one baseline | ${n[aa_one]} of $PAIRS | ${n[aa_one_4]} | ${n[busy_one]} of $PAIRS | ${n[busy_one_4]} | ${n[ab_one]} of $PAIRS | ${n[ab_one_4]} |"
echo "| this build, three baselines | ${n[aa_three]} of $PAIRS | ${n[aa_three_4]} | ${n[busy_three]} of $PAIRS | ${n[busy_three_4]} | ${n[ab_three]} of $PAIRS | ${n[ab_three_4]} |"
