# SPDX-License-Identifier: Apache-2.0
"""libmesh's ADS stream against the scripted management server
(tests/xds/cp.py): libmesh follows pushes, NACKs a resource it cannot
honour (error_detail names it) and keeps the last good endpoints, keeps
them while the control plane is down (fail static), and takes the update
the restarted control plane sends.  Exit 0 = pass."""
import atexit
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp  # noqa: E402

BUILD = os.environ.get('TEST_BUILDDIR', '.')
checks = []


def check(name, ok):
    checks.append(ok)
    print('%s %s' % ('ok  ' if ok else 'FAIL', name))
    sys.stdout.flush()


def free_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Tool:
    def __init__(self, boot, admin):
        self.p = subprocess.Popen([os.path.join(BUILD, 'tests', 'xds_client_tool'), boot, '120', str(admin)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last = None

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))

    def wait_ports(self, ports, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.last is not None and sorted(self.last.get('ports', [])) == sorted(ports):
                return True
            try:
                self.last = self.q.get(timeout=0.1)
            except queue.Empty:
                pass
        return False

    def quiet(self, secs):
        """No new endpoint set for secs seconds."""
        try:
            self.last = self.q.get(timeout=secs)
            return False
        except queue.Empty:
            return True

    def stop(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


def main():
    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    plane = cp.ControlPlane()
    port = plane.start()
    boot = os.path.join(tmp, 'bootstrap.json')
    with open(boot, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port,
                                    'channel_creds': [{'type': 'insecure'}],
                                    'server_features': ['xds_v3']}],
                   'node': {'id': 'libmesh-e2e', 'metadata': {'GENERATOR': 'grpc'}}}, f)
    plane.set(cp.CDS, cp.cluster('web-cluster'))
    plane.set(cp.EDS, cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', 9001), ('127.0.0.1', 9002)])]))
    admin = free_port()
    tool = Tool(boot, admin)
    plane2 = None
    try:
        check('first endpoints arrive', tool.wait_ports([9001, 9002]))
        plane.set(cp.EDS, cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', 9001), ('127.0.0.1', 9002),
                                                               ('127.0.0.1', 9003)])]))
        plane.push()
        check('push followed (a backend added)', tool.wait_ports([9001, 9002, 9003]))
        time.sleep(0.5)
        acks = [rq for rq in plane.requests if rq.type_url == cp.EDS and rq.response_nonce]
        check('EDS ACKed with the pushed version',
              bool(acks) and acks[-1].version_info == str(plane.version) and not acks[-1].HasField('error_detail'))
        bad = cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', 9004)])])
        bad.endpoints[0].lb_endpoints[0].health_status = cp.endpoint_pb2.DEGRADED
        plane.set(cp.EDS, bad)
        plane.push()
        time.sleep(1.0)
        nacks = [rq for rq in plane.requests if rq.HasField('error_detail')]
        check('NACK with error_detail naming the field',
              bool(nacks) and 'DEGRADED' in nacks[-1].error_detail.message and
              nacks[-1].version_info == str(plane.version - 1))
        check('NACKed update leaves the last good endpoints', tool.quiet(0.5) and
              sorted(tool.last['ports']) == [9001, 9002, 9003])
        out = subprocess.run([os.path.join(BUILD, 'tools', 'meshctl'), 'xds', '--admin',
                              '127.0.0.1:%d' % admin], capture_output=True, text=True, timeout=20)
        print(out.stdout + out.stderr)
        line = [l for l in out.stdout.splitlines() if l.startswith('ClusterLoadAssignment')]
        check('meshctl xds shows the NACK and its error',
              out.returncode == 0 and len(line) == 1 and 'NACK: ' in line[0] and 'DEGRADED' in line[0]
              and ' %d ' % (plane.version - 1) in line[0])
        plane.stop()
        check('control plane down: endpoints unchanged (fail static)', tool.quiet(2.0))
        plane2 = cp.ControlPlane()
        plane2.set(cp.CDS, cp.cluster('web-cluster'))
        plane2.set(cp.EDS, cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', 9003), ('127.0.0.1', 9005)])]))
        plane2.start(port)
        check('restarted control plane: its update arrives', tool.wait_ports([9003, 9005], timeout=30))
        first = [rq for rq in plane2.requests if rq.type_url == cp.CDS]
        check('resubscribed with the node on the new stream',
              bool(first) and first[0].node.id == 'libmesh-e2e' and 'web-cluster' in first[0].resource_names)
    finally:
        tool.stop()
        plane.stop()
        if plane2:
            plane2.stop()
    # Istio's agent socket: the same over a unix socket (unix:///path)
    sock = os.path.join(tmp, 'xds.sock')
    plane3 = cp.ControlPlane()
    plane3.set(cp.CDS, cp.cluster('web-cluster'))
    plane3.set(cp.EDS, cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', 9101)])]))
    plane3.start(unix=sock)
    boot2 = os.path.join(tmp, 'bootstrap-unix.json')
    with open(boot2, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': 'unix://' + sock,
                                    'channel_creds': [{'type': 'insecure'}]}],
                   'node': {'id': 'libmesh-unix'}}, f)
    tool2 = Tool(boot2, free_port())
    try:
        check('unix:/// server: endpoints arrive', tool2.wait_ports([9101]))
    finally:
        tool2.stop()
        plane3.stop()
    failed = checks.count(False)
    print('xds e2e: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
