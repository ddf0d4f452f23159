# SPDX-License-Identifier: Apache-2.0
"""Names subscribed on first use and aggregate clusters, end to end: the
scripted management server (tests/xds/cp.py) and tests/xds_agg_tool, a
context with an "xds" section and no services at all, calling real mTLS
backends on loopback.

First use: "web" is not configured; the first call subscribes listener
"web" (then its route configuration, clusters, endpoints), waits for them
and succeeds; every type is ACKed.  "web" routes to the aggregate cluster
"agg" = [east, west] (gRFC A37): its calls go to east's backends; east's
endpoints UNHEALTHY -> every call to west; east's endpoints removed ->
west; east back -> east.  An aggregate that loops (itself as a child) and
one 17 clusters deep are NACKed with the reason while the calls keep
going where the last good config sends them; a chain of 16 is accepted.
gRPC's target form xds:///host:port works the same way.  A name the
control plane does not know fails fast with
MESH_ERR_UNKNOWN_SERVICE ("does not exist"); one it never answers fails
after resource_timeout_ms (A27's timer), not at the caller's deadline;
past first_use_max a new name fails at once with a message naming the
limit.  A name whose route names a cluster that does not exist (a
full-state CDS response without it, or A27's timer) fails when the control
plane says so, well before the caller's 20 s deadline: gRPC calls with
UNAVAILABLE naming the cluster, HTTP calls and dials with
MESH_ERR_UNKNOWN_SERVICE; once the cluster comes, the name works.  Exit 0 =
pass."""
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
BACKENDS = ['e1:good', 'e2:good', 'w1:good']
MAX_NAMES = 6
DNE_MS = 1500
checks = []


def check(name, ok, detail=''):
    checks.append(ok)
    print('%s %s %s' % ('ok  ' if ok else 'FAIL', name, detail if not ok else ''))
    sys.stdout.flush()


def east_west(r):
    return r['by']['e1'] + r['by']['e2'], r['by']['w1']


def nacked(plane, words, since, timeout=20):
    """A NACK whose error_detail contains words, after request index since."""
    end = time.time() + timeout
    while time.time() < end:
        with plane.lock:
            for rq in plane.requests[since:]:
                if rq.HasField('error_detail') and words in rq.error_detail.message:
                    return rq.error_detail.message
        time.sleep(0.05)
    return None


def settled(tool, clusters, timeout=20):
    """The view: every cluster named ACKED and "web" applied (nothing
    pending): a graph change takes one response per level, all with the
    same version, so an ACK of that version alone does not say it."""
    end = time.time() + timeout
    while time.time() < end:
        v = tool.cmd('view')
        web = v.get('first_use', {}).get('names', {}).get('web', {})
        res = v['types'][cp.CDS]['resources']
        if 'pending' not in web and all(res.get(c, {}).get('status') == 'ACKED'
                                        for c in clusters):
            return True
        time.sleep(0.05)
    return False


def push(plane):
    plane.push()
    return plane.version


def first_use(plane, tool):
    r = tool.cmd('call web 20 5000')
    e, w = east_west(r)
    check('first use: "web" (not configured) subscribed and called: %d of 20 to east, '
          'first call %d ms' % (e, r['ms_max']), r['failed'] == 0 and e == 20, r)
    check('first use: LDS, RDS, CDS and EDS ACKed',
          cp.acked(plane, plane.version, [cp.LDS, cp.RDS, cp.CDS, cp.EDS]))
    v = tool.cmd('view')
    st = v.get('first_use', {}).get('names', {}).get('web', {}).get('state')
    lds = v['types'][cp.LDS]['resources'].get('web', {}).get('status')
    check('view: first_use "web" ready, listener ACKED', st == 'ready' and lds == 'ACKED',
          json.dumps(v.get('first_use')))


def failover(plane, tool, ep):
    def east(health=None, eps=True):
        plane.set(cp.EDS, cp.cla('east', [('a', 0, 1, ep('e1', 'e2') if eps else [])], health))

    east(cp.endpoint_pb2.UNHEALTHY)
    ok = cp.acked(plane, push(plane), [cp.EDS])
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('aggregate: east UNHEALTHY -> west: %d of 20' % w, ok and w == 20 and e == 0)
    east(eps=False)
    ok = cp.acked(plane, push(plane), [cp.EDS])
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('aggregate: east\'s endpoints removed -> west: %d of 20' % w, ok and w == 20)
    east()
    ok = cp.acked(plane, push(plane), [cp.EDS])
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('aggregate: east back -> east: %d of 20' % e, ok and e == 20)


def bad_graphs(plane, tool):
    since = len(plane.requests)
    plane.set(cp.CDS, cp.aggregate('agg', ['agg', 'west']))
    push(plane)
    msg = nacked(plane, 'loop', since)
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('aggregate listing itself: NACKed (%s); calls still to east: %d of 20' % (msg, e),
          msg is not None and 'agg' in msg and e == 20)
    # a chain of 16 clusters (agg, c1..c14, west) is accepted; 17 is not
    chain = ['c%d' % i for i in range(1, 16)]
    for i, name in enumerate(chain):
        plane.set(cp.CDS, cp.aggregate(name, [chain[i + 1] if i + 1 < len(chain) else 'west']))
    plane.set(cp.CDS, cp.aggregate('agg', ['c2']))  # agg c2..c15 west: 16
    push(plane)
    ok = settled(tool, ['agg'] + chain[1:] + ['west'])
    since = len(plane.requests)
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('a chain of 16 clusters accepted: calls to west %d of 20' % w, ok and w == 20)
    plane.set(cp.CDS, cp.aggregate('agg', ['c1']))  # agg c1..c15 west: 17
    push(plane)
    msg = nacked(plane, 'deeper than 16', since)
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('a chain of 17 clusters NACKed (%s); calls still to west: %d of 20' % (msg, w),
          msg is not None and w == 20)
    plane.set(cp.CDS, cp.aggregate('agg', ['east', 'west']))
    push(plane)
    ok = settled(tool, ['agg', 'east', 'west'])
    e, w = east_west(tool.cmd('call web 20 3000'))
    check('good aggregate again: ACKed, calls to east %d of 20' % e, ok and e == 20)


def target_form(plane, tool):
    """gRPC's xds:///NAME, with an Istio-style host:port listener name."""
    plane.set(cp.LDS, cp.listener('web.example:8080', 'web-routes'))
    push(plane)
    r = tool.cmd('call xds:///web.example:8080 20 5000')
    e, w = east_west(r)
    v = tool.cmd('view')
    lds = v['types'][cp.LDS]['resources'].get('web.example:8080', {}).get('status')
    check('xds:///web.example:8080: listener "web.example:8080" subscribed (%s), 20 of 20 '
          'to east (%d)' % (lds, e), r['failed'] == 0 and e == 20 and lds == 'ACKED', r)
    r = tool.cmd('dial xds:///web.example:8080 5000')
    check('mesh_dial("xds:///web.example:8080"): %s' % r['code'], r['code'] == 'MESH_OK', r)


def missing_clusters(plane, tool, ep):
    """First-use names whose route names a cluster the control plane does
    not have: full-state CDS without it (at once), or never answered (the
    resource_timeout_ms timer); either way well before the 20 s deadline."""
    plane.set(cp.LDS, cp.listener('ghost', 'ghost-routes'))
    plane.set(cp.RDS, cp.routes('ghost-routes', [('nocluster', 100)]))
    plane.set(cp.LDS, cp.listener('ghost2', 'ghost2-routes'))
    plane.set(cp.RDS, cp.routes('ghost2-routes', [('hushc', 100)]))
    push(plane)
    r = tool.cmd('grpc ghost 20000')
    check('gRPC, route to a cluster absent from the full-state CDS: UNAVAILABLE naming '
          'it in %d ms (< 10000; deadline 20000): %s' % (r['ms'], r['message']),
          r['code'] == 'MESH_ERR_GRPC_STATUS' and r['status'] == 14 and
          'cluster \'nocluster\' does not exist' in r['message'] and r['ms'] < 10000, r)
    r = tool.cmd('call ghost 1 20000')
    check('HTTP, the same name: MESH_ERR_UNKNOWN_SERVICE naming the cluster (%d ms)'
          % r['ms_max'], r['errors'].get('MESH_ERR_UNKNOWN_SERVICE') == 1 and
          'cluster \'nocluster\' does not exist' in r['last_error'] and
          r['ms_max'] < 10000, r)
    r = tool.cmd('dial ghost 20000')
    check('mesh_dial, the same name: %s' % r['code'],
          r['code'] == 'MESH_ERR_UNKNOWN_SERVICE' and 'nocluster' in r['error'], r)
    plane.set(cp.CDS, cp.cluster('nocluster'))
    plane.set(cp.EDS, cp.cla('nocluster', [('c', 0, 1, ep('w1'))]))
    push(plane)
    ok, r = False, None
    for _ in range(100):  # the verdict holds until CDS and EDS are in
        r = tool.cmd('call ghost 5 5000')
        if r['failed'] == 0:
            ok = r['by']['w1'] == 5
            break
        time.sleep(0.1)
    check('the cluster comes: "ghost" works (5 of 5 to w1)', ok, r)
    plane.silent.add('hushc')
    r = tool.cmd('call ghost2 1 20000')
    check('HTTP, route to a cluster never answered: does not exist after the %d ms '
          'timer (%d ms, < 10000; deadline 20000)' % (DNE_MS, r['ms_max']),
          r['errors'].get('MESH_ERR_UNKNOWN_SERVICE') == 1 and
          'cluster \'hushc\' does not exist' in r['last_error'] and
          DNE_MS - 100 <= r['ms_max'] < 10000, r)
    r = tool.cmd('grpc ghost2 20000')
    check('gRPC, the same name: UNAVAILABLE at once (%d ms): %s' % (r['ms'], r['message']),
          r['status'] == 14 and 'hushc' in r['message'] and r['ms'] < 10000, r)
    plane.silent.discard('hushc')


def unknown_names(plane, tool):
    r = tool.cmd('call nope 1 8000')
    check('unknown name: MESH_ERR_UNKNOWN_SERVICE "does not exist" in %d ms (< 3000)'
          % r['ms_max'], r['errors'].get('MESH_ERR_UNKNOWN_SERVICE') == 1 and
          'does not exist' in r['last_error'] and r['ms_max'] < 3000, r)
    plane.silent.add('hush')
    r = tool.cmd('dial hush 8000')
    check('a name never answered: does not exist after the %d ms timer (%d ms), before '
          'the 8000 ms dial timeout' % (DNE_MS, r['ms']),
          r['code'] == 'MESH_ERR_UNKNOWN_SERVICE' and 'does not exist' in r['error'] and
          DNE_MS - 100 <= r['ms'] < 7000, r)
    r = tool.cmd('call extra 1 8000')
    check('past first_use_max (%d): refused at once (%d ms): %s'
          % (MAX_NAMES, r['ms_max'], r['last_error']),
          r['errors'].get('MESH_ERR_UNKNOWN_SERVICE') == 1 and
          'first_use_max' in r['last_error'] and r['ms_max'] < 1000, r)
    r = tool.cmd('call web 5 3000')
    check('the names already subscribed keep working: %d of 5' % sum(east_west(r)),
          r['failed'] == 0, r)


def main():
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    plane = cp.ControlPlane()
    port = plane.start()
    boot = os.path.join(tmp, 'bootstrap.json')
    with open(boot, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port,
                                    'channel_creds': [{'type': 'insecure'}]}],
                   'node': {'id': 'libmesh-agg'}}, f)
    tool = linetool.Tool([os.path.join(BUILD, 'tests', 'xds_agg_tool'), boot,
                          str(MAX_NAMES), str(DNE_MS)] + BACKENDS, timeout=60)
    try:
        ports = tool.next(60)['ports']
        ep = lambda *names: [('127.0.0.1', ports[n]) for n in names]  # noqa: E731
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, cp.routes('web-routes', [('agg', 100)]))
        plane.set(cp.CDS, cp.aggregate('agg', ['east', 'west']))
        plane.set(cp.CDS, cp.cluster('east'))
        plane.set(cp.CDS, cp.cluster('west'))
        plane.set(cp.EDS, cp.cla('east', [('a', 0, 1, ep('e1', 'e2'))]))
        plane.set(cp.EDS, cp.cla('west', [('b', 0, 1, ep('w1'))]))
        plane.push()
        first_use(plane, tool)
        failover(plane, tool, ep)
        bad_graphs(plane, tool)
        target_form(plane, tool)
        missing_clusters(plane, tool, ep)
        unknown_names(plane, tool)
    finally:
        tool.stop()
        plane.stop()
    failed = checks.count(False)
    print('xds agg: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
