#!/usr/bin/env bash
# The forecast of `surge calibrate --ramp` against the real HPA controller,
# for three ramps (steep, step, gentle) on the real control plane
# (targets/kubernetes/cluster.sh) with the reference clinic as pods run by
# the node double: pods of a pool of 2 held 100 ms (20 req/s at most each)
# that take 20 s to start. For each ramp: calibrate (staircase, bisection to
# 2%, the forecast), apply the recommended HPA as written, run the ramp
# through it (Prometheus + the custom metrics adapter feed the HPA), and
# compare seconds over the SLO and peak pods Ready with the forecast.
#
#   sudo bench/autoscale.sh          (root: each test makes its own network namespace)
#
# Loopback and the test's own network namespace only; every run is bounded.
# Prints one Markdown row per ramp for bench/RESULTS.md. About 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --test kubernetes three_ramps_against_their_forecasts -- --ignored --nocapture 2>&1 |
    tee /dev/stderr | grep '^|'
