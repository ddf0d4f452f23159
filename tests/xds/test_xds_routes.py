# SPDX-License-Identifier: Apache-2.0
"""The RDS route table applied per request, end to end: the scripted
management server (tests/xds/cp.py) serves listener "web" whose route
configuration has a decoy virtual host, the "web" one and a "*" one; the
"web" host routes by path prefix, exact path, case-insensitive regex and a
header to four clusters of real mTLS backends (tests/xds_routes_tool,
mesh_http_call).  Asserted: each path lands on its cluster's backend; the
header-matched route wins over the plain one; a route with a retry policy
turns a half-failing cluster into zero failures while the same cluster
without one fails; a route timeout cuts a slow backend; a weighted split
inside one route; no route -> a clear error; then two route updates while
4 threads call (one removes a cluster from every route): zero failed
calls, and the new routes in force.  Exit 0 = pass."""
import atexit
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp  # noqa: E402
import linetool  # noqa: E402

BUILD = os.environ.get('TEST_BUILDDIR', '.')
THREADS = 4
BACKENDS = ['v1-a:good', 'v2-a:good', 'flaky-bad:error', 'flaky-good:good',
            'slow:slow:1000', 'rh-a:good', 'rh-b:good', 'rr-a:good', 'rr-b:good']
checks = []


def check(name, ok, detail=''):
    checks.append(ok)
    print('%s %s %s' % ('ok  ' if ok else 'FAIL', name, detail if not ok else ''))
    sys.stdout.flush()


def Tool(boot):
    return linetool.Tool([os.path.join(BUILD, 'tests', 'xds_routes_tool'), boot] + BACKENDS,
                         timeout=120)


def clusters(plane):
    for name in ('web-v1', 'web-v2', 'web-flaky', 'web-slow', 'web-rh', 'web-rr'):
        c = cp.cluster(name)
        if name == 'web-rh':  # its own lb policy; the others: round robin
            c.lb_policy = cp.cluster_pb2.Cluster.RING_HASH
        # no ejection: the flaky cluster's failing backend must stay in
        c.outlier_detection.consecutive_5xx.value = 1000000
        c.outlier_detection.enforcing_consecutive_5xx.value = 0
        c.outlier_detection.enforcing_success_rate.value = 0
        plane.set(cp.CDS, c)


def web_routes(api, split, extra=True):
    rts = [{'name': 'canary-header', 'prefix': '/api', 'headers': [('x-canary', 'yes')],
            'cluster': 'web-v2'},
           {'name': 'api', 'prefix': '/api', 'cluster': api},
           {'name': 'retry', 'path': '/retry', 'cluster': 'web-flaky',
            'retry': ('5xx', 2)},
           {'name': 'noretry', 'path': '/noretry', 'cluster': 'web-flaky'},
           {'name': 'slow', 'prefix': '/slow', 'cluster': 'web-slow', 'timeout_ms': 300},
           {'name': 'split', 'prefix': '/split', 'split': split}]
    if extra:
        rts.append({'name': 'regex', 'regex': '/re[a-z]+', 'case_sensitive': False,
                    'cluster': 'web-v2'})
    rts.append({'name': 'rh', 'prefix': '/rh', 'cluster': 'web-rh', 'hash_header': 'x-user'})
    rts.append({'name': 'rr', 'prefix': '/rr', 'cluster': 'web-rr', 'hash_header': 'x-user'})
    return cp.route_config('web-routes', [
        (['other.example'], [{'prefix': '', 'cluster': 'web-slow'}]),
        (['web', 'web.example'], rts),
        (['*'], [{'prefix': '', 'cluster': 'web-slow'}])])


def only(r, backend, n):
    return r['calls'] == n and r['by'].get(backend) == n and r['failed'] == 0


def static_checks(tool):
    r = tool.cmd('http /api/x - 40')
    check('prefix /api -> web-v1 (v1-a %d of 40)' % r['by']['v1-a'], only(r, 'v1-a', 40), r)
    r = tool.cmd('http /api/x x-canary=yes 40')
    check('header x-canary: yes -> web-v2 (v2-a %d of 40)' % r['by']['v2-a'],
          only(r, 'v2-a', 40), r)
    r = tool.cmd('http /api/x x-canary=no 20')
    check('header with another value -> the plain route (web-v1)', only(r, 'v1-a', 20), r)
    r = tool.cmd('http /rEgEx - 20')
    check('case-insensitive safe_regex route -> web-v2', only(r, 'v2-a', 20), r)
    r = tool.cmd('http /retry - 60')
    check('route retry_policy 5xx x2: 0 of 60 failed on the half-failing cluster',
          r['calls'] == 60 and r['failed'] == 0 and r['by']['flaky-good'] == 60, r)
    r = tool.cmd('http /noretry - 60')
    check('same cluster, route without retry_policy: %d of 60 failed with 503' % r['failed'],
          r['failed'] >= 10 and r['codes'].get('503', 0) == r['failed'] and
          r['by']['flaky-good'] >= 10, r)
    r = tool.cmd('http /slow/x - 3')
    errs = r['errors']
    check('route timeout 300 ms vs a 1000 ms backend: 3 of 3 cut (%s, max %d ms)' %
          (','.join(errs), r['ms_max']),
          r['failed'] == 3 and r['ms_max'] < 950 and
          sum(errs.get(k, 0) for k in ('MESH_ERR_DEADLINE', 'MESH_ERR_TIMEOUT')) == 3, r)
    r = tool.cmd('http /split/x - 400')
    check('weighted clusters 50/50 inside one route: v1-a %d, v2-a %d of 400 (140..260 each)'
          % (r['by']['v1-a'], r['by']['v2-a']),
          r['failed'] == 0 and 140 <= r['by']['v1-a'] <= 260 and
          r['by']['v1-a'] + r['by']['v2-a'] == 400, r)
    # each cluster with its own CDS lb policy inside one service: web-rh
    # (RING_HASH) keeps a user on one backend, web-rr (round robin) does
    # not, though both routes hash on x-user
    sticky = True
    for user in ('alice', 'bob', 'carol', 'dave'):
        r = tool.cmd('http /rh x-user=%s 10' % user)
        sticky = sticky and r['failed'] == 0 and max(r['by']['rh-a'], r['by']['rh-b']) == 10
    r = tool.cmd('http /rr x-user=alice 20')
    check('per-cluster lb: ring_hash cluster keeps each of 4 users on one backend; the '
          'round robin cluster spreads one user (rr-a %d, rr-b %d of 20)'
          % (r['by']['rr-a'], r['by']['rr-b']),
          sticky and r['failed'] == 0 and r['by']['rr-a'] >= 5 and r['by']['rr-b'] >= 5, r)
    r = tool.cmd('http /nothing - 5')
    check('no route: 5 of 5 fail with MESH_ERR_NOT_FOUND "no route"',
          r['errors'].get('MESH_ERR_NOT_FOUND') == 5 and 'no route' in r['last_error'], r)


def live_update(plane, tool):
    tool.cmd('start %d /api/x /split/x' % THREADS)
    r = tool.cmd('count 400')
    check('4 threads calling: 0 of %d failed' % r['calls'], r['failed'] == 0, r)
    # /api moves to web-v2, the split to web-v1 only, the regex route goes
    plane.set(cp.RDS, web_routes('web-v2', [('web-v1', 100)], extra=False))
    plane.push()
    ok = cp.acked(plane, plane.version, [cp.RDS])
    tool.cmd('count %d' % (4 * THREADS))
    r = tool.cmd('count 600')
    check('route update 1 while calling: ACKed, 0 failed in %d calls' % r['calls'],
          ok and r['failed_total'] == 0, r)
    a = tool.cmd('http /api/x - 30')
    s = tool.cmd('http /split/x - 30')
    g = tool.cmd('http /regex - 3')
    check('update 1 in force: /api -> web-v2, /split -> web-v1, the removed /regex route '
          'has no match left in the "web" host (the "*" host is not consulted)',
          only(a, 'v2-a', 30) and only(s, 'v1-a', 30) and
          g['errors'].get('MESH_ERR_NOT_FOUND') == 3, [a, s, g])
    # web-v1 leaves every route: its hosts go while calls may hold a decision
    plane.set(cp.RDS, web_routes('web-v2', [('web-v2', 1)], extra=False))
    plane.push()
    ok = cp.acked(plane, plane.version, [cp.RDS])
    tool.cmd('count %d' % (4 * THREADS))
    r = tool.cmd('count 600')
    check('route update 2 (web-v1 named by no route) while calling: 0 failed in %d calls'
          % r['calls'], ok and r['failed_total'] == 0 and r['by']['v1-a'] == 0, r)


def main():
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    plane = cp.ControlPlane()
    port = plane.start()
    boot = os.path.join(tmp, 'bootstrap.json')
    with open(boot, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port,
                                    'channel_creds': [{'type': 'insecure'}]}],
                   'node': {'id': 'libmesh-routes'}}, f)
    tool = Tool(boot)
    try:
        ports = tool.next(60)['ports']
        ep = lambda *names: [('127.0.0.1', ports[n]) for n in names]  # noqa: E731
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, web_routes('web-v1', [('web-v1', 50), ('web-v2', 50)]))
        clusters(plane)
        plane.set(cp.EDS, cp.cla('web-v1', [('a', 0, 1, ep('v1-a'))]))
        plane.set(cp.EDS, cp.cla('web-v2', [('a', 0, 1, ep('v2-a'))]))
        plane.set(cp.EDS, cp.cla('web-flaky', [('a', 0, 1, ep('flaky-bad', 'flaky-good'))]))
        plane.set(cp.EDS, cp.cla('web-slow', [('a', 0, 1, ep('slow'))]))
        plane.set(cp.EDS, cp.cla('web-rh', [('a', 0, 1, ep('rh-a', 'rh-b'))]))
        plane.set(cp.EDS, cp.cla('web-rr', [('a', 0, 1, ep('rr-a', 'rr-b'))]))
        plane.push()
        check('the six clusters\' endpoints in the service',
              tool.cmd('ready 9')['endpoints'] == 9)
        view = tool.cmd('view')
        web = view.get('services', {}).get('web', {})
        check('view: 9 routes of the "web" virtual host in force', web.get('routes') == 9,
              json.dumps(web))
        static_checks(tool)
        live_update(plane, tool)
    finally:
        tool.stop()
        plane.stop()
    failed = checks.count(False)
    print('xds routes: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
