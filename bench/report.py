#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turn bench/run's raw CSV into docs/benchmarks.md and gnuplot PNGs.

Medians of the runs are reported, with ratios against the baselines measured
in the same run.  The hand-written analysis (profiles of the targets not met)
is bench/analysis.md, appended verbatim.  Standard library only."""
import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

CONFIGS = {
    "A": "plain TCP",
    "B": "bare mbedTLS mTLS (no mesh logic)",
    "C": "libmesh: discovery, least_request, pool, metrics, tracing 100% + OTLP export",
    "Cn": "libmesh as C, tracing off",
    "D": "sidecar pair (2 × HAProxy, OpenSSL mTLS between them)",
    "Co": "libmesh as C, OpenSSL 3 TLS backend (--with-tls=openssl) on both sides",
    "Con": "libmesh as Cn, OpenSSL 3 TLS backend",
}
POLICIES = ["round_robin", "random", "least_request", "peak_ewma",
            "ring_hash", "maglev"]
SIZES = [10, 100, 1000, 10000]
PICK_TARGET = {"round_robin": 50, "least_request": 50, "ring_hash": 100,
               "maglev": 100}


def median(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def load_rr(path):
    rows = defaultdict(list)
    with open(path) as f:
        for r in csv.DictReader(f):
            rows[(r["config"], r["load"])].append(r)
    return rows


def med(rows, key, field):
    return median([float(r[field]) for r in rows.get(key, [])])


def total(rows, cfgs, field):
    return sum(float(r[field]) for c in cfgs for load in ("rate", "closed")
               for r in rows.get((c, load), []))


def load_micro(path):
    m = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "," not in line:
                continue
            k, v = line.split(",", 1)
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m


def gnuplot(script):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", "") or ""
        print(f"gnuplot failed: {e} {err}", file=sys.stderr)
        return False


def plot_latency(rows, out, load, title):
    dat = os.path.join(out, f"rr_{load}.dat")
    with open(dat, "w") as f:
        f.write("# config p50 p90 p99 p999\n")
        for c in CONFIGS:
            if (c, load) in rows:
                f.write(f"{c} " + " ".join(
                    f"{med(rows, (c, load), p):.1f}"
                    for p in ("p50_us", "p90_us", "p99_us", "p999_us")) + "\n")
    png = os.path.join(out, f"rr_{load}.png")
    ok = gnuplot(f"""
set terminal pngcairo noenhanced size 900,520 font 'DejaVu Sans,11'
set output '{png}'
set title '{title}: latency by configuration (median of runs)'
set style data histograms
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel 'latency, µs (log scale)'
set logscale y
set yrange [10:*]
set key top left
set grid ytics
plot '{dat}' using 2:xtic(1) title 'p50' lc rgb '#4878a8', \\
     '' using 3 title 'p90' lc rgb '#88b04b', \\
     '' using 4 title 'p99' lc rgb '#e0a030', \\
     '' using 5 title 'p99.9' lc rgb '#c04040'
""")
    os.unlink(dat)
    return png if ok else None


def plot_cpu(rows, out, load, title):
    dat = os.path.join(out, f"cpu_{load}.dat")
    with open(dat, "w") as f:
        f.write("# config client server proxies\n")
        for c in CONFIGS:
            if (c, load) in rows:
                k = (c, load)
                f.write(f"{c} {med(rows, k, 'cpu_client_us_per_req'):.2f} "
                        f"{med(rows, k, 'cpu_server_us_per_req'):.2f} "
                        f"{med(rows, k, 'cpu_proxy_us_per_req'):.2f}\n")
    png = os.path.join(out, f"cpu_{load}.png")
    ok = gnuplot(f"""
set terminal pngcairo noenhanced size 900,520 font 'DejaVu Sans,11'
set output '{png}'
set title '{title}: CPU per request, all processes (median of runs)'
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set ylabel 'CPU µs per request'
set yrange [0:*]
set key top left
set grid ytics
plot '{dat}' using 2:xtic(1) title 'client (loadgen + library)' lc rgb '#4878a8', \\
     '' using 3 title 'server (echo_srv + library)' lc rgb '#88b04b', \\
     '' using 4 title 'sidecar proxies' lc rgb '#c04040'
""")
    os.unlink(dat)
    return png if ok else None


def plot_picks(micro, out):
    dat = os.path.join(out, "picks.dat")
    with open(dat, "w") as f:
        f.write("# n " + " ".join(POLICIES) + "\n")
        for n in SIZES:
            f.write(f"{n} " + " ".join(
                f"{micro.get(f'pick_ns_{p}_{n}_1', float('nan')):.1f}"
                for p in POLICIES) + "\n")
    png = os.path.join(out, "picks.png")
    lines = ", ".join(
        f"'{dat}' using 1:{i + 2} with linespoints lw 2 pt 7 title '{p}'"
        for i, p in enumerate(POLICIES))
    ok = gnuplot(f"""
set terminal pngcairo noenhanced size 900,520 font 'DejaVu Sans,11'
set output '{png}'
set title 'ns per pick, one thread (median of runs; clock read included)'
set logscale x
set xtics (10, 100, 1000, 10000)
set xrange [7:14000]
set xlabel 'endpoints'
set ylabel 'ns per pick'
set yrange [0:{max([100.0] + [micro.get(f'pick_ns_{p}_{n}_1', 0) for p in POLICIES for n in SIZES]) * 1.15:.0f}]
set key top left
set grid
plot {lines}, 50 with lines dt 2 lc rgb '#888888' title 'target rr, lr (50 ns)', \\
     100 with lines dt 3 lc rgb '#444444' title 'target hash (100 ns)'
""")
    os.unlink(dat)
    return png if ok else None


LINK_BASE = ["bench"]


def link(png):
    return os.path.join(LINK_BASE[0], os.path.basename(png))


SUMMARY = []  # (part, target, measured, met) for the table at the top


def yes(ok, part=None, target=None, measured=None):
    if part:
        SUMMARY.append((part, target, measured, ok))
    if ok is None or ok != ok:
        return "–"
    return "**yes**" if ok else "**no**"


def fmt(v, nd=1):
    if v is None or v != v:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=10).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    mbed = ver(["dpkg-query", "-W", "-f=${Version}", "libmbedtls-dev"])
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "mbedtls": mbed, "openssl": ver(["openssl", "version"]),
        "haproxy": ver(["haproxy", "-v"]).split(" - ")[0],
    }


def section_rr(L, rows, a, out):
    L.append(f"## 1. Request/response: {a.size} B each way, {a.conns} connections\n")
    L.append("Latency is measured from the *scheduled* send time at constant "
             "rate (no coordinated omission), from the send at closed loop. "
             "CPU per request sums every process of the configuration: the "
             "client (loadgen with the library, `getrusage`), the server and, "
             "for D, both proxies (`/proc/PID/stat`, 10 ms ticks). The trace "
             "collector of C is not counted. The load generator runs with a "
             "1 ns timer slack (the default 50 µs would be added to every "
             "scheduled send), and while part 1 runs, one `SCHED_IDLE` "
             "spinner per core keeps the cores out of idle: on this VM a "
             "wake-up from idle costs tens of µs, more than the "
             "configurations differ by, and how often it happens would "
             "depend on what else runs on the machine.\n")
    rn = [float(r["runnable_before"]) for v in rows.values() for r in v
          if r.get("runnable_before") not in (None, "")]
    if rn:
        L.append("Before each measurement `bench/run` waits (at most 20 s, 10 "
                 "minutes in all) until at most one other task is runnable on "
                 "the machine; runnable tasks just before the measurements: "
                 f"median {median(rn):.1f}, max {max(rn):.1f} (1 = only the "
                 "sampling shell).\n")
    pngs = []
    for load, title in (("rate", f"constant {a.rate} rps"),
                        ("closed", "closed loop (maximum throughput)"),
                        ("ping", "one connection, back to back")):
        if not any((c, load) in rows for c in CONFIGS):
            continue
        L.append(f"### {title}\n")
        L.append("| config | rps | p50 µs | p90 µs | p99 µs | p99.9 µs | CPU µs/req | client | server | proxies | errors |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c, name in CONFIGS.items():
            k = (c, load)
            if k not in rows:
                continue
            L.append(f"| **{c}** {name} | {med(rows, k, 'achieved_rps'):,.0f} | "
                     f"{fmt(med(rows, k, 'p50_us'))} | {fmt(med(rows, k, 'p90_us'))} | "
                     f"{fmt(med(rows, k, 'p99_us'))} | {fmt(med(rows, k, 'p999_us'))} | "
                     f"{fmt(med(rows, k, 'cpu_us_per_req'))} | "
                     f"{fmt(med(rows, k, 'cpu_client_us_per_req'))} | "
                     f"{fmt(med(rows, k, 'cpu_server_us_per_req'))} | "
                     f"{fmt(med(rows, k, 'cpu_proxy_us_per_req'))} | "
                     f"{sum(int(r['errors']) for r in rows[k])} |")
        L.append("")
        for png in (plot_latency(rows, out, load, title),
                    plot_cpu(rows, out, load, title)):
            if png:
                pngs.append(png)
                L.append(f"![{os.path.basename(png)}]({link(png)})\n")
    return pngs


def per_run(rows, load, fn):
    """fn(v) for each run, where v(config, field) is that run's value;
    the median over runs and the spread (min, max)."""
    runs = defaultdict(dict)
    present = [c for c in CONFIGS if (c, load) in rows]
    for c in present:
        for r in rows.get((c, load), []):
            runs[r["run"]][c] = r
    vals = []
    for run in sorted(runs):
        got = runs[run]
        if all(c in got for c in present):
            try:
                vals.append(fn(lambda c, f: float(got[c][f])))
            except ZeroDivisionError:
                pass
    if not vals:
        return float("nan"), float("nan"), float("nan")
    return median(vals), min(vals), max(vals)


def spread(lo, hi, fmt_="{:.2f}"):
    return f"runs {fmt_.format(lo)} … {fmt_.format(hi)}"


def section_targets(L, rows, micro):
    k = lambda c: (c, "rate")
    if not all(k(c) in rows for c in ("A", "B", "C", "Cn", "D")):
        return
    m = lambda c, f: med(rows, k(c), f)
    L.append("## Targets of part 1\n")
    L.append("At constant rate unless said otherwise. Each figure is computed within each run (the five configurations "
             "of a run are measured within about half a minute of each other) "
             "and the median over runs is given, with the range over runs: the "
             "machine's load changes between runs more than the configurations "
             "differ.\n")
    L.append("| target | measured (median of runs) | met |")
    L.append("|---|---|---|")
    for p in ("p50_us", "p99_us"):
        r, lo, hi = per_run(rows, "rate", lambda v: (v("C", p) - v("A", p)) / (v("D", p) - v("A", p)))
        ca, _, _ = per_run(rows, "rate", lambda v: v("C", p) - v("A", p))
        da, _, _ = per_run(rows, "rate", lambda v: v("D", p) - v("A", p))
        L.append(f"| (C−A)/(D−A) at {p[:-3]} ≤ 0.1, constant rate | **{r:.2f}** (C−A {ca:.1f} µs, "
                 f"D−A {da:.1f} µs; {spread(lo, hi)}) | "
                 f"{yes(r <= 0.1, '1', f'(C−A)/(D−A) ≤ 0.1 at {p[:-3]}, 1000 rps', f'{r:.2f}')} |")
    if ("A", "ping") in rows:
        r, lo, hi = per_run(rows, "ping", lambda v: (v("C", "p50_us") - v("A", "p50_us")) / (v("D", "p50_us") - v("A", "p50_us")))
        L.append(f"| … the same with one connection back to back (no queueing) | **{r:.2f}** "
                 f"({spread(lo, hi)}) | {yes(r <= 0.1, '1', '(C−A)/(D−A) ≤ 0.1 at p50, one connection', f'{r:.2f}')} |")
    cb, lo, hi = per_run(rows, "rate", lambda v: v("C", "p50_us") - v("B", "p50_us"))
    cnb, lo2, hi2 = per_run(rows, "rate", lambda v: v("Cn", "p50_us") - v("B", "p50_us"))
    L.append(f"| C−B ≤ 3 µs at p50, constant rate | **{cb:.1f} µs** ({spread(lo, hi, '{:.1f}')}); "
             f"tracing off, Cn−B: {cnb:.1f} µs ({spread(lo2, hi2, '{:.1f}')}) | "
             f"{yes(cb <= 3, '1', 'C−B ≤ 3 µs at p50, 1000 rps', f'{cb:.1f} µs (tracing off: {cnb:.1f} µs)')} |")
    if ("A", "ping") in rows:
        cb1, lo, hi = per_run(rows, "ping", lambda v: v("C", "p50_us") - v("B", "p50_us"))
        cnb1, lo2, hi2 = per_run(rows, "ping", lambda v: v("Cn", "p50_us") - v("B", "p50_us"))
        L.append(f"| … the same with one connection back to back | **{cb1:.1f} µs** "
                 f"({spread(lo, hi, '{:.1f}')}); tracing off: {cnb1:.1f} µs ({spread(lo2, hi2, '{:.1f}')}) | "
                 f"{yes(cb1 <= 3, '1', 'C−B ≤ 3 µs at p50, one connection', f'{cb1:.1f} µs (tracing off: {cnb1:.1f} µs)')} |")
    f = "cpu_us_per_req"
    cd_, lo, hi = per_run(rows, "rate", lambda v: v("C", f) / v("D", f))
    add, lo2, hi2 = per_run(rows, "rate", lambda v: (v("C", f) - v("A", f)) / (v("D", f) - v("A", f)))
    cc, cd, ca = (m(x, f) for x in ("C", "D", "A"))
    L.append(f"| CPU per request ≤ D's / 10 | **{cd_:.2f}×** (C {cc:.1f} µs, D {cd:.1f} µs; "
             f"{spread(lo, hi)}) | {yes(cd_ <= 0.1, '1', 'CPU per request ≤ D/10', f'{cd_:.2f}× D (added to A: {add:.2f}×)')} |")
    L.append(f"| … counting only what each adds to plain TCP | **{add:.2f}×** "
             f"(C−A {cc - ca:.1f} µs, D−A {cd - ca:.1f} µs; {spread(lo2, hi2)}) | "
             f"{yes(add <= 0.1)} |")
    if k("Co") in rows:
        section_targets_ossl(L, rows)
    rr, lo, hi = per_run(rows, "rate", lambda v: (v("C", "p99_us") / v("C", "p50_us")) /
                         (v("A", "p99_us") / v("A", "p50_us")))
    ra = m("A", "p99_us") / m("A", "p50_us")
    rc = m("C", "p99_us") / m("C", "p50_us")
    L.append(f"| C's p99/p50 ≤ 1.1 × A's | **{rr:.2f}×** (medians: C {rc:.2f}, A {ra:.2f}; "
             f"{spread(lo, hi)}) | {yes(rr <= 1.1, '1', 'p99/p50 of C ≤ 1.1 × A', f'{rr:.2f}×')} |")
    calls = total(rows, ("C", "Cn"), "calls_window")
    pooled = total(rows, ("C", "Cn"), "pooled_window")
    share = 100 * pooled / calls if calls else float("nan")
    calls_all = total(rows, ("C", "Cn"), "calls")
    pooled_all = total(rows, ("C", "Cn"), "pooled")
    L.append(f"| ≥ 99.9% of calls on pooled connections | **{share:.3f}%** "
             f"({pooled:,.0f} of {calls:,.0f} calls in the measured windows "
             f"of every C and Cn run; counting the first call of each "
             f"connection too: {100 * pooled_all / calls_all:.3f}%, "
             f"{calls_all - pooled_all:,.0f} dials in all) | {yes(share >= 99.9, '2', '≥ 99.9% of calls on pooled connections', f'{share:.3f}%')} |")
    share_t, lo, hi = per_run(rows, "rate", lambda v: (v("C", "cpu_client_us_per_req") -
                                                       v("Cn", "cpu_client_us_per_req")) / v("C", f))
    ct, cn = m("C", "cpu_client_us_per_req"), m("Cn", "cpu_client_us_per_req")
    tt = m("C", f)
    exported = sum(float(r["spans_exported"]) for r in rows[k("C")])
    dropped = sum(float(r["spans_dropped"]) for r in rows[k("C")])
    cl_exp = sum(float(r["spans_exported"]) for r in rows.get(("C", "closed"), []))
    cl_drop = sum(float(r["spans_dropped"]) for r in rows.get(("C", "closed"), []))
    L.append(f"| tracing at 100% with export ≤ 2% of CPU | **{100 * share_t:.1f}%**: "
             f"C−Cn client CPU {ct - cn:.2f} µs of C's {tt:.1f} µs per request "
             f"(medians; {spread(100 * lo, 100 * hi, '{:.1f}%')}; "
             f"{exported:,.0f} spans exported, {dropped:,.0f} dropped at "
             f"constant rate; at closed loop the single export thread fell "
             f"behind: {cl_exp:,.0f} exported, {cl_drop:,.0f} dropped) | "
             f"{yes(share_t <= 0.02)} |")
    per_span = micro.get("export_cpu_ns_per_span")
    if per_span:
        rec = micro.get("call_begin_end_exported_ns", 0) - micro.get("call_begin_end_ns", 0)
        cost = (2 * per_span + rec) / 1000
        L.append(f"| … the same from `micro` (precise CPU clocks): 2 spans × "
                 f"{per_span / 1000:.2f} µs export + {rec / 1000:.2f} µs recording "
                 f"per call | **{cost:.1f} µs = {100 * cost / tt:.1f}%** of C's "
                 f"CPU per request | {yes(cost / tt <= 0.02, '6', 'export at 100% sampling ≤ 2% of CPU', f'{100 * cost / tt:.1f}%')} |")
    L.append("")


def section_targets_ossl(L, rows):
    """The issue's part-1 targets for the OpenSSL backend (Co: C built
    --with-tls=openssl, same run, same A and D)."""
    f = "cpu_us_per_req"
    m = lambda c, fl: med(rows, (c, "rate"), fl)
    for p in ("p50_us", "p99_us"):
        r, lo, hi = per_run(rows, "rate", lambda v: (v("Co", p) - v("A", p)) / (v("D", p) - v("A", p)))
        ca, _, _ = per_run(rows, "rate", lambda v: v("Co", p) - v("A", p))
        L.append(f"| OpenSSL backend: (Co−A)/(D−A) at {p[:-3]} ≤ 0.1, constant rate | **{r:.2f}** "
                 f"(Co−A {ca:.1f} µs; {spread(lo, hi)}) | "
                 f"{yes(r <= 0.1, '1', f'OpenSSL backend: (C−A)/(D−A) ≤ 0.1 at {p[:-3]}, 1000 rps', f'{r:.2f}')} |")
    if ("Co", "ping") in rows:
        r, lo, hi = per_run(rows, "ping", lambda v: (v("Co", "p50_us") - v("A", "p50_us")) / (v("D", "p50_us") - v("A", "p50_us")))
        L.append(f"| … the same with one connection back to back | **{r:.2f}** ({spread(lo, hi)}) | "
                 f"{yes(r <= 0.1, '1', 'OpenSSL backend: (C−A)/(D−A) ≤ 0.1 at p50, one connection', f'{r:.2f}')} |")
    add, lo, hi = per_run(rows, "rate", lambda v: (v("Co", f) - v("A", f)) / (v("D", f) - v("A", f)))
    addn, lo2, hi2 = per_run(rows, "rate", lambda v: (v("Con", f) - v("A", f)) / (v("D", f) - v("A", f)))
    co, con, cd, ca = (m(x, f) for x in ("Co", "Con", "D", "A"))
    if ("Co", "ping") in rows:
        for c, what in (("C", "mbedTLS"), ("Co", "OpenSSL")):
            r1, lo1, hi1 = per_run(rows, "ping", lambda v: (v(c, f) - v("A", f)) / (v("D", f) - v("A", f)))
            rn, _, _ = per_run(rows, "ping", lambda v: (v(c + "n", f) - v("A", f)) / (v("D", f) - v("A", f)))
            L.append(f"| {what} backend: CPU per request added to plain TCP ≤ 0.1 × the pair's, one connection "
                     f"back to back | **{r1:.2f}×** ({spread(lo1, hi1)}); tracing off: {rn:.2f}× | "
                     f"{yes(r1 <= 0.1, '1', f'{what} backend: CPU (C−A) ≤ 0.1 × (D−A), one connection', f'{r1:.2f}× (tracing off: {rn:.2f}×)')} |")
    L.append(f"| OpenSSL backend: CPU per request added to plain TCP ≤ 0.1 × the pair's | **{add:.2f}×** "
             f"(Co−A {co - ca:.1f} µs, D−A {cd - ca:.1f} µs; {spread(lo, hi)}); tracing off, "
             f"Con−A: {addn:.2f}× ({con - ca:.1f} µs; {spread(lo2, hi2)}) | "
             f"{yes(add <= 0.1, '1', 'OpenSSL backend: CPU (C−A) ≤ 0.1 × (D−A)', f'{add:.2f}× (tracing off: {addn:.2f}×)')} |")


def section_micro(L, micro, out):
    g = micro.get
    nan = float("nan")
    L.append("## 2. Handshakes\n")
    L.append("libmesh: `micro` dials an in-process libmesh listener "
             "(`mesh_dial` to `127.0.0.1:port`, client and server on two "
             "threads; full: `tls.session_cache_size: 0`; resumed: session "
             "tickets; each dial reads the server's one-byte reply before it "
             "closes, so TLS 1.3 tickets arrive). Per CPU second counts both sides, so it is what one "
             "core does. OpenSSL: `openssl s_time -new`/`-reuse` against "
             "`openssl s_server`, same certificates and suite "
             "(ECDHE-ECDSA-AES128-GCM-SHA256, TLS 1.2, P-256), CPU of both "
             "processes.\n")
    L.append("| | libmesh (mbedTLS) /s | per CPU s | OpenSSL /s | per CPU s | libmesh ÷ OpenSSL per CPU s |")
    L.append("|---|--:|--:|--:|--:|--:|")
    for kind, okind in (("full", "full"), ("resumed", "resumed")):
        lm, lc = g(f"handshakes_{kind}_per_s", nan), g(f"handshakes_{kind}_per_cpu_s", nan)
        om, oc = g(f"openssl_handshakes_{okind}_per_s", nan), g(f"openssl_handshakes_{okind}_per_cpu_s", nan)
        L.append(f"| {kind} | {fmt(lm)} | {fmt(lc)} | {fmt(om)} | {fmt(oc)} | {lc / oc if oc else nan:.2f} |")
    f, r = g("handshakes_full_per_cpu_s", nan), g("handshakes_resumed_per_cpu_s", nan)
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    L.append(f"| resumed ≥ 8 × full (per CPU s) | **{r / f:.1f}×** "
             f"({100 * g('handshakes_resumed_share', nan):.1f}% of the "
             f"\"resumed\" dials resumed) | {yes(r >= 8 * f, '2', 'resumed handshakes ≥ 8 × full', f'{r / f:.0f}×')} |")
    L.append("| ≥ 99.9% of calls on pooled connections | see part 1 | |")
    L.append("")

    L.append("## 3. Picks\n")
    L.append("`mesh__lb_pick()` on a prepared snapshot of n endpoints "
             "(equal weights, all healthy), as the call layer calls it: the "
             "pick reads the monotonic clock itself (about 15–20 ns of the "
             "figures below; the \"no clock\" columns pass the time in). "
             "ring_hash and maglev hash a different 7-byte key per pick. "
             "Two threads pick from the same snapshot at once; figures are "
             "per pick per thread, in thread CPU time.\n")
    L.append("| policy | " + " | ".join(f"{n} ep" for n in SIZES) +
             " | 2 threads, " + " | 2 thr, ".join(f"{n}" for n in SIZES) +
             " | no clock, 1,000 | target | allocations in picks |")
    L.append("|---|" + "--:|" * (2 * len(SIZES) + 2) + "--:|")
    for p in POLICIES:
        one = [g(f"pick_ns_{p}_{n}_1", nan) for n in SIZES]
        two = [g(f"pick_ns_{p}_{n}_2", nan) for n in SIZES]
        tgt = PICK_TARGET.get(p)
        met = "" if tgt is None else ("≤ %d ns: %s" % (tgt, yes(max(one + two) <= tgt, '3', f'{p} ≤ {tgt} ns per pick', f'{min(one):.0f}–{max(one + two):.0f} ns')))
        L.append(f"| {p} | " + " | ".join(fmt(v) for v in one) + " | " +
                 " | ".join(fmt(v) for v in two) +
                 f" | {fmt(g(f'pick_noclock_ns_{p}_1000_1', nan))} | {met} | "
                 f"{fmt(g(f'pick_allocs_{p}', nan), 0)} |")
    L.append("")
    L.append(f"least_request pick + `mesh__lb_begin` + `mesh__lb_end` (what a "
             f"call adds to the host's counters), 1,000 endpoints: "
             f"{fmt(g('pick_begin_end_ns_least_request_1000', nan))} ns.\n")
    png = plot_picks(micro, out)
    if png:
        L.append(f"![picks]({link(png)})\n")
    mb = g("maglev_build_ms_1000", nan)
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    L.append(f"| maglev table (65,537) rebuild ≤ 1 ms at 1,000 hosts | "
             f"**{mb:.2f} ms** (`mesh__maglev_build`); whole `mesh__lb_prepare` "
             f"of the snapshot {g('maglev_prepare_ms_1000', nan):.2f} ms | {yes(mb <= 1.0, '3', 'maglev rebuild ≤ 1 ms at 1,000 hosts', f'{mb:.2f} ms')} |")
    L.append(f"| no allocation on the pick path | "
             f"{sum(g(f'pick_allocs_{p}', 0) for p in POLICIES):.0f} allocations "
             f"in all single-thread pick loops | "
             f"{yes(sum(g(f'pick_allocs_{p}', 1) for p in POLICIES) == 0, '3', 'no allocation on the pick path', '0' if sum(g(f'pick_allocs_{p}', 1) for p in POLICIES) == 0 else 'some')} |")
    L.append("")

    L.append("## 4. Memory\n")
    L.append("Heap bytes are live bytes as `malloc_usable_size()` counts them "
             "(`micro` replaces malloc/calloc/realloc/free with a counting "
             "wrapper); RSS from `/proc/self/status`. Each figure is taken in "
             "a freshly forked process, after a warm-up context has paid the "
             "libraries' one-time allocations.\n")
    L.append("| | measured | target | met |")
    L.append("|---|--:|---|---|")
    rows = [
        ("RSS added by a context with 1,000 endpoints (static), no connections",
         f"{fmt(g('rss_base_kib', nan))} KiB (heap {fmt(g('heap_base_kib', nan))} KiB; "
         f"whole process {fmt(g('rss_process_kib', nan))} KiB)", "≤ 2 MiB",
         g("rss_base_kib", nan) <= 2048),
        ("bytes per endpoint: host + snapshot + least_request state, from a discovery update of 10,000",
         f"{fmt(g('bytes_per_endpoint', nan))} B (`sizeof(mesh__host_t)` = {fmt(g('sizeof_host', nan), 0)})",
         "≤ 200 B", g("bytes_per_endpoint", nan) <= 200),
        ("bytes per endpoint written in a static config (its JSON kept too)",
         f"{fmt(g('bytes_per_endpoint_static', nan))} B", "", None),
        ("bytes per service (static, 1 endpoint, least_request)",
         f"{fmt(g('bytes_per_service', nan))} B", "", None),
        ("bytes per idle pooled mTLS connection (client side)",
         f"{fmt(g('bytes_per_idle_conn', nan))} B = {g('bytes_per_idle_conn', nan) / 1024:.1f} KiB "
         f"(RSS {fmt(g('rss_per_idle_conn_kib', nan))} KiB)", "≤ 40 KiB",
         g("bytes_per_idle_conn", nan) <= 40 * 1024),
        ("RSS of the HAProxy sidecar pair after part 1 (for comparison)",
         f"{fmt(g('haproxy_pair_rss_kb', nan))} KiB", "", None),
    ]
    for name, val, tgt, ok in rows:
        L.append(f"| {name} | {val} | {tgt} | {'' if ok is None else yes(ok, '4', name.split(':')[0] + ' ' + tgt, val.split(' (')[0])} |")
    L.append("")

    L.append("## 5. Discovery\n")
    L.append("`mesh__disc_apply()` (what every source calls with its answer): "
             "build the snapshot (hosts matched to the previous set by a hash "
             "index), let the load balancer prepare it, publish it, release "
             "the old one. Endpoints are IPv4 literals with equal weights; "
             "least_request unless noted.\n")
    L.append("| | measured | target | met |")
    L.append("|---|--:|---|---|")
    du = g("discovery_update_ms_10000", nan)
    L.append(f"| apply 10,000 new endpoints | {du:.2f} ms = {1000 * du / 1e4:.2f} µs per endpoint | ≤ 3 ms (0.3 µs/ep) | {yes(du <= 3, '5', '10,000-endpoint update ≤ 3 ms', f'{du:.2f} ms')} |")
    L.append(f"| same, round_robin | {g('discovery_update_rr_ms_10000', nan):.2f} ms | | |")
    L.append(f"| apply 10,000 with one endpoint changed | {g('discovery_update_one_changed_ms_10000', nan):.2f} ms | | |")
    L.append(f"| apply 10,000 unchanged (no publish) | {g('discovery_update_unchanged_ms_10000', nan):.2f} ms | | |")
    L.append(f"| file source's share: parse + validate 10,000 endpoints of JSON | {g('discovery_parse_ms_10000', nan):.2f} ms | | |")
    if "dns_calls" in micro:
        dns_text = "%.0f lookups in %s calls" % (g("dns_lookups_on_call_path", nan), f"{g('dns_calls', 0):,.0f}")
        L.append(f"| DNS resolutions on the call path, {g('dns_calls', 0):,.0f} calls to a DNS-discovered service (dnsmasq, TTL 1 s) | "
                 f"**{g('dns_lookups_on_call_path', nan):.0f}** (the worker sent "
                 f"{g('dns_queries_by_worker', nan):.0f} queries meanwhile) | 0 | "
                 f"{yes(g('dns_lookups_on_call_path', 1) == 0 and g('dns_queries_by_worker', 0) > 0, '5', 'DNS never resolved on the call path', dns_text)} |")
    L.append("")
    L.append("The DNS check counts calls of `ares_query`, `ares_search`, "
             "`ares_gethostbyname`, `gethostbyname` and non-numeric "
             "`getaddrinfo` (interposed in `micro`) by thread: the calling "
             "thread never resolves; the worker's re-resolutions are counted "
             "too, which shows the counter works.\n")

    L.append("## 6. Tracing\n")
    L.append("| | measured | target | met |")
    L.append("|---|--:|---|---|")
    su, sa = g("span_unsampled_ns", nan), g("span_unsampled_allocs", nan)
    L.append(f"| span start + end, not sampled | {su:.1f} ns, {sa:g} allocations | ≤ 100 ns, none | {yes(su <= 100 and sa == 0, '6', 'unsampled span ≤ 100 ns, no allocation', f'{su:.0f} ns, {sa:g} allocations')} |")
    L.append(f"| span start + end, sampled and recorded (a span hook set) | {g('span_sampled_recorded_ns', nan):.0f} ns, {g('span_sampled_allocs', nan):g} allocations | | |")
    tp = g("traceparent_parse_ns", nan)
    L.append(f"| `mesh_traceparent_parse` | {tp:.1f} ns | ≤ 30 ns | {yes(tp <= 30, '6', 'traceparent parse ≤ 30 ns', f'{tp:.1f} ns')} |")
    L.append("| export at 100% sampling, share of CPU in part 1 | see the targets of part 1 | ≤ 2% | |")
    L.append("")
    L.append("## The call path and the cipher, alone\n")
    L.append("| | measured |")
    L.append("|---|--:|")
    L.append(f"| `mesh_call_begin` + `mesh_call_end` on a pooled connection, no bytes moved, tracing off | {fmt(g('call_begin_end_ns', nan))} ns |")
    L.append(f"| same, tracing on: 2 sampled spans per call, recorded for a span hook | {fmt(g('call_begin_end_traced_ns', nan))} ns |")
    L.append(f"| same, spans exported over OTLP/HTTP to the sink (calling thread) | {fmt(g('call_begin_end_exported_ns', nan))} ns |")
    L.append(f"| export's own CPU per span (worker thread: JSON, libcurl, socket), {fmt(g('export_spans', nan), 0)} spans, {fmt(g('export_dropped_spans', nan), 0)} dropped | {fmt(g('export_cpu_ns_per_span', nan))} ns |")
    for b in (1024, 16384):
        mt, os_ = g(f"mbedtls_aes128gcm_mb_per_s_{b}", nan), g(f"openssl_aes128gcm_mb_per_s_{b}", nan)
        L.append(f"| AES-128-GCM, {b} B records: mbedTLS {fmt(mt)} MB/s, OpenSSL {fmt(os_)} MB/s | OpenSSL **{os_ / mt:.1f}×** faster |")
    L.append(f"| ChaCha20-Poly1305, 1024 B, mbedTLS (libmesh's third suite) | {fmt(g('mbedtls_chachapoly_mb_per_s_1024', nan))} MB/s |")
    L.append("")



# ---- per TLS backend (bench/backends.sh: OUT/backends.csv) -------------------

BK_NAMES = {"mbedtls": "mbedTLS", "openssl": "OpenSSL"}
BK_SUITE = {"1.2": "ECDHE-ECDSA-AES128-GCM-SHA256", "1.3": "TLS_AES_128_GCM_SHA256"}


def load_backends(path):
    """rows[(source, backend, tls, metric)] = {run: value}; meta from the
    '#' lines (date, command, load, libraries, negotiated ...)."""
    rows = defaultdict(dict)
    meta = {"negotiated": []}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# negotiated "):
                meta["negotiated"].append(line[len("# negotiated "):])
            elif line.startswith("# ") and ":" in line:
                k, v = line[2:].split(":", 1)
                meta[k.strip()] = v.strip()
            elif line and not line.startswith(("#", "source,")):
                p = line.split(",")
                if len(p) == 6:
                    try:
                        rows[tuple(p[:4])][p[4]] = float(p[5])
                    except ValueError:
                        pass
    return rows, meta


class Backends:
    def __init__(self, path):
        self.rows, self.meta = load_backends(path)
        self.backends = [b for b in ("mbedtls", "openssl")
                         if any(k[0] == "libmesh" and k[1] == b for k in self.rows)]

    def has(self, src, be, v):
        return (src, be, v, "full_per_cpu_s") in self.rows

    def med(self, src, be, v, metric):
        return median(list(self.rows.get((src, be, v, metric), {}).values()))

    def ratio(self, be, v, kind):
        """libmesh on be ÷ s_time per CPU s, within each run: median, lo, hi."""
        a = self.rows.get(("libmesh", be, v, f"{kind}_per_cpu_s"), {})
        b = self.rows.get(("s_time", "openssl", v, f"{kind}_per_cpu_s"), {})
        r = [a[k] / b[k] for k in a if k in b and b[k] > 0]
        if not r:
            return float("nan"), float("nan"), float("nan")
        return median(r), min(r), max(r)

    def spread(self, src, be, v, metric):
        xs = list(self.rows.get((src, be, v, metric), {}).values())
        return (min(xs), max(xs)) if xs else (float("nan"), float("nan"))

    def nruns(self):
        return len({r for d in self.rows.values() for r in d})

    def runnable(self):
        xs = [x for k, d in self.rows.items() if k[3].startswith("runnable_before")
              for x in d.values()]
        return (median(xs), max(xs)) if xs else (float("nan"), float("nan"))

    def provenance(self, same_run, short=False):
        m = self.meta
        rn, rx = self.runnable()
        if short:
            return (("Measured in this page's run" if same_run else
                     f"Measured by `{m.get('command', 'bench/run --backends')}` on "
                     f"{m.get('date', '?')}, not in the full run of the header") +
                    f"; medians of {self.nruns()} runs (the run is described in "
                    "section 2's per-backend block).")
        if same_run:
            head = "Measured in this page's run"
        else:
            head = (f"Measured by `{m.get('command', 'bench/run --backends')}` "
                    f"on {m.get('date', '?')} (load average {m.get('load', '?')}), "
                    "not in the full run of this page's header: the rows "
                    "outside these per-backend blocks come from that full run")
        return (f"{head}; medians of {self.nruns()} runs, each run measuring every "
                f"backend and `openssl s_time` one after the other (order rotated "
                f"between runs); runnable tasks before each measurement: median "
                f"{rn:.0f}, max {rx:.0f}. Libraries: {m.get('libraries', '?')}.")


def backends_summary(bk):
    """(part, target, measured, met) rows of the per-backend targets."""
    out = []
    for v in ("1.2", "1.3"):
        if not bk.has("s_time", "openssl", v):
            continue
        if bk.has("libmesh", "openssl", v):
            r, lo, hi = bk.ratio("openssl", v, "full")
            lm = bk.med("libmesh", "openssl", v, "full_per_cpu_s")
            st = bk.med("s_time", "openssl", v, "full_per_cpu_s")
            if bk.has("libmesh", "mbedtls", v):
                rm, _, _ = bk.ratio("mbedtls", v, "full")
                mb = f"mbedTLS backend {rm:.2f}×"
            else:
                mb = "mbedTLS 2.28 has no TLS 1.3"
            out.append(("2", f"OpenSSL backend: full handshakes per CPU s ≥ 0.8× openssl s_time, TLS {v}",
                        f"{r:.2f}× ({fmt(lm)} vs {fmt(st)} per CPU s; runs {lo:.2f} … {hi:.2f}); {mb}",
                        r >= 0.8))
    for be in bk.backends:
        vs = [v for v in ("1.2", "1.3") if ("libmesh", be, v, "bytes_per_idle_conn") in bk.rows]
        if not vs:
            continue
        worst = max(bk.med("libmesh", be, v, "bytes_per_idle_conn") for v in vs)
        txt = ", ".join(f"TLS {v}: {bk.med('libmesh', be, v, 'bytes_per_idle_conn') / 1024:.1f} KiB" for v in vs)
        out.append(("4", f"bytes per idle pooled mTLS connection ≤ 40 KiB, {BK_NAMES[be]} backend",
                    txt, worst <= 40 * 1024))
    for be in bk.backends:
        c = bk.med("libmesh", be, "default", "syscalls_per_req_client")
        s = bk.med("libmesh", be, "default", "syscalls_per_req_server")
        if c == c and s == s:
            out.append(("1", f"system calls per request per side ≤ 2.5, {BK_NAMES[be]} backend",
                        f"client {c:.2f}, server {s:.2f}", max(c, s) <= 2.5))
    return out


def block(name, lines):
    return ([f"<!-- bench/run backends: {name} begin -->", ""] + lines +
            ["", f"<!-- bench/run backends: {name} end -->", ""])


def backends_summary_block(bk, same_run):
    L = ["Per TLS backend, from `bench/backends.sh` (" +
         ("this run" if same_run else
          f"`{bk.meta.get('command', '?')}`, {bk.meta.get('date', '?')}, load average "
          f"{bk.meta.get('load', '?')}; the rows above come from the full run of the header") +
         "; sections 1, 2 and 4 below):", "",
         "| part | target | measured | met |", "|---|---|---|---|"]
    for part, target, measured, ok in backends_summary(bk):
        L.append(f"| {part} | {target} | {measured} | {yes(ok)} |")
    return block("summary", L)


def backends_syscalls_block(bk, same_run):
    if not any(k[3].startswith("syscalls_per_req") for k in bk.rows):
        return []
    L = ["### System calls per request per side, per TLS backend", "",
         "`bench/syscalls BUILD` (`strace -c -f` on both processes of the part-1 "
         "configuration Cn: libmesh client and server, tracing off, 1000 rps, 16 "
         "connections, 1 KiB each way, 5 s; the load generator's own "
         "`clock_nanosleep` pacing left out; each backend with its default TLS "
         "version). " + bk.provenance(same_run, short=True), "",
         "| backend | client | server | target | met |", "|---|--:|--:|---|---|"]
    for be in bk.backends:
        c = bk.med("libmesh", be, "default", "syscalls_per_req_client")
        s = bk.med("libmesh", be, "default", "syscalls_per_req_server")
        if c != c:
            continue
        clo, chi = bk.spread("libmesh", be, "default", "syscalls_per_req_client")
        slo, shi = bk.spread("libmesh", be, "default", "syscalls_per_req_server")
        L.append(f"| {BK_NAMES[be]} | **{c:.2f}** (runs {clo:.2f} … {chi:.2f}) | "
                 f"**{s:.2f}** (runs {slo:.2f} … {shi:.2f}) | ≤ 2.5 per side | {yes(max(c, s) <= 2.5)} |")
    return block("syscalls", L)


def backends_tickets(bk):
    """The TLS 1.3 session-ticket sentence: the run's CSV says (a '# s_server
    tickets' line, since bench/backends.sh passes -num_tickets 1) whether
    `openssl s_server` sent one ticket per new connection like libmesh's
    OpenSSL server or OpenSSL's default two (CSVs made before)."""
    if "-num_tickets 1" in bk.meta.get("s_server tickets", ""):
        return ("Tickets: both TLS 1.3 servers send one session ticket per new "
                "connection, the libmesh server on OpenSSL "
                "(`SSL_CTX_set_num_tickets(…, 1)`) and `openssl s_server "
                "-num_tickets 1` (OpenSSL's default is two), and both clients "
                "read and process it before their one read returns, so the full "
                "handshakes compared do the same work (one ticket after a "
                "resumption too; the setting is TLS 1.3 only).")
    return ("Tickets: the libmesh server on OpenSSL sends one TLS 1.3 session "
            "ticket per new connection (`SSL_CTX_set_num_tickets(…, 1)`); this "
            "run's `openssl s_server` sent OpenSSL's default two (before "
            "`bench/backends.sh` passed `-num_tickets 1`), and both clients "
            "read and process every ticket before their one read returns, so "
            "s_time's TLS 1.3 full handshakes include one ticket more on each "
            "side than libmesh's (after a TLS 1.3 resumption OpenSSL sends one "
            "ticket either way).")


def backends_handshakes_block(bk, same_run):
    L = ["### Per TLS backend and version", "",
         "`micro --only handshakes --tls V` of each build (libmesh client and "
         "server in one process, CPU of both; full: `tls.session_cache_size: 0`; "
         "resumed: session tickets) and `openssl s_time -new`/`-reuse` against "
         "`openssl s_server` (CPU of both) with the same version and suite: TLS "
         "1.2 ECDHE-ECDSA-AES128-GCM-SHA256, TLS 1.3 TLS_AES_128_GCM_SHA256, "
         "P-256 certificates. Every connection reads once before it closes: "
         "libmesh's server writes one byte that the client reads, `s_time -www` "
         "fetches a 3-byte file from `s_server -WWW`. Without a read, a TLS 1.3 "
         "client closes before the server's ticket has arrived and its next "
         "\"resumed\" dial is a full handshake (before this, `micro` reported "
         "0.15–0.20 of OpenSSL/TLS 1.3 dials resumed, and `s_time -reuse` "
         "without `-www` resumes 1%). The client reads the byte, not the "
         "server's close_notify after it, then closes with its own close_notify "
         "(a client that reads the peer's close_notify keeps its session as well "
         "since the closeres fix, `tests/test_tls_close`). " + backends_tickets(bk) +
         " " + bk.provenance(same_run), ""]
    cols = [("libmesh", be) for be in bk.backends] + [("s_time", "openssl")]
    name = lambda c: f"libmesh ({BK_NAMES[c[1]]})" if c[0] == "libmesh" else "openssl s_time"
    L.append("| TLS | handshake | " + " | ".join(f"{name(c)} /s | per CPU s" for c in cols) +
             " | " + " | ".join(f"{BK_NAMES[be]} ÷ s_time per CPU s" for be in bk.backends) + " |")
    L.append("|---|---|" + "--:|--:|" * len(cols) + "--:|" * len(bk.backends))
    for v in ("1.2", "1.3"):
        if not bk.has("s_time", "openssl", v):
            continue
        for kind in ("full", "resumed"):
            cells = []
            for src, be in cols:
                if bk.has(src, be, v):
                    cells.append(f"{fmt(bk.med(src, be, v, f'{kind}_per_s'))} | "
                                 f"{fmt(bk.med(src, be, v, f'{kind}_per_cpu_s'))}")
                else:
                    cells.append("– | –")
            for be in bk.backends:
                if bk.has("libmesh", be, v):
                    r, lo, hi = bk.ratio(be, v, kind)
                    cells.append(f"**{r:.2f}** ({lo:.2f} … {hi:.2f})")
                else:
                    cells.append("no TLS 1.3")
            L.append(f"| {v} | {kind} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Ratios are computed within each run (median, range over runs). "
             "Share of the \"resumed\" dials that resumed (all runs): " + "; ".join(
                 f"{name(c)} TLS {v} {bk.med(c[0], c[1], v, 'resumed_share'):.3f}"
                 for v in ("1.2", "1.3") for c in cols if bk.has(c[0], c[1], v)) +
             ". Negotiated by libmesh: " + "; ".join(dict.fromkeys(bk.meta["negotiated"])) +
             (" (this run's OpenSSL backend still offered OpenSSL's default TLS 1.3 "
              "order, AES-256-GCM first, where s_time is given TLS_AES_128_GCM_SHA256; "
              "both backends now offer AES-128-GCM first; the suite's hash and cipher "
              "are a small part of a handshake, the ECDHE and the two ECDSA "
              "signatures are most of it)." if any("AES-256" in n and "1.3" in n
                                                   for n in bk.meta["negotiated"])
              else "."))
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for part, target, measured, ok in backends_summary(bk):
        if part == "2":
            L.append(f"| {target} | **{measured.split(' (')[0]}** ({measured.split(' (', 1)[1]} | {yes(ok)} |")
    for be in bk.backends:
        for v in ("1.2", "1.3"):
            if bk.has("libmesh", be, v):
                f_ = bk.med("libmesh", be, v, "full_per_cpu_s")
                r_ = bk.med("libmesh", be, v, "resumed_per_cpu_s")
                L.append(f"| resumed ≥ 8 × full (per CPU s), {BK_NAMES[be]} backend, TLS {v} | "
                         f"**{r_ / f_:.1f}×** | {yes(r_ >= 8 * f_)} |")
    fullx = "libmesh on OpenSSL does {:.1f}× the full TLS 1.2 handshakes per CPU s of libmesh on mbedTLS 2.28".format(
        bk.med("libmesh", "openssl", "1.2", "full_per_cpu_s") /
        bk.med("libmesh", "mbedtls", "1.2", "full_per_cpu_s")) if len(bk.backends) == 2 else "as s_time's"
    st = [(v, bk.med("s_time", "openssl", v, "resumed_per_cpu_s") /
           bk.med("s_time", "openssl", v, "full_per_cpu_s"))
          for v in ("1.2", "1.3") if bk.has("s_time", "openssl", v)]
    # what the resumed rows say, from the figures (not a fixed sentence)
    rr = [bk.ratio("openssl", v, "resumed")[0] for v in ("1.2", "1.3")
          if bk.has("libmesh", "openssl", v) and bk.has("s_time", "openssl", v)]
    if rr and min(rr) >= 1:
        rate = "resumes at s_time's rate or better"
    elif rr:
        rate = (f"resumes at {min(rr):.2f}–{max(rr):.2f}× s_time's rate" if len(rr) > 1
                else f"resumes at {rr[0]:.2f}× s_time's rate")
    else:
        rate = "resumes (no s_time figure)"
    r13 = [bk.med(s_, b_, "1.3", "resumed_per_cpu_s") / bk.med(s_, b_, "1.3", "full_per_cpu_s")
           for s_, b_ in (("libmesh", "openssl"), ("s_time", "openssl")) if bk.has(s_, b_, "1.3")]
    L.append("")
    L.append("For comparison, `openssl s_time` resumed ÷ full per CPU s: " +
             ", ".join(f"TLS {v} {x:.1f}×" for v, x in st) +
             ". With OpenSSL the ratio is low because its full handshake is cheap "
             f"({fullx}), not because "
             f"resumption is slow: libmesh on OpenSSL {rate} "
             "(table above). A TLS 1.3 resumption (psk_dhe_ke, the only "
             "mode OpenSSL and libmesh offer) still does an ECDHE exchange" +
             (", so no TLS 1.3 stack here reaches 8×." if r13 and max(r13) < 8 else "."))
    return block("handshakes", L)


def backends_memory_block(bk, same_run):
    L = ["### Bytes per idle pooled connection, per TLS backend", "",
         "`micro --only idle --tls V` of each build (the figure of the table "
         "above, in a freshly forked process: 65 calls in flight dial 65 "
         "connections to a server in another process, then 64 are idle in the "
         "pool; client side). These connections carried no request: on the "
         "OpenSSL backend a pooled client connection that did keeps its record "
         "buffers while pooled and gives them back once a pool sweep finds it "
         "idle for 1 s (≤ ~2 s after its last request; how much, in section "
         "\"Where the 16-connection gap goes\"), so after a request it holds "
         "more than this for those seconds and then this. mbedTLS 2.28 "
         "allocates its two record buffers with the connection and keeps them, "
         "so its figure includes them. " + bk.provenance(same_run, short=True), "",
         "| backend | TLS | bytes per idle pooled connection | RSS per connection | target | met |",
         "|---|---|--:|--:|---|---|"]
    for be in bk.backends:
        for v in ("1.2", "1.3"):
            b = bk.med("libmesh", be, v, "bytes_per_idle_conn")
            if b != b:
                continue
            lo, hi = bk.spread("libmesh", be, v, "bytes_per_idle_conn")
            L.append(f"| {BK_NAMES[be]} | {v} | **{fmt(b)} B = {b / 1024:.1f} KiB** "
                     f"(runs {fmt(lo)} … {fmt(hi)}) | "
                     f"{fmt(bk.med('libmesh', be, v, 'rss_per_idle_conn_kib'))} KiB | ≤ 40 KiB | {yes(b <= 40 * 1024)} |")
    return block("memory", L)


def splice(md, bk, same_run=False):
    """Replace (or insert) the per-backend blocks of an existing page and
    recount the Summary heading; everything else is left as it is."""
    with open(md) as f:
        text = f.read()
    blocks = [("summary", backends_summary_block(bk, same_run), "## 1. "),
              ("syscalls", backends_syscalls_block(bk, same_run), "## 2. "),
              ("handshakes", backends_handshakes_block(bk, same_run), "## 3. "),
              ("memory", backends_memory_block(bk, same_run), "## 5. ")]
    for name, lines, before in blocks:
        begin = f"<!-- bench/run backends: {name} begin -->"
        end = f"<!-- bench/run backends: {name} end -->"
        new = "\n".join(lines)
        if begin in text and end in text:
            a = text.index(begin)
            b = text.index(end) + len(end)
            b = b + 1 if text[b:b + 1] == "\n" else b
            b = b + 1 if text[b:b + 1] == "\n" else b
            text = text[:a] + new + "\n" + text[b:]
        elif lines:
            at = text.index("\n" + before) + 1
            text = text[:at] + new + "\n" + text[at:]
    # recount: every table row of the Summary whose last cell is met/not met
    a = text.index("## Summary")
    b = text.index("\n## 1. ", a)
    cells = [r.strip().strip("|").split("|")[-1].strip()
             for r in text[a:b].splitlines() if r.startswith("| ") and not r.startswith("| part |")]
    met = sum(1 for c in cells if c == "**yes**")
    n = sum(1 for c in cells if c in ("**yes**", "**no**", "–"))
    eol = text.index("\n", a)
    text = text[:a] + f"## Summary: {met} of {n} targets met" + text[eol:]
    with open(md, "w") as f:
        f.write(text)
    print(f"updated {md}: per-backend blocks, {met} of {n} targets met")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rr")
    ap.add_argument("--micro")
    ap.add_argument("--out")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--duration")
    ap.add_argument("--rate")
    ap.add_argument("--conns")
    ap.add_argument("--size")
    ap.add_argument("--load-start", default="?")
    ap.add_argument("--load-end", default="?")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--build-ossl", help="BUILD_OSSL of the run (Co, Con)")
    ap.add_argument("--md", help="output page (default: OUT/../benchmarks.md)")
    ap.add_argument("--backends", help="backends.csv of bench/backends.sh: per-backend blocks")
    ap.add_argument("--splice", metavar="MD", help="only replace the per-backend blocks "
                    "of this existing page with --backends' figures (bench/run --backends)")
    a = ap.parse_args()
    if a.splice:
        if not a.backends:
            ap.error("--splice needs --backends")
        splice(a.splice, Backends(a.backends))
        return
    if not (a.rr and a.micro and a.out):
        ap.error("--rr, --micro and --out are required (or --splice and --backends)")
    rows = load_rr(a.rr)
    micro = load_micro(a.micro)
    mc = machine()
    path = a.md or os.path.normpath(os.path.join(a.out, "../benchmarks.md"))
    LINK_BASE[0] = os.path.relpath(a.out, os.path.dirname(os.path.abspath(path)))
    L = []
    L.append("# Benchmarks\n")
    envs = f"BUILD_OSSL={a.build_ossl} " if a.build_ossl else ""
    L.append("Made by `bench/run` (`%sRUNS=%s DURATION=%s bench/run`), every "
             "configuration side by side in one run on one machine. Figures "
             "are medians of %s runs (%s s each for part 1); ratios are "
             "against baselines measured in the same run. Raw data: "
             f"[`rr.csv`]({LINK_BASE[0]}/rr.csv) (one line per run) and "
             f"[`micro.csv`]({LINK_BASE[0]}/micro.csv). The comparison "
             "figures quoted by the issue (Istio, Linkerd, Envoy) are "
             "published numbers, not measured here.\n"
             % (envs, a.runs, a.duration, a.runs, a.duration))
    L.append("| | |")
    L.append("|---|---|")
    L.append(f"| date | {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC |")
    L.append(f"| machine | {mc['cpu']}, {mc['cores']} cores, Linux {mc['kernel']} |")
    L.append(f"| load average (1, 5, 15 min) | {a.load_start} at the start, {a.load_end} at the end: "
             "the machine is shared with other builds and tests, so latency tails and "
             "two-thread figures carry that noise; micro benchmarks time thread CPU, "
             "not wall clock |")
    L.append(f"| libraries | mbedTLS {mc['mbedtls']} (libmesh, B), {mc['openssl']} (D, s_time), {mc['haproxy']} |")
    L.append("")
    body = []
    pngs = section_rr(body, rows, a, a.out)
    section_targets(body, rows, micro)
    section_micro(body, micro, a.out)
    met = sum(1 for x in SUMMARY if x[3])
    L.append(f"## Summary: {met} of {len(SUMMARY)} targets met\n")
    L.append("Each target of the issue, where it is measured below, and what the "
             "last section says about the ones not met.\n")
    L.append("| part | target | measured | met |")
    L.append("|---|---|---|---|")
    for part, target, measured, ok in sorted(SUMMARY, key=lambda x: x[0]):
        L.append(f"| {part} | {target} | {measured} | {yes(ok)} |")
    L.append("")
    L.extend(body)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(here, "analysis.md")) as f:
            L.append(f.read())
    except OSError:
        pass
    path = a.md or os.path.normpath(os.path.join(a.out, "../benchmarks.md"))
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    if a.backends:
        splice(path, Backends(a.backends), same_run=True)
    print(f"wrote {path} and {len(pngs) + 1} plots")


if __name__ == "__main__":
    main()
