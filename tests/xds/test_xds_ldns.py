# SPDX-License-Identifier: Apache-2.0
"""LOGICAL_DNS clusters (gRFC A37), end to end: the scripted management
server (tests/xds/cp.py) serves a LOGICAL_DNS cluster "dnsc" whose
hostname api.test a dnsmasq started here (127.0.0.1, a free port,
authoritative for .test, TTL 1 s) resolves; tests/xds_agg_tool (a context
with an "xds" section whose logical_dns.servers names that dnsmasq) calls
real mTLS backends: b1 on 127.0.0.1:P and b2 on 127.0.0.2:P (the same
port: only the DNS answer tells them apart), e1 for an EDS cluster.

- "api" routes to dnsc: calls go to b1; the DNS answer moves to
  127.0.0.2 (addn-hosts file + SIGHUP) -> calls move to b2 within the
  refresh rate (500 ms; the check allows 20 s on a loaded machine);
  the name removed (NXDOMAIN) -> calls fail with the no-hosts error; back
  -> they recover.
- "web" routes to the aggregate agg = [east (EDS, e1), dnsc]: east's hosts
  UNHEALTHY or absent -> calls fail over to dnsc's host; east back ->
  e1.
- A bad LOGICAL_DNS update (port 0, two endpoints) is NACKed with its
  reason and calls keep going where the last good config sends them.
- dnsmasq stopped (queries time out): the last address stays (fail
  static), calls still reach b2.
Exit 0 = pass."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp  # noqa: E402
import linetool  # noqa: E402

BUILD = os.environ.get('TEST_BUILDDIR', '.')
REFRESH_MS = 500
MOVE_CAP_S = 20   # generous: the refresh is 500 ms
checks = []


def check(name, ok, detail=''):
    checks.append(ok)
    print('%s %s %s' % ('ok  ' if ok else 'FAIL', name, detail if not ok else ''))
    sys.stdout.flush()


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq takes both)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(('127.0.0.1', 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError('no free port')


class Dns:
    """dnsmasq on 127.0.0.1:port, records from an addn-hosts file."""

    def __init__(self, tmp):
        self.hosts = os.path.join(tmp, 'hosts')
        self.log = open(os.path.join(tmp, 'dnsmasq.log'), 'w')
        self.port = free_port()
        self.p = None

    def write(self, lines):
        with open(self.hosts + '.new', 'w') as f:
            f.write(''.join(l + '\n' for l in lines))
        os.replace(self.hosts + '.new', self.hosts)
        if self.p:
            self.p.send_signal(signal.SIGHUP)  # dnsmasq rereads addn-hosts

    def start(self):
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
        self.p = subprocess.Popen(
            ['dnsmasq', '-d', '-k', '--port=%d' % self.port, '--listen-address=127.0.0.1',
             '--bind-interfaces', '--no-resolv', '--no-hosts', '--conf-file=/dev/null',
             '--local=/test/', '--local-ttl=1', '--log-queries', '--log-facility=-',
             '--pid-file=', '--user=' + user, '--addn-hosts=' + self.hosts],
            stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('dnsmasq did not start')

    def stop(self):
        if self.p:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            self.p = None


def until(tool, name, pred, cap_s):
    """Call name 5 times per round until pred(result); (result, seconds)."""
    t0 = time.time()
    r = None
    while time.time() - t0 < cap_s:
        r = tool.cmd('call %s 5 3000' % name)
        if pred(r):
            return r, time.time() - t0
        time.sleep(0.05)
    return r, None


def nacked(plane, words, since, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        with plane.lock:
            for rq in plane.requests[since:]:
                if rq.HasField('error_detail') and words in rq.error_detail.message:
                    return rq.error_detail.message
        time.sleep(0.05)
    return None


def push(plane):
    plane.push()
    return plane.version


def dns_moves(plane, tool, dns):
    r = tool.cmd('call api 20 8000')
    check('LOGICAL_DNS api.test -> 127.0.0.1: %d of 20 to b1' % r['by']['b1'],
          r['failed'] == 0 and r['by']['b1'] == 20, r)
    check('LDS, RDS, CDS ACKed (no EDS for a LOGICAL_DNS cluster)',
          cp.acked(plane, plane.version, [cp.LDS, cp.RDS, cp.CDS]))
    v = tool.cmd('view').get('logical_dns', {}).get('dnsc', {})
    check('view: logical_dns.dnsc resolved to 127.0.0.1 (%s)' % json.dumps(v),
          v.get('state') == 'resolved' and v.get('address') == '127.0.0.1')
    dns.write(['127.0.0.2 api.test'])
    r, s = until(tool, 'api', lambda r: r['by']['b2'] == 5, MOVE_CAP_S)
    check('DNS answer -> 127.0.0.2: calls moved to b2 after %.1f s (refresh %d ms)'
          % (s or -1, REFRESH_MS), s is not None, r)
    r = tool.cmd('call api 20 3000')
    check('then 20 of 20 to b2 (%d)' % r['by']['b2'], r['failed'] == 0 and r['by']['b2'] == 20, r)
    dns.write([])
    r, s = until(tool, 'api', lambda r: r['failed'] == 5, MOVE_CAP_S)
    r = tool.cmd('call api 10 3000')
    check('NXDOMAIN: calls fail with the no-hosts error (%s) after %.1f s'
          % (r['last_error'], s or -1),
          s is not None and r['failed'] == 10 and
          r['errors'].get('MESH_ERR_NO_ENDPOINTS') == 10, r)
    v = tool.cmd('view').get('logical_dns', {}).get('dnsc', {})
    check('view: dnsc no_address', v.get('state') == 'no_address', json.dumps(v))
    dns.write(['127.0.0.2 api.test'])
    r, s = until(tool, 'api', lambda r: r['by']['b2'] == 5, MOVE_CAP_S)
    check('the name back: calls recover to b2 after %.1f s' % (s or -1), s is not None, r)


def aggregate(plane, tool, ep):
    def east(health=None, eps=True):
        plane.set(cp.EDS, cp.cla('east', [('a', 0, 1, ep('e1') if eps else [])], health))

    r = tool.cmd('call web 20 8000')
    check('aggregate [east, dnsc]: 20 of 20 to east\'s e1 (%d)' % r['by']['e1'],
          r['failed'] == 0 and r['by']['e1'] == 20, r)
    east(cp.endpoint_pb2.UNHEALTHY)
    ok = cp.acked(plane, push(plane), [cp.EDS])
    r = tool.cmd('call web 20 3000')
    check('east UNHEALTHY -> the LOGICAL_DNS child: %d of 20 to b2' % r['by']['b2'],
          ok and r['failed'] == 0 and r['by']['b2'] == 20, r)
    east(eps=False)
    ok = cp.acked(plane, push(plane), [cp.EDS])
    r = tool.cmd('call web 20 3000')
    check('east without endpoints -> the LOGICAL_DNS child: %d of 20 to b2' % r['by']['b2'],
          ok and r['failed'] == 0 and r['by']['b2'] == 20, r)
    east()
    ok = cp.acked(plane, push(plane), [cp.EDS])
    r = tool.cmd('call web 20 3000')
    check('east back -> e1: %d of 20' % r['by']['e1'], ok and r['by']['e1'] == 20, r)
    east(eps=False)
    push(plane)


def bad_updates(plane, tool, port):
    for what, c, words in [
            ('port 0', cp.logical_dns('dnsc', 'api.test', 0, REFRESH_MS), 'port_value 0'),
            ('no hostname', cp.logical_dns('dnsc', '', port, REFRESH_MS), 'hostname is missing'),
            ('two endpoints', cp.logical_dns('dnsc', 'api.test', port, REFRESH_MS),
             'exactly one endpoint')]:
        if what == 'two endpoints':
            e = c.load_assignment.endpoints[0].lb_endpoints.add()
            e.endpoint.address.socket_address.address = 'other.test'
            e.endpoint.address.socket_address.port_value = port
        since = len(plane.requests)
        plane.set(cp.CDS, c)
        push(plane)
        msg = nacked(plane, words, since)
        r = tool.cmd('call api 10 3000')
        check('%s: NACKed (%s); calls still to b2: %d of 10' % (what, msg, r['by']['b2']),
              msg is not None and r['by']['b2'] == 10, r)
    plane.set(cp.CDS, cp.logical_dns('dnsc', 'api.test', port, REFRESH_MS))
    ok = cp.acked(plane, push(plane), [cp.CDS])
    r = tool.cmd('call api 10 3000')
    check('good again: ACKed, %d of 10 to b2' % r['by']['b2'], ok and r['by']['b2'] == 10, r)


def fail_static(tool, dns):
    dns.stop()
    time.sleep(3 * REFRESH_MS / 1000.0)  # several refreshes without a server
    r = tool.cmd('call api 20 3000')
    check('dnsmasq stopped: the last address stays, %d of 20 to b2' % r['by']['b2'],
          r['failed'] == 0 and r['by']['b2'] == 20, r)
    v = tool.cmd('view').get('logical_dns', {}).get('dnsc', {})
    check('view: dnsc still resolved to 127.0.0.2', v.get('address') == '127.0.0.2',
          json.dumps(v))


def main():
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    dns = Dns(tmp)
    dns.write(['127.0.0.1 api.test'])
    dns.start()
    atexit.register(dns.stop)
    empty = os.path.join(tmp, 'empty-hosts')
    open(empty, 'w').close()
    os.environ['CARES_HOSTS'] = empty  # not /etc/hosts: dnsmasq answers
    os.environ['XDS_TOOL_LOGICAL_DNS'] = json.dumps(
        {'servers': ['127.0.0.1:%d' % dns.port], 'timeout_ms': 2000})
    plane = cp.ControlPlane()
    cport = plane.start()
    boot = os.path.join(tmp, 'bootstrap.json')
    with open(boot, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % cport,
                                    'channel_creds': [{'type': 'insecure'}]}],
                   'node': {'id': 'libmesh-ldns'}}, f)
    tool = linetool.Tool([os.path.join(BUILD, 'tests', 'xds_agg_tool'), boot, '8', '5000',
                          'b1:good', 'b2:good@127.0.0.2=b1', 'e1:good'], timeout=60)
    try:
        ports = tool.next(60)['ports']
        ep = lambda *names: [('127.0.0.1', ports[n]) for n in names]  # noqa: E731
        port = ports['b1']
        plane.set(cp.LDS, cp.listener('api', 'api-routes'))
        plane.set(cp.RDS, cp.routes('api-routes', [('dnsc', 100)]))
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, cp.routes('web-routes', [('agg', 100)]))
        plane.set(cp.CDS, cp.logical_dns('dnsc', 'api.test', port, REFRESH_MS))
        plane.set(cp.CDS, cp.aggregate('agg', ['east', 'dnsc']))
        plane.set(cp.CDS, cp.cluster('east'))
        plane.set(cp.EDS, cp.cla('east', [('a', 0, 1, ep('e1'))]))
        plane.push()
        dns_moves(plane, tool, dns)
        aggregate(plane, tool, ep)
        bad_updates(plane, tool, port)
        fail_static(tool, dns)
    finally:
        tool.stop()
        plane.stop()
        dns.stop()
    failed = checks.count(False)
    print('xds logical_dns: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
