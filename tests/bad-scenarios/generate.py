#!/usr/bin/env python3
"""Writes the bad-scenario corpus: one defect per file, each file opening with
`# expect line N: TEXT` (the line `surge check` must name and text its message
must hold). Run it after changing a case; tests/suite/corpus.rs checks them all."""
import os
BASE = '''[scenario]
name = "corpus"
fixtures = "../../fixtures"

[target]
base_url = "http://127.0.0.1:8080"
replica_header = "X-Served-By"
timeout = "10s"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "${env:HOME}"

[[feeders]]
name = "patient"
file = "patients.csv"

[load]
model = "open"
max_users = 20
[[load.stages]]
rate = 5
ramp = "1s"
hold = "5s"

[[personas]]
name = "clinician"
weight = 2
steps = [
  { request = "search", think = "1s..2s" },
  { request = "open" },
]

[requests.search]
path = "/openmrs/ws/rest/v1/patient?q=${patient.given}"
expect = { status = [200], json_present = ["results.0.uuid"] }
capture = { pid = "results.0.uuid" }

[requests.open]
path = "/openmrs/ws/rest/v1/patient/${pid}"
expect = { status = [200] }

[verify]
visible_within = "3s"

[session]
preset = "openmrs"

[thresholds]
"search.p95" = "< 800ms"
"errors.rate" = "< 1%"
'''
# (file, replace-from, replace-to, marker for the expected line (None: line 0/none), expected text)
cases = [
 ("toml-syntax", 'name = "corpus"', 'name = "corpus', 'name = "corpus', "string"),
 ("unknown-key-scenario", 'name = "corpus"\n', 'name = "corpus"\ncolour = "red"\n', "colour", "unknown field `colour`"),
 ("unknown-key-target", 'timeout = "10s"\n', 'timeout = "10s"\nretries = 3\n', "retries", "unknown field `retries`"),
 ("unknown-key-auth", 'username = "admin"\n', 'username = "admin"\nrealm = "x"\n', "realm", "unknown field `realm`"),
 ("unknown-key-load", 'max_users = 20\n', 'max_users = 20\nburst = 2\n', "burst", "unknown field `burst`"),
 ("unknown-key-stage", 'hold = "5s"\n', 'hold = "5s"\njitter = "1s"\n', "jitter", "unknown field `jitter`"),
 ("unknown-key-persona", 'weight = 2\n', 'weight = 2\nrole = "md"\n', "role", "unknown field `role`"),
 ("unknown-key-step", '{ request = "open" }', '{ request = "open", pause = "1s" }', "pause", "unknown field `pause`"),
 ("unknown-key-request", 'path = "/openmrs/ws/rest/v1/patient/${pid}"\n', 'path = "/openmrs/ws/rest/v1/patient/${pid}"\nretry = true\n', "retry", "unknown field `retry`"),
 ("unknown-key-expect", 'expect = { status = [200] }', 'expect = { status = [200], latency = "1s" }', "latency", "unknown field `latency`"),
 ("unknown-key-verify", 'visible_within = "3s"\n', 'visible_within = "3s"\nretries = 2\n', "retries = 2", "unknown field `retries`"),
 ("unknown-key-session", 'preset = "openmrs"\n', 'preset = "openmrs"\nttl = "30m"\n', "ttl", "unknown field `ttl`"),
 ("wrong-type-rate", 'rate = 5', 'rate = "five"', 'rate = "five"', "invalid type"),
 ("wrong-type-weight", 'weight = 2', 'weight = "heavy"', "heavy", "invalid type"),
 ("wrong-type-hold", 'hold = "5s"', 'hold = 5', "hold = 5", "invalid type"),
 ("rate-negative", 'rate = 5', 'rate = -1', "rate = -1", "expected 0 (a quiet spell) up to at most 50000"),
 ("rate-all-quiet", 'rate = 5', 'rate = 0', "rate = 0", "every load stage has rate 0: nothing would arrive"),
 ("rate-huge", 'rate = 5', 'rate = 1e12', "rate = 1e12", "at most 50000 arrivals per second"),
 ("max-users-zero", 'max_users = 20', 'max_users = 0', "max_users = 0", "expected 1 to 50000"),
 ("max-users-huge", 'max_users = 20', 'max_users = 100000000', "max_users = 100000000", "expected 1 to 50000"),
 ("closed-users-huge", 'model = "open"\nmax_users = 20\n[[load.stages]]\nrate = 5', 'model = "closed"\n[[load.stages]]\nusers = 9999999999', "users = 9999999999", "expected 1 to 50000"),
 ("hold-near-u64", 'hold = "5s"', 'hold = "18446744073709551615s"', "18446744073709551615s", "at most 30 days"),
 ("hold-too-long", 'hold = "5s"', 'hold = "1000days"', "1000days", "at most 30 days"),
 ("timeout-zero", 'timeout = "10s"', 'timeout = "0s"', 'timeout = "0s"', "expected 1ms to 1h"),
 ("timeout-too-long", 'timeout = "10s"', 'timeout = "2h"', 'timeout = "2h"', "expected 1ms to 1h"),
 ("poll-zero", 'visible_within = "3s"\n', 'visible_within = "3s"\npoll = "0ms"\n', 'poll = "0ms"', "expected 10ms to 1m"),
 ("visible-within-too-long", 'visible_within = "3s"', 'visible_within = "3h"', 'visible_within = "3h"', "expected 0s to 1h"),
 ("generated-size-huge", 'expect = { status = [200] }\n\n[verify]', 'method = "POST"\ngenerate = { kind = "pdf", size = "100000MiB" }\nexpect = { status = [200] }\n\n[verify]', "100000MiB", "too large: at most 256MiB"),
 ("generated-size-overflow", 'expect = { status = [200] }\n\n[verify]', 'method = "POST"\ngenerate = { kind = "pdf", size = "18446744073709551615MiB" }\nexpect = { status = [200] }\n\n[verify]', "18446744073709551615MiB", "too large"),
 ("think-backwards", 'think = "1s..2s"', 'think = "3s..1s"', "3s..1s", "think"),
 ("weight-zero", 'weight = 2', 'weight = 0', "[[personas]]", "expected a weight from 1 to"),
 ("weight-huge", 'weight = 2', 'weight = 4000000000', "[[personas]]", "expected a weight from 1 to"),
 ("repeat-max-huge", '{ request = "open" }', '{ request = "open", for_each = "pid", max = 99999999 }', 'for_each = "pid"', "expected 1 to 10000"),
 ("undefined-request", '{ request = "open" }', '{ request = "close" }', '"close"', "close"),
 ("var-nobody-captures", '${pid}', '${patient_id}', "[requests.open]", "no request captures `patient_id`"),
 ("feeder-missing-column", '${patient.given}', '${patient.nickname}', "[requests.search]", "nickname"),
 ("template-unclosed", "${patient.given}", "${patient.given", "q=${patient.given\"", "unclosed `${`"),
 ("env-unset", '${env:HOME}', '${env:SURGE_CORPUS_NEVER_SET}', "SURGE_CORPUS_NEVER_SET", "SURGE_CORPUS_NEVER_SET"),
 ("capture-path-brackets", 'capture = { pid = "results.0.uuid" }', 'capture = { pid = "results[0].uuid" }', "results[0].uuid", "for an array index write `results.0.uuid`"),
 ("capture-path-unclosed", 'capture = { pid = "results.0.uuid" }', 'capture = { pid = "link.[rel=next" }', "link.[rel=next", "`[` is never closed"),
 ("expect-path-empty-segment", 'json_present = ["results.0.uuid"]', 'json_present = ["results..uuid"]', "results..uuid", "empty segment"),
 ("threshold-wrong-unit", '"search.p95" = "< 800ms"', '"search.p95" = "< 5%"', "search.p95", "a time unit"),
 ("threshold-unknown-stat", '"search.p95" = "< 800ms"', '"search.p42" = "< 800ms"', "search.p42", "unknown statistic"),
 ("threshold-never-fails", '"errors.rate" = "< 1%"', '"errors.rate" = "< 150%"', "150%", "can never fail"),
 ("threshold-unknown-request", '"search.p95" = "< 800ms"', '"serch.p95" = "< 800ms"', "serch.p95", "serch"),
 ("feeder-missing-file", 'file = "patients.csv"', 'file = "nobody-here.csv"', "nobody-here.csv", "cannot read feeder file"),
 ("feeder-empty", 'file = "patients.csv"', 'file = "../tests/bad-scenarios/feeders/empty.csv"', "empty.csv", "is empty: expected a header row"),
 ("feeder-header-only", 'file = "patients.csv"', 'file = "../tests/bad-scenarios/feeders/header-only.csv"', "header-only.csv", "has a header but no rows"),
 ("feeder-binary", 'file = "patients.csv"', 'file = "../tests/bad-scenarios/feeders/binary.csv"', "binary.csv", "binary data"),
 ("duplicate-key", 'timeout = "10s"\n', 'timeout = "10s"\ntimeout = "5s"\n', 'timeout = "5s"', "duplicate key `timeout`"),
 ("base-url-not-url", 'base_url = "http://127.0.0.1:8080"', 'base_url = "not a url"', "not a url", "is not a URL"),
 ("name-too-long", 'name = "corpus"', 'name = "' + "x" * 150 + '"', 'name = "xxxxxxxx', "1 to 100 characters"),
 ("optional-not-bool", 'expect = { status = [200] }\n\n[verify]', 'optional = "yes"\nexpect = { status = [200] }\n\n[verify]', 'optional = "yes"', "invalid type: string \"yes\", expected a boolean"),
 ("two-bodies", 'expect = { status = [200] }\n\n[verify]', 'json = { a = 1 }\nform = { b = "2" }\nexpect = { status = [200] }\n\n[verify]', "[requests.open]", "more than one body"),
 ("chaos-without-selector", '[session]', '[kubernetes]\nnamespace = "clinic"\n\n[chaos]\n[[chaos.actions]]\naction = "kill-pod"\nat = "2s"\n\n[session]', "[kubernetes]", "selector"),
 ("chaos-kube-system", '[session]', '[kubernetes]\nnamespace = "kube-system"\nselector = "app=clinic"\n\n[chaos]\n[[chaos.actions]]\naction = "kill-pod"\nat = "2s"\n\n[session]', 'namespace = "kube-system"', "kube-system"),
 ("arrivals-unknown", 'max_users = 20\n', 'max_users = 20\narrivals = "bursty"\n', "arrivals", "expected `uniform` or `poisson`"),
 ("seed-without-poisson", 'max_users = 20\n', 'max_users = 20\nseed = 7\n', "seed", "add arrivals = \"poisson\""),
 ("arrivals-closed-model", 'model = "open"\nmax_users = 20\n[[load.stages]]\nrate = 5', 'model = "closed"\narrivals = "poisson"\n[[load.stages]]\nusers = 5', "arrivals", "load.arrivals is for the open model"),
 ("chaos-after-the-end", '[session]', '[kubernetes]\nnamespace = "clinic"\nselector = "app=clinic"\n\n[chaos]\n[[chaos.actions]]\naction = "kill-pod"\nat = "10m"\n\n[session]', 'at = "10m"', "after the load ends"),
 ("persona-twice", '[requests.search]', '[[personas]]\nname="clinician"\nsteps = [{ request = "search" }]\n\n[requests.search]', 'name="clinician"', "persona `clinician` is defined twice"),
 ("capture-by-a-later-step", '{ request = "search", think = "1s..2s" },\n  { request = "open" },', '{ request = "open" },\n  { request = "search", think = "1s..2s" },', '{ request = "open" }', "no earlier step of `clinician` captures `pid` (it is captured only at this step or later: step 2 (`search`))"),
 ("capture-in-another-persona", '[requests.search]', '[[personas]]\nname = "registrar"\nsteps = [{ request = "open", think = "1s" }]\n\n[requests.search]', 'request = "open", think', "only `search` captures it, which `registrar` never sends"),
 ("capture-circle", '${patient.given}"', '${patient.given}&t=${tok}"', 'patient/${pid}', "captures depend on each other in a circle: `open` uses `${pid}`, which only `search` captures; `search` uses `${tok}`, which only `open` captures",
  'expect = { status = [200] }\n\n[verify]', 'capture = { tok = "token" }\nexpect = { status = [200] }\n\n[verify]'),
 ("while-before-capture", '{ request = "search", think = "1s..2s" },\n  { request = "open" },', '{ request = "open", while = "pid" },\n  { request = "search", think = "1s..2s" },', 'while = "pid"', "while = \"pid\" needs `pid` captured by an earlier step of `clinician`"),
 ("path-without-slash", 'path = "/openmrs/ws/rest/v1/patient/${pid}"', 'path = "openmrs/ws/rest/v1/patient/${pid}"', 'path = "openmrs', "does not start with `/`"),
 ("content-type-on-multipart", 'expect = { status = [200] }\n\n[verify]', 'method = "POST"\nmultipart = [{ name = "patient", value = "${pid}" }]\ncontent_type = "application/pdf"\nexpect = { status = [200] }\n\n[verify]', 'content_type = "application/pdf"', "content_type does not apply to a multipart body"),
 ("content-type-without-body", 'expect = { status = [200] }\n\n[verify]', 'content_type = "application/json"\nexpect = { status = [200] }\n\n[verify]', 'content_type = "application/json"', "this request has no body"),
 ("content-type-header-twice", 'expect = { status = [200] }\n\n[verify]', 'method = "POST"\nheaders = { Content-Type = "application/pdf" }\ngenerate = { kind = "pdf" }\nexpect = { status = [200] }\n\n[verify]', 'headers = { Content-Type', "the `Content-Type` header would be sent twice"),
]
out = os.path.dirname(os.path.abspath(__file__))
os.makedirs(out + "/feeders", exist_ok=True)
open(out + "/feeders/empty.csv", "w").write("")
open(out + "/feeders/header-only.csv", "w").write("given,family\n")
open(out + "/feeders/binary.csv", "wb").write(b"given,family\n\x00\x01\x02\xff\xfe\n")
# A case may change two places: (from, to, from2, to2).
cases.append(("generated-memory", 'max_users = 20', 'max_users = 20000', "[load]",
              "could hold 19.5 GiB at once: at most 4 GiB",
              'expect = { status = [200] }\n\n[verify]',
              'method = "POST"\ngenerate = { kind = "pdf", size = "1MiB" }\nexpect = { status = [200] }\n\n[verify]'))
for name, frm, to, marker, expected, *more in cases:
    assert frm in BASE, name
    text = BASE.replace(frm, to, 1)
    if more:
        text = text.replace(more[0], more[1], 1)
    lines = text.split("\n")
    line = next(i for i, l in enumerate(lines) if marker in l) + 2  # +1 for 1-based, +1 for the header comment
    header = f"# expect line {line}: {expected}\n"
    open(f"{out}/{name}.toml", "w").write(header + text)
# files whose defect is in the bytes
text = BASE.replace('name = "corpus"', 'name = "corpus\x00"', 1)
line = next(i for i, l in enumerate(text.split("\n")) if "corpus" in l) + 2
open(f"{out}/nul-byte.toml", "w").write(f"# expect line {line}: a NUL byte\n" + text)
raw = ("# expect line 3: not UTF-8\n" + BASE).encode().replace(b'name = "corpus"', b'name = "corp\xff\xfeus"', 1)
open(f"{out}/not-utf8.toml", "wb").write(raw)
print(len(cases) + 2, "files")
