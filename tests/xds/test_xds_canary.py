# SPDX-License-Identifier: Apache-2.0
"""A canary shifted live through xDS, as Istio does it: the listener "web"
routes to weighted clusters web-v1 / web-v2, and the scripted management
server (tests/xds/cp.py) moves the split 90/10 -> 50/50 -> 0/100, adds a
backend to web-v2, and changes a CDS setting (circuit breaker
max_requests), while threads of tests/xds_canary_tool call real mTLS
backends through libmesh.  Asserted: the observed split of each phase
(bounded counts: a window of N calls, a binomial tolerance), zero failed
calls across every switch, the new backend served, and the breaker
threshold in force (then lifted); then the control plane is killed
(calls go on, none fails) and a new one on the same port serves a
100/0 split, which arrives with no call failing.  Exit 0 = pass."""
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
WINDOW = 1000
checks = []


def check(name, ok, detail=''):
    checks.append(ok)
    print('%s %s %s' % ('ok  ' if ok else 'FAIL', name, detail))
    sys.stdout.flush()


def Tool(boot):
    return linetool.Tool([os.path.join(BUILD, 'tests', 'xds_canary_tool'), boot],
                         timeout=90)


def breakers(c, max_requests):
    t = c.circuit_breakers.thresholds.add()
    t.max_requests.value = max_requests
    return c


def clusters(plane, max_requests=None):
    for name in ('web-v1', 'web-v2'):
        c = cp.cluster(name)
        c.lb_policy = cp.cluster_pb2.Cluster.LEAST_REQUEST
        c.connect_timeout.seconds = 2
        c.outlier_detection.consecutive_5xx.value = 5
        if max_requests is not None:
            breakers(c, max_requests)
        plane.set(cp.CDS, c)


def share(r, prefix):
    return sum(n for k, n in r['by'].items() if k.startswith(prefix))


def phase(plane, tool, split, lo2, hi2):
    """Push split [(cluster, weight)], wait for the ACK, drop the calls in
    flight, then count WINDOW calls: web-v2's count in [lo2, hi2]."""
    plane.set(cp.RDS, cp.routes('web-routes', split))
    plane.push()
    ok = cp.acked(plane, plane.version, [cp.RDS])
    tool.cmd('count %d' % (4 * THREADS))  # calls that picked before the ACK
    r = tool.cmd('count %d' % WINDOW)
    v2 = share(r, 'v2')
    check('split %s: web-v2 served %d of %d (accepted %d..%d), no call failed' %
          ('/'.join(str(w) for _, w in split), v2, r['calls'], lo2, hi2),
          ok and r['calls'] >= WINDOW and lo2 <= v2 <= hi2 and r['failed'] == 0,
          '' if r['failed'] == 0 else r['last_error'])
    return r


def main():
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    plane = cp.ControlPlane()
    port = plane.start()
    boot = os.path.join(tmp, 'bootstrap.json')
    with open(boot, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port,
                                    'channel_creds': [{'type': 'insecure'}]}],
                   'node': {'id': 'libmesh-canary'}}, f)
    tool = Tool(boot)
    plane2 = None
    try:
        ports = tool.next(60)['ports']
        ep = lambda *names: [('127.0.0.1', ports[n]) for n in names]  # noqa: E731
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, cp.routes('web-routes', [('web-v1', 90), ('web-v2', 10)]))
        clusters(plane)
        plane.set(cp.EDS, cp.cla('web-v1', [('a', 0, 1, ep('v1-a', 'v1-b'))]))
        plane.set(cp.EDS, cp.cla('web-v2', [('a', 0, 1, ep('v2-a'))]))
        plane.push()
        check('both clusters\' endpoints in the service', tool.cmd('ready 3')['endpoints'] == 3)
        tool.cmd('start %d' % THREADS)
        # binomial, n = 1000: 90/10 sd 9.5, 50/50 sd 15.8; about 5 sd each way
        r = tool.cmd('count %d' % WINDOW)
        v2 = share(r, 'v2')
        check('split 90/10: web-v2 served %d of %d (accepted 50..150), no call failed' % (v2, r['calls']),
              r['calls'] >= WINDOW and 50 <= v2 <= 150 and r['failed'] == 0, r['last_error'])
        phase(plane, tool, [('web-v1', 50), ('web-v2', 50)], 420, 580)
        r = phase(plane, tool, [('web-v1', 0), ('web-v2', 100)], WINDOW, 10 ** 9)
        check('0/100: web-v1 served none', share(r, 'v1') == 0)
        # a backend added to the canary: EDS only
        plane.set(cp.EDS, cp.cla('web-v2', [('a', 0, 1, ep('v2-a', 'v2-b'))]))
        plane.push()
        ok = cp.acked(plane, plane.version, [cp.EDS])
        tool.cmd('count %d' % (4 * THREADS))
        r = tool.cmd('count %d' % WINDOW)
        check('backend v2-b added: both web-v2 backends serve (v2-a %d, v2-b %d)' %
              (r['by']['v2-a'], r['by']['v2-b']),
              ok and r['by']['v2-a'] >= 200 and r['by']['v2-b'] >= 200 and r['failed'] == 0,
              r['last_error'])
        view = tool.cmd('view')
        applied = view.get('services', {}).get('web', {}).get('applied', {})
        check('view: applied lb policy and split from CDS/RDS',
              applied.get('lb', {}).get('policy') == 'least_request' and
              [e['weight'] for e in applied.get('split', [])] == [0, 100], json.dumps(applied))
        check('no call failed across the switches', r['failed_total'] == 0,
              '(%d failed)' % r['failed_total'])
        # CDS live: max_requests 1 with 4 threads calling -> the breaker
        # refuses some calls; back to the default -> none refused
        clusters(plane, max_requests=1)
        plane.push()
        ok = cp.acked(plane, plane.version, [cp.CDS])
        r = tool.cmd('count %d' % 400)
        check('CDS circuit_breakers max_requests=1 in force: %d of %d calls refused' %
              (r['failed'], r['calls']),
              ok and r['failed'] > 0 and 'max_requests' in r['last_error'], r['last_error'])
        clusters(plane)
        plane.push()
        ok = cp.acked(plane, plane.version, [cp.CDS])
        tool.cmd('count %d' % (4 * THREADS))
        r = tool.cmd('count %d' % 400)
        check('CDS thresholds back to the defaults: no call refused', ok and r['failed'] == 0,
              r['last_error'])
        # the control plane killed mid-run: calls go on as configured (fail
        # static); a new one on the same port: its state arrives.  (The
        # breaker phase's refusals were wanted: count failures after it.)
        refused = r['failed_total']
        plane.stop()
        r = tool.cmd('count %d' % 600)
        check('control plane down: %d calls, none failed, still 0/100' % r['calls'],
              r['calls'] >= 600 and r['failed'] == 0 and share(r, 'v1') == 0, r['last_error'])
        plane2 = cp.ControlPlane()
        plane2.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane2.set(cp.RDS, cp.routes('web-routes', [('web-v1', 100), ('web-v2', 0)]))
        clusters(plane2)
        plane2.set(cp.EDS, cp.cla('web-v1', [('a', 0, 1, ep('v1-a', 'v1-b'))]))
        plane2.set(cp.EDS, cp.cla('web-v2', [('a', 0, 1, ep('v2-a', 'v2-b'))]))
        plane2.start(port)
        ok = cp.acked(plane2, plane2.version, [cp.RDS], timeout=40)
        tool.cmd('count %d' % (4 * THREADS))
        r = tool.cmd('count %d' % WINDOW)
        check('restarted control plane: its split 100/0 arrives (web-v1 %d of %d), no call failed'
              % (share(r, 'v1'), r['calls']),
              ok and share(r, 'v1') == r['calls'] and r['failed'] == 0 and
              r['failed_total'] == refused,
              r['last_error'] or '(%d failed since the breaker phase)' % (r['failed_total'] - refused))
    finally:
        tool.stop()
        plane.stop()
        if plane2:
            plane2.stop()
    failed = checks.count(False)
    print('xds canary: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
