# SPDX-License-Identifier: Apache-2.0
"""Per-cluster resilience, end to end: the scripted management server
(tests/xds/cp.py) serves listener "web" whose route "/split" splits 50/50
between clusters web-a and web-b (plus "/a" and "/b" naming each alone, to
tell the clusters' backends apart).  CDS gives the two clusters different
settings, as Envoy keeps them per cluster:

  web-a: circuit_breakers max_requests 1, outlier_detection
         consecutive_5xx 3, connect_timeout 250 ms
  web-b: Envoy's defaults (1024), no outlier detection, connect_timeout 3 s

Real mTLS backends on loopback (tests/xds_routes_tool, mesh_http_call),
three EDS phases: slow backends (4 threads on /split: only web-a's calls
are refused by a breaker), one failing backend in each cluster (web-a's is
ejected, web-b's never), blackhole listeners that accept at the TCP level
and never answer the handshake (each cluster times out at its own connect
timeout).  With one setting per service (the first cluster's for both,
the previous behaviour) the breaker, ejection and timeout checks fail.
The tool's admin endpoint is scraped after the breaker and outlier
phases: /metrics carries the refusals and ejections per cluster
(mesh_cluster_* families, label cluster; promtool checks the text) and
/resilience shows each cluster's thresholds, counters, outlier settings,
ejected hosts and connect timeout.
Exit 0 = pass."""
import atexit
import json
import os
import shutil
import re
import socket
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp  # noqa: E402
import linetool  # noqa: E402

BUILD = os.environ.get('TEST_BUILDDIR', '.')
BACKENDS = ['a-slow:slow:150', 'b-slow:slow:150', 'a-err:error', 'a-ok:good',
            'b-err:error', 'b-ok:good']
checks = []


def check(name, ok, detail=''):
    checks.append(ok)
    print('%s %s %s' % ('ok  ' if ok else 'FAIL', name, detail if not ok else ''))
    sys.stdout.flush()


def clusters(plane):
    a = cp.cluster('web-a')
    a.circuit_breakers.thresholds.add().max_requests.value = 1
    a.outlier_detection.consecutive_5xx.value = 3
    a.outlier_detection.max_ejection_percent.value = 50
    a.connect_timeout.nanos = 250 * 1000000
    plane.set(cp.CDS, a)
    b = cp.cluster('web-b')
    b.connect_timeout.seconds = 3
    plane.set(cp.CDS, b)


def routes():
    return cp.route_config('web-routes', [(['web'], [
        {'name': 'a', 'prefix': '/a', 'cluster': 'web-a'},
        {'name': 'b', 'prefix': '/b', 'cluster': 'web-b'},
        {'name': 'split', 'prefix': '/split', 'split': [('web-a', 50), ('web-b', 50)]}])])


def endpoints(plane, a, b):
    plane.set(cp.EDS, cp.cla('web-a', [('z', 0, 1, a)]))
    plane.set(cp.EDS, cp.cla('web-b', [('z', 0, 1, b)]))
    plane.push()
    return cp.acked(plane, plane.version, [cp.EDS])


def breakers(tool):
    tool.cmd('start 4 /split/x')
    tool.cmd('count 8')  # threads under way
    r = tool.cmd('count 200')
    opened = r.get('open', {})
    check('breakers: 4 threads on the split route, web-a (max_requests 1) refused %d, '
          'web-b (1024) refused %d; web-b answered %d of %d'
          % (opened.get('web-a', 0), opened.get('web-b', 0), r['by']['b-slow'], r['calls']),
          opened.get('web-a', 0) > 0 and opened.get('web-b', 0) == 0 and
          r['by']['b-slow'] > 0 and
          r['failed'] == r['errors'].get('MESH_ERR_CIRCUIT_OPEN', 0), r)
    return opened.get('web-a', 0)


def outliers(tool):
    r = tool.cmd('http /split/x - 80')
    check('outlier: 80 calls on the split route, %d failed with 503' % r['failed'],
          r['failed'] == r['codes'].get('503', 0) and r['failed'] > 0, r)
    a = tool.cmd('http /a - 30')
    check('web-a (consecutive_5xx 3) ejected its failing backend: 0 of 30 failed, '
          'a-ok %d' % a['by']['a-ok'], a['failed'] == 0 and a['by']['a-ok'] == 30, a)
    b = tool.cmd('http /b - 40')
    check('web-b (no outlier detection) never ejects its failing backend: %d of 40 '
          'failed with 503 (10..30), b-ok %d' % (b['failed'], b['by']['b-ok']),
          10 <= b['failed'] <= 30 and b['codes'].get('503', 0) == b['failed'] and
          b['by']['b-ok'] == 40 - b['failed'], b)


def timeouts(tool):
    a = tool.cmd('http /a - 3')
    errs = a['errors']
    check('connect timeout of web-a (250 ms) on a blackhole: 3 of 3 timed out, max %d ms '
          '(< 2500)' % a['ms_max'],
          a['failed'] == 3 and errs.get('MESH_ERR_TIMEOUT', 0) == 3 and a['ms_max'] < 2500, a)
    b = tool.cmd('http /b - 1')
    check('connect timeout of web-b (3 s) on a blackhole: %d ms (>= 2990)' % b['ms_max'],
          b['failed'] == 1 and b['errors'].get('MESH_ERR_TIMEOUT', 0) == 1 and
          b['ms_max'] >= 2990, b)
    s = tool.cmd('http /split/x - 6')
    check('the split route: each call times out at its cluster\'s timeout (6 of 6)',
          s['failed'] == 6 and s['errors'].get('MESH_ERR_TIMEOUT', 0) == 6, s)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_tool(boot):
    """The tool with its admin endpoint on a free loopback port."""
    admin = '127.0.0.1:%d' % free_port()
    os.environ['XDS_TOOL_ADMIN'] = admin
    tool = linetool.Tool([os.path.join(BUILD, 'tests', 'xds_routes_tool'), boot] + BACKENDS,
                         timeout=120)
    return tool, admin


def admin_get(admin, path):
    with urllib.request.urlopen('http://%s%s' % (admin, path), timeout=10) as r:
        return r.read().decode()


SERIES = re.compile(r'^([a-z_]+)\{([^}]*)\} (\S+)$')


def scrape(admin):
    """/metrics as {(name, frozenset of label pairs): value}, and the text."""
    text = admin_get(admin, '/metrics')
    out = {}
    for line in text.splitlines():
        m = SERIES.match(line)
        if m:
            labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            out[(m.group(1), labels)] = float(m.group(3))
    return out, text


def val(mx, name, **labels):
    return mx.get((name, frozenset(labels.items())), -1)


def promtool(text):
    if not shutil.which('promtool'):
        print('skip promtool check (not installed: Debian prometheus); not counted')
        return
    p = subprocess.run(['promtool', 'check', 'metrics'], input=text, text=True,
                       capture_output=True)
    check('promtool accepts the scraped /metrics', p.returncode == 0, p.stdout + p.stderr)


def cluster_view(admin):
    doc = json.loads(admin_get(admin, '/resilience'))
    web = [s for s in doc['services'] if s['name'] == 'web'][0]
    return web, {c['name']: c for c in web['clusters']}


OVF = 'mesh_cluster_circuit_breaker_overflows_total'
EJF = 'mesh_cluster_outlier_ejections_total'
LIMITS = ['connections', 'pending', 'requests', 'retries']
REASONS = ['consecutive_5xx', 'consecutive_gateway_failure', 'success_rate',
           'failure_percentage']


def breaker_series(admin, refused_a):
    mx, text = scrape(admin)
    a = val(mx, OVF, service='web', cluster='web-a', limit='requests')
    b = [val(mx, OVF, service='web', cluster='web-b', limit=k) for k in LIMITS]
    svc = [val(mx, 'mesh_circuit_breaker_overflows_total', service='web', limit=k)
           for k in LIMITS]
    check('/metrics: web-a requests overflows %d >= %d refused seen by the tool; '
          'web-b 0 for every limit %s; the service-wide series stay 0 %s' % (a, refused_a, b, svc),
          a >= refused_a > 0 and b == [0, 0, 0, 0] and svc == [0, 0, 0, 0], text)
    promtool(text)
    web, cl = cluster_view(admin)
    va, vb = cl.get('web-a', {}), cl.get('web-b', {})
    check('/resilience: web-a max_requests 1, connect 250 ms, consecutive_5xx 3, '
          'requests in use <= 1, overflows.requests %s >= %d; web-b max_requests 1024, '
          'connect 3000 ms, no outlier detection'
          % (va.get('overflows', {}).get('requests'), refused_a),
          web.get('cluster_label') == 'xds.cluster' and
          va.get('circuit_breakers', {}).get('max_requests') == 1 and
          va.get('connect_timeout_ms') == 250 and
          va.get('outlier_detection', {}).get('consecutive_5xx') == 3 and
          va.get('in_use', {}).get('requests', 9) <= 1 and
          va.get('overflows', {}).get('requests', 0) >= refused_a and
          va.get('weight', 0) + vb.get('weight', 0) > 0 and
          vb.get('circuit_breakers', {}).get('max_requests') == 1024 and
          vb.get('connect_timeout_ms') == 3000 and
          vb.get('outlier_detection', {}).get('enabled') is False and
          vb.get('overflows', {}).get('requests') == 0, web)


def ejection_series(admin, ports):
    mx, text = scrape(admin)
    a = val(mx, EJF, service='web', cluster='web-a', reason='consecutive_5xx')
    b = [val(mx, EJF, service='web', cluster='web-b', reason=k) for k in REASONS]
    svc = [val(mx, 'mesh_outlier_ejections_total', service='web', reason=k) for k in REASONS]
    check('/metrics: web-a consecutive_5xx ejections %d (1); web-b %s (0); service-wide %s (0)'
          % (a, b, svc), a == 1 and b == [0, 0, 0, 0] and svc == [0, 0, 0, 0], text)
    promtool(text)
    web, cl = cluster_view(admin)
    ea = cl.get('web-a', {}).get('ejected', [])
    eb = cl.get('web-b', {}).get('ejected', None)
    check('/resilience: web-a ejected %s (a-err, port %d), ejections_active 1; web-b none'
          % (ea, ports['a-err']),
          len(ea) == 1 and ea[0].endswith(':%d' % ports['a-err']) and
          cl['web-a'].get('ejections_active') == 1 and eb == [] and
          cl['web-b'].get('ejections_active') == 0, web)


def blackhole():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(8)  # never accepted: the kernel completes the TCP handshake
    return s


def main():
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    plane = cp.ControlPlane()
    port = plane.start()
    boot = os.path.join(tmp, 'bootstrap.json')
    with open(boot, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port,
                                    'channel_creds': [{'type': 'insecure'}]}],
                   'node': {'id': 'libmesh-clusterrs'}}, f)
    tool, admin = start_tool(boot)
    holes = [blackhole(), blackhole()]
    try:
        ports = tool.next(60)['ports']
        ep = lambda *names: [('127.0.0.1', ports[n]) for n in names]  # noqa: E731
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, routes())
        clusters(plane)
        ok = endpoints(plane, ep('a-slow'), ep('b-slow'))
        check('phase 1 ACKed, both clusters\' endpoints in the service',
              ok and tool.cmd('ready 2')['endpoints'] == 2)
        refused_a = breakers(tool)
        breaker_series(admin, refused_a)
        tool.stop()  # threads stop with the tool: a new one for the next phases
        tool, admin = start_tool(boot)
        ports = tool.next(60)['ports']
        ok = endpoints(plane, ep('a-err', 'a-ok'), ep('b-err', 'b-ok'))
        check('phase 2 ACKed', ok and tool.cmd('ready 4')['endpoints'] == 4)
        outliers(tool)
        ejection_series(admin, ports)
        hp = [h.getsockname()[1] for h in holes]
        ok = endpoints(plane, [('127.0.0.1', hp[0])], [('127.0.0.1', hp[1])])
        check('phase 3 ACKed', ok and tool.cmd('ready 2')['endpoints'] == 2)
        timeouts(tool)
    finally:
        tool.stop()
        plane.stop()
        for h in holes:
            h.close()
    failed = checks.count(False)
    print('xds per-cluster resilience: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
