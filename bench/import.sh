#!/usr/bin/env bash
# surge import log on nginx combined logs of growing size, generated here
# (a clinic's day: patient searches by name and birth date, reads by UUID
# and by id, an upload, health checks and static assets; one request every
# few milliseconds of log time, so a 2 GB log spans about a day): wall time,
# throughput and peak memory of the import, which must not grow with the
# log's lines (routes and per-bucket counts only are kept).
#
# Usage: bench/import.sh [SIZES_MB="20 200 2000"]
# Needs: GNU time, awk. Disk: about the largest size, in a temporary folder.
# Results go to stdout as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-"20 200 2000"}
cargo build --release --quiet --bin surge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# LINES lines of combined log, 3 ms of log time apart from 2026-12-01 00:00 UTC.
generate() {
    awk -v lines="$1" 'BEGIN {
        srand(7);
        split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", month, " ");
        for (i = 0; i < lines; i++) {
            t = int(i * 3 / 1000);
            h = int(t / 3600) % 24; m = int(t / 60) % 60; s = t % 60; d = 1 + int(t / 86400);
            r = rand();
            if (r < 0.35) {
                target = sprintf("/openmrs/ws/fhir2/R4/Patient?name=Name%06d&birthdate=19%02d-0%d-1%d&_count=10", int(rand() * 1e6), int(rand() * 99), 1 + int(rand() * 9), int(rand() * 9));
            } else if (r < 0.6) {
                target = sprintf("/fhir/Patient/%08x-%04x-4%03x-a%03x-%012x", int(rand() * 4e9), int(rand() * 65535), int(rand() * 4095), int(rand() * 4095), int(rand() * 2.8e14));
            } else if (r < 0.75) {
                target = sprintf("/openmrs/ws/rest/v1/patient?q=MRN-%06d&v=full", int(rand() * 1e6));
            } else if (r < 0.85) {
                target = sprintf("/fhir/Observation/%d", int(rand() * 1e7));
            } else if (r < 0.9) {
                target = "/healthz";
            } else {
                target = "/openmrs/spa/main.js";
            }
            printf "10.%d.%d.%d - - [%02d/Dec/2026:%02d:%02d:%02d +0000] \"GET %s HTTP/1.1\" 200 %d \"-\" \"Mozilla/5.0\"\n",
                int(rand() * 255), int(rand() * 255), int(rand() * 255), d, h, m, s, target, int(rand() * 5000);
        }
    }'
}

echo "| log size | lines | routes | import wall time | lines per second | peak RSS |"
echo "|---|---|---|---|---|---|"
for mb in $SIZES; do
    # About 140 bytes a line.
    lines=$((mb * 1024 * 1024 / 140))
    rm -rf "$work/out" "$work/access.log"
    generate "$lines" >"$work/access.log"
    size=$(du -m "$work/access.log" | cut -f1)
    /usr/bin/time -v -o "$work/time" ./target/release/surge import log "$work/access.log" \
        --format nginx --out "$work/out" --name bench >"$work/said" 2>&1 || { cat "$work/said" >&2; exit 1; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
    seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$work/time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    routes=$(sed -n 's/^scrubbed: [0-9]* requests on \([0-9]*\) routes.*/\1/p' "$work/said")
    rate=$(awk -v l="$lines" -v s="$seconds" 'BEGIN { printf "%.0f", l / s }')
    echo "| ${size} MB | $lines | $routes | $wall | $rate | $((rss / 1024)) MB |"
done
