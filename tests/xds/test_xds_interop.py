# SPDX-License-Identifier: Apache-2.0
"""Reference consumer: gRPC's own xDS client (Debian python3-grpcio, xds:///
target with GRPC_XDS_BOOTSTRAP) against tests/xds/cp.py serving resources
built from libmesh/xds/proto.  Checks that gRPC accepts libmesh's .proto
field numbers (it ACKs every type and reaches the endpoints), follows a
push, and that libmesh's decoders (tests/xds_decode_tool) read the same
bytes as the same endpoints.  Exit 0 = pass."""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp  # noqa: E402

BUILD = os.environ.get('TEST_BUILDDIR', '.')


def backend(tag):
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                    options=[('grpc.so_reuseport', 0)])
    h = grpc.method_handlers_generic_handler('test.Echo', {
        'Who': grpc.unary_unary_rpc_method_handler(lambda req, ctx: tag.encode()),
        'WhoElse': grpc.unary_unary_rpc_method_handler(lambda req, ctx: tag.encode()),
        'Other': grpc.unary_unary_rpc_method_handler(lambda req, ctx: tag.encode())})
    s.add_generic_rpc_handlers((h,))
    port = s.add_insecure_port('127.0.0.1:0')
    s.start()
    return s, port


def calls(n, name='web'):
    seen = {}
    with grpc.insecure_channel('xds:///' + name) as ch:
        who = ch.unary_unary('/test.Echo/Who')
        for _ in range(n):
            r = who(b'', timeout=10).decode()
            seen[r] = seen.get(r, 0) + 1
    return seen


def grpc_route(method, header):
    """The backend gRPC's client reaches for one call, or the status."""
    md = (tuple(header.split('=', 1)),) if header else None
    with grpc.insecure_channel('xds:///web') as ch:
        try:
            return ch.unary_unary(method)(b'', timeout=10, metadata=md).decode()
        except grpc.RpcError as e:
            return e.code().name


def libmesh_routes(rds, cases):
    with tempfile.NamedTemporaryFile(suffix='.pb', delete=False) as f:
        f.write(rds.SerializeToString())
    args = [m + ('@' + h if h else '') for m, h in cases]
    out = subprocess.run([os.path.join(BUILD, 'tests', 'xds_decode_tool'), 'route', f.name,
                          'web'] + args, capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit('libmesh route failed: ' + out.stdout + out.stderr)
    return json.loads(out.stdout)


def libmesh_endpoints(url, msg):  # any resource type: the decoder's model
    with tempfile.NamedTemporaryFile(suffix='.pb', delete=False) as f:
        f.write(msg.SerializeToString())
    out = subprocess.run([os.path.join(BUILD, 'tests', 'xds_decode_tool'), url.rsplit('.', 1)[-1], f.name],
                         capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit('libmesh decode failed: ' + out.stdout + out.stderr)
    return json.loads(out.stdout)


def main():
    servers = []
    failures = 0
    try:
        b1, p1 = backend('b1')
        b2, p2 = backend('b2')
        b3, p3 = backend('b3')
        servers += [b1, b2, b3]
        plane = cp.ControlPlane()
        port = plane.start()
        tmp = tempfile.mkdtemp()
        atexit.register(shutil.rmtree, tmp, True)
        boot = os.path.join(tmp, 'bootstrap.json')
        with open(boot, 'w') as f:
            json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port,
                                        'channel_creds': [{'type': 'insecure'}],
                                        'server_features': ['xds_v3']}],
                       'node': {'id': 'interop', 'metadata': {'GENERATOR': 'grpc'}}}, f)
        os.environ['GRPC_XDS_BOOTSTRAP'] = boot
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, cp.routes('web-routes', [('web-cluster', 1)]))
        plane.set(cp.CDS, cp.cluster('web-cluster'))
        eds = cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', p1), ('127.0.0.1', p2)])])
        plane.set(cp.EDS, eds)
        seen = calls(40)
        print('grpc (p0: b1,b2):', seen)
        if set(seen) != {'b1', 'b2'}:
            failures += 1
        lm = libmesh_endpoints(cp.EDS, eds)
        print('libmesh decode:', lm)
        if sorted(e['port'] for e in lm['endpoints']) != sorted([p1, p2]):
            failures += 1
        # push: priority 0 is b3 alone, b1/b2 become priority 1 (failover set)
        eds = cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', p3)]),
                                      ('b', 1, 1, [('127.0.0.1', p1), ('127.0.0.1', p2)])])
        plane.set(cp.EDS, eds)
        plane.push()
        deadline = time.time() + 20
        while time.time() < deadline:
            seen = calls(10)
            if set(seen) == {'b3'}:
                break
            time.sleep(0.2)
        print('grpc after push (p0: b3):', seen)
        if set(seen) != {'b3'}:
            failures += 1
        lm = libmesh_endpoints(cp.EDS, eds)
        p0 = [e['port'] for e in lm['endpoints'] if e['priority'] == 0]
        print('libmesh decode after push:', lm)
        if p0 != [p3] or len(lm['endpoints']) != 3:
            failures += 1
        # weighted split (A28): web-cluster (b3) 1 : canary (b1) 3
        plane.set(cp.CDS, cp.cluster('canary'))
        plane.set(cp.EDS, cp.cla('canary', [('a', 0, 1, [('127.0.0.1', p1)])]))
        rds = cp.routes('web-routes', [('web-cluster', 1), ('canary', 3)])
        plane.set(cp.RDS, rds)
        plane.push()
        deadline = time.time() + 20
        while time.time() < deadline and 'b1' not in calls(10):
            time.sleep(0.2)
        seen = calls(400)
        share = seen.get('b1', 0) / 400.0
        print('grpc split web-cluster:canary = 1:3 ->', seen, 'canary share %.2f' % share)
        if not 0.6 <= share <= 0.9 or set(seen) != {'b1', 'b3'}:
            failures += 1
        lm = libmesh_endpoints(cp.RDS, rds)
        cl = lm['virtual_hosts'][0]['routes'][0]['clusters']
        print('libmesh decode of the split:', cl)
        if [(c['name'], c['weight']) for c in cl] != [('web-cluster', 1), ('canary', 3)]:
            failures += 1
        # per-request routes (A28): the same RouteConfiguration, gRPC's
        # client and libmesh's route table choose the same cluster per call
        rds = cp.route_config('web-routes', [
            (['other.example'], [{'prefix': '', 'cluster': 'canary'}]),
            (['web'], [{'path': '/test.Echo/Who', 'headers': [('x-canary', 'yes')],
                        'cluster': 'canary'},
                       {'path': '/test.Echo/Who', 'cluster': 'web-cluster'},
                       {'regex': '/test[.]Echo/Who.+', 'cluster': 'canary'},
                       {'prefix': '/test.Echo/O', 'cluster': 'canary'}]),
            (['*'], [{'prefix': '', 'cluster': 'web-cluster'}])])
        plane.set(cp.RDS, rds)
        plane.push()
        cases = [('/test.Echo/Who', None), ('/test.Echo/Who', 'x-canary=yes'),
                 ('/test.Echo/Who', 'x-canary=no'), ('/test.Echo/WhoElse', None),
                 ('/test.Echo/Other', None), ('/test.Nope/Who', None)]
        # no route: current gRPC fails the call UNAVAILABLE ("No matching
        # route found"), as libmesh does; Debian's 1.51 fails it INTERNAL
        # ("xds cluster manager picker: unknown cluster"): both refuse it
        tag_cluster = {'b3': 'web-cluster', 'b1': 'canary', 'UNAVAILABLE': '-', 'INTERNAL': '-'}
        want = ['web-cluster', 'canary', 'web-cluster', 'canary', 'canary', '-']
        deadline = time.time() + 20
        while time.time() < deadline and grpc_route('/test.Echo/Who', 'x-canary=yes') != 'b1':
            time.sleep(0.2)
        raw = [grpc_route(m, h) for m, h in cases]
        got_grpc = [tag_cluster.get(r, r) for r in raw]
        got_lm = libmesh_routes(rds, cases)
        print('routes per call: grpc', got_grpc, 'libmesh', got_lm)
        if got_grpc != want or got_lm != want:
            failures += 1
        # aggregate clusters (A37), built by cp.aggregate: gRPC's client
        # takes agg = [east, west] (first use of xds:///aggweb, as libmesh
        # subscribes an undeclared name) and fails over east -> west when
        # east's endpoints go unhealthy; libmesh decodes the same children
        plane.set(cp.LDS, cp.listener('aggweb', 'aggweb-routes'))
        plane.set(cp.RDS, cp.routes('aggweb-routes', [('agg', 1)]))
        agg = cp.aggregate('agg', ['east', 'west'])
        plane.set(cp.CDS, agg)
        plane.set(cp.CDS, cp.cluster('east'))
        plane.set(cp.CDS, cp.cluster('west'))
        plane.set(cp.EDS, cp.cla('east', [('a', 0, 1, [('127.0.0.1', p1)])]))
        plane.set(cp.EDS, cp.cla('west', [('b', 0, 1, [('127.0.0.1', p2)])]))
        plane.push()
        first = calls(20, 'aggweb')
        plane.set(cp.EDS, cp.cla('east', [('a', 0, 1, [('127.0.0.1', p1)])],
                                 cp.endpoint_pb2.UNHEALTHY))
        plane.push()
        deadline = time.time() + 20
        while time.time() < deadline:
            seen = calls(10, 'aggweb')
            if set(seen) == {'b2'}:
                break
            time.sleep(0.2)
        lm = libmesh_endpoints(cp.CDS, agg)
        print('grpc aggregate [east, west]:', first, 'east unhealthy:', seen,
              'libmesh decode:', lm.get('aggregate'))
        if set(first) != {'b1'} or set(seen) != {'b2'} or lm.get('aggregate') != ['east', 'west']:
            failures += 1
        # a LOGICAL_DNS child (A37): gRPC's client resolves it with its own
        # DNS resolver (an IP literal here: no DNS server to point it at)
        # and fails over to it; libmesh decodes the same host and port
        plane.set(cp.LDS, cp.listener('dnsweb', 'dnsweb-routes'))
        plane.set(cp.RDS, cp.routes('dnsweb-routes', [('agg2', 1)]))
        plane.set(cp.CDS, cp.aggregate('agg2', ['east2', 'dnsc']))
        plane.set(cp.CDS, cp.cluster('east2'))
        dnsc = cp.logical_dns('dnsc', '127.0.0.1', p3, 1000)
        plane.set(cp.CDS, dnsc)
        plane.set(cp.EDS, cp.cla('east2', [('a', 0, 1, [('127.0.0.1', p1)])],
                                 cp.endpoint_pb2.UNHEALTHY))
        plane.push()
        seen = calls(10, 'dnsweb')
        lm = libmesh_endpoints(cp.CDS, dnsc).get('logical_dns', {})
        print('grpc aggregate [east2 (unhealthy), dnsc (LOGICAL_DNS 127.0.0.1:b3)]:', seen,
              'libmesh decode:', lm)
        if set(seen) != {'b3'} or lm.get('host') != '127.0.0.1' or lm.get('port') != p3 \
                or lm.get('refresh_ms') != 1000:
            failures += 1
        acked = {rq.type_url for rq in plane.requests if rq.response_nonce and not rq.HasField('error_detail')}
        nacked = [rq.error_detail.message for rq in plane.requests if rq.HasField('error_detail')]
        print('grpc ACKed types:', sorted(acked), 'NACKs:', nacked)
        if nacked or acked != {cp.LDS, cp.RDS, cp.CDS, cp.EDS}:
            failures += 1
        plane.stop()
    finally:
        for s in servers:
            s.stop(0)
    print('xds interop: %d passed, %d failed' % (10 - failures, failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
