# SPDX-License-Identifier: Apache-2.0
"""The demo's control plane (mesh_demo --xds): an xDS management server
(ADS, state of the world, v3) on loopback, built on Debian's python3-grpcio
with the scripted server of libmesh's tests (tests/xds/cp.py), driven by
mesh_demo over stdin/stdout, one line per command:

  backend NAME PORT   a backend instance ("v1-..." or "v2-...")
  serve               listener "work" -> route "work-routes" split 90/10
                      between clusters work-v1 and work-v2 (least_request,
                      outlier detection, connect timeout), EDS with every
                      backend but the last v2 one
  split W1 W2         the route's weights
  add NAME            the backend joins its cluster's EDS
It prints "port N" first, then one line per command done."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'xds'))
import cp  # noqa: E402


def clusters(plane):
    for name in ('work-v1', 'work-v2'):
        c = cp.cluster(name)
        c.lb_policy = cp.cluster_pb2.Cluster.LEAST_REQUEST
        c.connect_timeout.seconds = 1
        od = c.outlier_detection
        od.consecutive_5xx.value = 3
        od.interval.seconds = 1
        od.base_ejection_time.seconds = 30
        plane.set(cp.CDS, c)


def eds(plane, backends, live):
    for v in ('v1', 'v2'):
        eps = [('127.0.0.1', p) for n, p in backends if n.startswith(v) and n in live]
        plane.set(cp.EDS, cp.cla('work-' + v, [('demo', 0, 1, eps)]))


def main():
    plane = cp.ControlPlane()
    print('port %d' % plane.start(), flush=True)
    backends, live = [], set()
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == 'backend' and len(w) == 3:
            backends.append((w[1], int(w[2])))
            print('ok', flush=True)
        elif w[0] == 'serve':
            v2 = [n for n, _ in backends if n.startswith('v2')]
            live = {n for n, _ in backends if n not in v2[1:]}
            plane.set(cp.LDS, cp.listener('work', 'work-routes'))
            plane.set(cp.RDS, cp.routes('work-routes', [('work-v1', 90), ('work-v2', 10)]))
            clusters(plane)
            eds(plane, backends, live)
            plane.push()
            print('serving listener work: split work-v1 90 / work-v2 10 (version %d)' %
                  plane.version, flush=True)
        elif w[0] == 'split' and len(w) == 3:
            plane.set(cp.RDS, cp.routes('work-routes', [('work-v1', int(w[1])),
                                                        ('work-v2', int(w[2]))]))
            plane.push()
            print('pushed split work-v1 %s / work-v2 %s (version %d)' % (w[1], w[2], plane.version),
                  flush=True)
        elif w[0] == 'add' and len(w) == 2:
            live.add(w[1])
            eds(plane, backends, live)
            plane.push()
            print('pushed EDS: %s joins work-%s (version %d)' % (w[1], w[1][:2], plane.version),
                  flush=True)
        else:
            print('bad command: %s' % line.strip(), flush=True)
    plane.stop()


if __name__ == '__main__':
    main()
