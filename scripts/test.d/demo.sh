#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo, as a user runs it, in its short mode: asserts on its exit
# status, its terminal output and its files (summary.json, spans.jsonl):
# no call failed, the killed backend and only it was ejected, the intruder
# was denied every time, the spans are valid JSON lines that join client
# and backend spans into traces, the 90/10 split held, the run fit in 30 s
# and left no process behind.  meshctl check-config and resolve then run on
# the configs the demo wrote.  Prints "demo: N passed, M failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$top/build}
demo="$build/examples/demo/mesh_demo"
meshctl="$build/tools/meshctl"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-demo-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { passed=$((passed+1)); [ -n "${VERBOSE:-}" ] && echo "ok: $1"; return 0; }
ko() { failed=$((failed+1)); echo "FAIL: $1"; [ -n "${2:-}" ] && sed 's/^/    /' "$2" | tail -40; return 0; }
check() { # check NAME CMD...: one assertion
  local name=$1; shift
  if "$@" >"$tmp/check.out" 2>&1; then ok "$name"; else ko "$name" "$tmp/check.out"; fi
}

if [ ! -x "$demo" ] || [ ! -x "$meshctl" ]; then
  echo "demo.sh: build first (make -C $build)" >&2
  echo "demo: 0 passed, 1 failed"
  exit 1
fi

out="$tmp/out"
t0=$(date +%s.%N)
# LC_ALL=C: the plain ASCII form of the output, which the checks expect.
LC_ALL=C timeout -k 5 60 "$demo" --quick --no-color --out "$out" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
t1=$(date +%s.%N)
[ -n "${VERBOSE:-}" ] && cat "$tmp/stdout" "$tmp/stderr"
if [ $rc -eq 0 ]; then ok "demo exits 0"; else ko "demo exits 0 (got $rc)" "$tmp/stdout"; cat "$tmp/stderr"; fi
check "demo runs in under 30 s" python3 -c "import sys; d=$t1-$t0; print(d); sys.exit(d >= 30)"
check "nothing on stderr" test ! -s "$tmp/stderr"

# The terminal output.
grep_out() { grep -E -q "$1" "$tmp/stdout"; }
check "banner names the three instances" sh -c \
  "grep -Eq 'service work +v1-a +127\.0\.0\.1:[0-9]+ +pid [0-9]+' '$tmp/stdout' && grep -Eq '^ +v1-b +127' '$tmp/stdout' && grep -Eq '^ +v2 +127' '$tmp/stdout'"
check "a progress line per second" sh -c \
  "[ \$(grep -Ec '^ +[0-9]+s \| calls +[0-9]+ \(\+[0-9]+/s\) \| errors 0 \|' '$tmp/stdout') -ge 4 ]"
check "the kill and the ejection are shown as they happen" sh -c \
  "grep -Eq '> +[0-9.]+s +SIGKILL v1-b' '$tmp/stdout' && grep -Eq '> +[0-9.]+s +outlier detection ejected v1-b' '$tmp/stdout'"
check "the report has a row per endpoint" sh -c \
  "grep -Eq '^ +NAME +SUBSET +ENDPOINT +CALLS +FAILED +P50 +P99 +EJECTIONS +STATE' '$tmp/stdout' &&
   grep -Eq '^ +v1-a +v1 +127\.0\.0\.1:[0-9]+ +[1-9][0-9]* +0 +[0-9.]+ms +[0-9.]+ms +0 +up' '$tmp/stdout' &&
   grep -Eq '^ +v1-b +v1 +127\.0\.0\.1:[0-9]+ +[0-9]+ +[0-9]+ .* 1 +killed at [0-9.]+s, ejected at' '$tmp/stdout' &&
   grep -Eq '^ +v2 +v2 +127\.0\.0\.1:[0-9]+ +[1-9][0-9]* +0 +[0-9.]+ms +[0-9.]+ms +0 +up' '$tmp/stdout'"
# The policy is enforced at accept: the intruder's handshake is refused.
check "the report shows the denied calls" grep_out \
  '^ +denied +5 calls from spiffe://demo\.mesh/ns/demo/sa/reports: TLS alert bad_certificate in the handshake \(backends counted 5 denials\)'
check "every verdict holds" sh -c \
  "[ \$(grep -c '^  ok ' '$tmp/stdout') -eq 4 ] && ! grep -q '^  FAIL ' '$tmp/stdout'"

# The files.
cat >"$tmp/check.py" <<'PY'
import json, sys
out, what = sys.argv[1], sys.argv[2]
s = json.load(open(out + "/summary.json"))
eps = {e["name"]: e for e in s["endpoints"]}
def need(cond, msg):
    if not cond:
        print(msg); print(json.dumps(s, indent=1)); sys.exit(1)
if what == "calls":
    need(s["ok"] and s["calls"] > 100 and s["failed"] == 0, "calls failed")
    need(sum(e["calls"] for e in eps.values()) == s["calls"],
         "answered tries != calls")
elif what == "ejection":
    v = eps["v1-b"]
    need(v["killed"] and v["ejected"] and v["ejections"] == 1, "v1-b not ejected")
    need(v["failed_tries"] >= 1 and s["retries"] >= v["failed_tries"],
         "the failed tries on v1-b were not retried")
    for n in ("v1-a", "v2"):
        need(not eps[n]["killed"] and not eps[n]["ejected"] and
             eps[n]["failed_tries"] == 0, n + " affected")
elif what == "split":
    v1 = eps["v1-a"]["calls"] + eps["v1-b"]["calls"]
    share = eps["v2"]["calls"] / (v1 + eps["v2"]["calls"])
    need(0.04 < share < 0.2, "v2 share %.3f not near 10%%" % share)
    # least_request spreads v1 over both instances while both are up
    need(eps["v1-b"]["calls"] > 50, "v1-b got no share before the kill")
elif what == "denied":
    i = s["intruder"]
    need(i["attempts"] == 5 and i["denied"] == 5 and i["allowed"] == 0,
         "intruder not denied")
    need(i["backend_denials"] == 5, "backends did not count 5 denials")
    for e in eps.values():
        need(e["served"] <= e["calls"], "a backend served the intruder")
elif what == "spans":
    n, procs, traces = 0, set(), {}
    for line in open(out + "/spans.jsonl"):
        sp = json.loads(line)
        n += 1
        procs.add(sp["process"])
        for k in ("trace_id", "span_id", "name", "kind", "start_unix_ns",
                  "end_unix_ns", "status", "attributes"):
            need(k in sp, "span without " + k + ": " + line)
        need(len(sp["trace_id"]) == 32 and len(sp["span_id"]) == 16, line)
        traces.setdefault(sp["trace_id"], []).append(sp)
    need(n == s["spans"]["lines"] and n > 0, "span count")
    need(procs == {"frontend", "reports", "v1-a", "v1-b", "v2"},
         "spans from %s" % sorted(procs))
    # traces: every backend request span is the child of a client's try
    served, joined = 0, 0
    for spans in traces.values():
        by_id = {x["span_id"]: x for x in spans}
        for x in spans:
            if x["name"] != "mesh.request" or x["kind"] != "server":
                continue
            served += 1
            p = by_id.get(x.get("parent_span_id"))
            if p and p["name"] == "mesh.try" and p["process"] in (
                    "frontend", "reports"):
                joined += 1
    need(served > 100 and joined == served,
         "%d of %d backend spans joined their client's try" % (joined, served))
    need(s["spans"]["traces"] == s["calls"], "one trace per call")
PY
for what in calls ejection split denied spans; do
  check "summary.json: $what" python3 "$tmp/check.py" "$out" "$what"
done
# "[m]": the pattern must not match this check's own command line.
check "no demo process left" sh -c "! pgrep -f '[m]esh_demo backend $out/' >/dev/null"

# meshctl on the configs the demo wrote.
for cfg in frontend reports v1-a; do
  check "meshctl check-config $cfg.json" "$meshctl" check-config "$out/$cfg.json"
done
check "meshctl resolve work --config frontend.json" sh -c \
  "cd '$out' && '$meshctl' resolve work --config frontend.json >'$tmp/resolve.out' &&
   grep -q 'lb least_request (choice_count 2); split v1 90, v2 10' '$tmp/resolve.out' &&
   [ \$(grep -Ec '^127\.0\.0\.1:[0-9]+ +unknown +usable +1 +0 +- +v1 +45\.0% +instance=v1-. version=v1$' '$tmp/resolve.out') -eq 2 ] &&
   grep -Eq '^127\.0\.0\.1:[0-9]+ +unknown +usable +1 +0 +- +v2 +10\.0% +instance=v2 version=v2$' '$tmp/resolve.out' ||
   { cat '$tmp/resolve.out'; false; }"

# The xDS act: the client follows a control plane that shifts the canary
# 90/10 -> 50/50 -> 0/100 and adds a backend while calls run.
xout="$tmp/xds"
LC_ALL=C timeout -k 5 60 "$demo" --quick --no-color --out "$xout" \
  --xds "$top/examples/demo/xds_cp.py" >"$tmp/xds.stdout" 2>"$tmp/xds.stderr"
rc=$?
[ -n "${VERBOSE:-}" ] && cat "$tmp/xds.stdout" "$tmp/xds.stderr"
if [ $rc -eq 0 ]; then ok "xds act exits 0"; else ko "xds act exits 0 (got $rc)" "$tmp/xds.stdout"; cat "$tmp/xds.stderr"; fi
check "xds act: nothing on stderr" test ! -s "$tmp/xds.stderr"
check "xds act: each push shown, and the client applying it" sh -c \
  "grep -Eq 'control plane: pushed split work-v1 50 / work-v2 50' '$tmp/xds.stdout' &&
   grep -Eq 'control plane: pushed split work-v1 0 / work-v2 100' '$tmp/xds.stdout' &&
   grep -Eq 'control plane: pushed EDS: v2-b joins work-v2' '$tmp/xds.stdout' &&
   grep -Eq 'client applied route: work-v1:50,work-v2:50' '$tmp/xds.stdout' &&
   grep -Eq 'client applied route: work-v1:0,work-v2:100' '$tmp/xds.stdout'"
check "xds act: a live split on every progress line" sh -c \
  "[ \$(grep -Ec '^ +[0-9]+s \| calls +[0-9]+ .* \| split v1 +[0-9]+% v2 +[0-9]+% \|' '$tmp/xds.stdout') -ge 4 ]"
check "xds act: every verdict holds (no failed call, each phase's split, v2-b served)" sh -c \
  "[ \$(grep -c '^  ok ' '$tmp/xds.stdout') -eq 6 ] && ! grep -q '^  FAIL ' '$tmp/xds.stdout'"
check "xds act: no control plane or backend left" sh -c \
  "! pgrep -f '[x]ds_cp.py' >/dev/null && ! pgrep -f '[m]esh_demo backend $xout/' >/dev/null"

echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
