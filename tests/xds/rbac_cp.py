# SPDX-License-Identifier: Apache-2.0
"""The control plane of tests/test_xds_rbac.c: tests/xds/cp.py serving the
server Listener (gRFC A36) named on the command line, with an RBAC filter
(A41) chosen by commands on stdin, one per line:
  allow ID      ALLOW policy "allow-one": any permission, principal ID
  denypath P    DENY policy "deny-path": url_path exact P, any principal
  none          no RBAC filter
  allownone     ALLOW with no policy (denies everything)
  denyheader V  DENY policy "deny-header": header x-debug prefix V
  bad           a header regex libmesh cannot map (must be NACKed)
  stop          stop serving (the control plane goes away)
Prints "port N" once, "pushed V" after each push and "nack TEXT" for each
NACK libmesh sends."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp  # noqa: E402

RBAC = cp.P + 'envoy.extensions.filters.http.rbac.v3.RBAC'


def rbac(cmd, arg):
    r = cp.filters_pb2.RBAC()
    if cmd == 'allow':
        r.rules.action = cp.filters_pb2.RBACRules.ALLOW
        p = r.rules.policies['allow-one']
        p.permissions.add(any=True)
        p.principals.add().authenticated.principal_name.exact = arg
    elif cmd == 'denypath':
        r.rules.action = cp.filters_pb2.RBACRules.DENY
        p = r.rules.policies['deny-path']
        p.permissions.add().url_path.path.exact = arg
        p.principals.add(any=True)
    elif cmd == 'allownone':
        r.rules.action = cp.filters_pb2.RBACRules.ALLOW
    elif cmd == 'denyheader':
        r.rules.action = cp.filters_pb2.RBACRules.DENY
        p = r.rules.policies['deny-header']
        h = p.permissions.add().header
        h.name = 'x-debug'
        h.prefix_match = arg
        p.principals.add(any=True)
    elif cmd == 'bad':
        r.rules.action = cp.filters_pb2.RBACRules.ALLOW
        p = r.rules.policies['bad']
        h = p.permissions.add().header
        h.name = 'x-user'
        h.safe_regex_match.regex = 'al.*'
        p.principals.add(any=True)
    return r


def server_listener(name, cmd, arg):
    h = cp.listener_pb2.HttpConnectionManager()
    h.route_config.CopyFrom(cp.routes('inbound', [('inbound', 1)]))
    if cmd != 'none':
        h.http_filters.add(name='envoy.filters.http.rbac',
                           typed_config=cp.any_of(RBAC, rbac(cmd, arg)))
    h.http_filters.add(name='router', typed_config=cp.any_of(cp.ROUTER, cp.filters_pb2.Router()))
    lis = cp.listener_pb2.Listener(name=name)
    f = lis.default_filter_chain.filters.add(name='hcm')
    f.typed_config.CopyFrom(cp.any_of(cp.HCM, h))
    return lis


def nack_watch(c):
    seen = 0
    while True:
        with c.lock:
            new = c.requests[seen:]
            seen = len(c.requests)
        for rq in new:
            if rq.error_detail.message:
                print('nack %s' % rq.error_detail.message.replace('\n', ' '), flush=True)
        time.sleep(0.02)


def main():
    name = sys.argv[1]
    c = cp.ControlPlane()
    c.set(cp.LDS, server_listener(name, 'allownone', None))
    print('port %d' % c.start(), flush=True)
    threading.Thread(target=nack_watch, args=(c,), daemon=True).start()
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == 'stop':
            c.stop()
            print('stopped', flush=True)
            continue
        c.set(cp.LDS, server_listener(name, w[0], w[1] if len(w) > 1 else None))
        c.push()
        print('pushed %d' % c.version, flush=True)
    c.stop()


if __name__ == '__main__':
    main()
