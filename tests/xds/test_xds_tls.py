# SPDX-License-Identifier: Apache-2.0
"""The ADS connection over TLS (bootstrap channel_creds "tls", gRFC A27 +
A65 config files, or the mesh identity): tests/xds/cp.py serves with
grpc.ssl_server_credentials on 127.0.0.1, client auth required and not;
libmesh subscribes over libmesh's own mTLS connection and receives
resources; a wrong CA fails with a log line naming the control plane and
keeps retrying; rotated files count from the next connection; bad files
and unknown types are config errors; Debian grpcio's own xDS client given
the same bootstrap connects too (reference consumer).  Exit 0 = pass."""
import atexit
import datetime
import ipaddress
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

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

BUILD = os.environ.get('TEST_BUILDDIR', '.')
TOOL = os.path.join(BUILD, 'tests', 'xds_client_tool')
checks = []


def check(name, ok):
    checks.append(bool(ok))
    print('%s %s' % ('ok  ' if ok else 'FAIL', name))
    sys.stdout.flush()


def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def mint_ca(name):
    k = ec.generate_private_key(ec.SECP256R1())
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                        critical=True)
         .sign(k, hashes.SHA256()))
    return k, c


def mint_leaf(ca, spiffe, server):
    """An X.509-SVID; the control plane's also carries IP 127.0.0.1 and
    DNS localhost, which gRPC's hostname check wants."""
    cak, cac = ca
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.UniformResourceIdentifier(spiffe)]
    if server:
        sans += [x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]
    c = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'x')]))
         .issuer_name(cac.subject).public_key(k.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                               x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
         .add_extension(x509.SubjectAlternativeName(sans), critical=False)
         .sign(cak, hashes.SHA256()))
    return pem_key(k), c.public_bytes(serialization.Encoding.PEM)


def write(d, name, data):
    p = os.path.join(d, name)
    with open(p, 'wb') as f:
        f.write(data)
    return p


class Tool:
    """tests/xds_client_tool with the log on stderr collected."""

    def __init__(self, boot, env=None):
        e = dict(os.environ, XDS_TOOL_LOG='info', **(env or {}))
        # XDS_TOOL_WRAP: a prefix such as "valgrind -q --error-exitcode=9"
        wrap = os.environ.get('XDS_TOOL_WRAP', '').split()
        self.p = subprocess.Popen(wrap + [TOOL, boot, '120'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=e)
        self.q = queue.Queue()
        self.err = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.last = None

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))

    def _read_err(self):
        for line in self.p.stderr:
            self.err.append(line)

    def wait_ports(self, ports, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.last is not None and sorted(self.last.get('ports', [])) == sorted(ports):
                return True
            try:
                self.last = self.q.get(timeout=0.1)
            except queue.Empty:
                pass
        return False

    def wait_log(self, words, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.err):
                if all(w in line for w in words):
                    return line
            time.sleep(0.1)
        return None

    def stop(self):
        try:
            self.p.stdin.close()
            rc = self.p.wait(timeout=60)
            if os.environ.get('XDS_TOOL_WRAP'):
                check('tool under %s exits 0 (rc %d)' % (os.environ['XDS_TOOL_WRAP'], rc), rc == 0)
        except Exception:
            self.p.kill()
            self.p.wait()
            check('tool stopped when asked', False)


def bootstrap(d, name, port, creds):
    p = os.path.join(d, name)
    with open(p, 'w') as f:
        json.dump({'xds_servers': [{'server_uri': '127.0.0.1:%d' % port, 'channel_creds': creds,
                                    'server_features': ['xds_v3']}],
                   'node': {'id': 'libmesh-tls', 'metadata': {'GENERATOR': 'grpc'}}}, f)
    return p


def plane_with(port, ports, tls):
    plane = cp.ControlPlane()
    plane.set(cp.CDS, cp.cluster('web-cluster'))
    plane.set(cp.EDS, cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', p) for p in ports])]))
    plane.start(port, tls=tls)
    return plane


def files_config(ca, cert, key):
    return {'type': 'tls', 'config': {'ca_certificate_file': ca, 'certificate_file': cert,
                                      'private_key_file': key, 'refresh_interval': '600s'}}


def table_subscribe(d, ca, ca_pem, srv, cli):
    """modes x client auth: libmesh subscribes and receives resources."""
    rows = [('A65 files', 'files', True), ('A65 files', 'files', False),
            ('mesh identity', 'identity', True), ('mesh identity', 'identity', False),
            ('unknown type first, then tls', 'skip', True)]
    for i, (what, mode, require) in enumerate(rows):
        plane = plane_with(0, [9200 + i], (srv[0], srv[1], ca_pem, require))
        env = None
        creds = [files_config(ca, cli[1], cli[0])]
        if mode == 'identity':
            creds = [{'type': 'tls'}]
            env = {'XDS_TOOL_IDENTITY': '%s %s %s' % (cli[1], cli[0], ca)}
        elif mode == 'skip':
            creds = [{'type': 'google_default'}, files_config(ca, cli[1], cli[0]), {'type': 'insecure'}]
        boot = bootstrap(d, 'b%d.json' % i, plane.port, creds)
        tool = Tool(boot, env)
        try:
            check('%s, client auth %s: resources arrive over TLS' %
                  (what, 'required' if require else 'not required'), tool.wait_ports([9200 + i]))
            # the ACK follows the apply: wait for it (bounded)
            deadline = time.time() + 15
            rq = []
            while not rq and time.time() < deadline:
                rq = [r for r in list(plane.requests) if r.type_url == cp.EDS and r.response_nonce]
                time.sleep(0.05)
            check('%s: EDS ACKed over TLS' % what, bool(rq) and not rq[-1].HasField('error_detail'))
        finally:
            tool.stop()
            plane.stop()


def wrong_ca_then_rotate(d, ca_pem, srv, cli, other):
    """A CA that does not sign the control plane: a clear, logged error
    naming it, retried; the CA file rotated in place: the next connection
    takes it and subscribes."""
    plane = plane_with(0, [9300], (srv[0], srv[1], ca_pem, True))
    ocak, occ = other
    wrong_key, wrong_cert = mint_leaf(other, 'spiffe://example.org/ns/default/sa/client', False)
    ca = write(d, 'rot-ca.pem', occ.public_bytes(serialization.Encoding.PEM))
    cert = write(d, 'rot-cert.pem', wrong_cert)
    key = write(d, 'rot-key.pem', wrong_key)
    boot = bootstrap(d, 'rot.json', plane.port, [files_config(ca, cert, key)])
    tool = Tool(boot)
    try:
        line = tool.wait_log(['xds_connect', '127.0.0.1:%d' % plane.port])
        print(line and line.strip())
        check('wrong CA: logged error names the control plane and the reason',
              line is not None and 'tls' in line and 'retrying' in line and
              'not trusted' in line and 'trust bundle' in line)
        check('wrong CA: no resources', not tool.wait_ports([9300], timeout=2))
        check('wrong CA: the tool is still running (retrying)', tool.p.poll() is None)
        # rotate the three files in place (as a cert agent does)
        write(d, 'rot-key.pem', cli[0])
        write(d, 'rot-cert.pem', cli[1])
        write(d, 'rot-ca.pem', ca_pem)
        check('rotated files: the next connection subscribes', tool.wait_ports([9300], timeout=30))
        check('reconnected: logged', tool.wait_log(['xds_connect', 'connected'], timeout=5) is not None)
    finally:
        tool.stop()
        plane.stop()


def refused_client_cert(d, ca_pem, srv, other):
    """Our certificate is one the control plane does not trust (signed by
    another CA of the same trust domain, which our bundle also holds): the
    refusal is logged once, naming the control plane, and retried."""
    plane = plane_with(0, [9400], (srv[0], srv[1], ca_pem, True))
    key, cert = mint_leaf(other, 'spiffe://example.org/ns/default/sa/client', False)
    both = write(d, 'both-ca.pem', ca_pem + other[1].public_bytes(serialization.Encoding.PEM))
    boot = bootstrap(d, 'refused.json', plane.port,
                     [files_config(both, write(d, 'o.pem', cert), write(d, 'o.key', key))])
    tool = Tool(boot)
    try:
        line = tool.wait_log(['xds_connect', '127.0.0.1:%d' % plane.port, 'retrying'])
        print(line and line.strip())
        check('control plane refuses our certificate: logged, naming it', line is not None)
        check('refused: no resources', not tool.wait_ports([9400], timeout=2))
        time.sleep(2)
        n = len([l for l in tool.err if 'xds_connect' in l])
        check('refused: logged once, not once per retry (%d lines)' % n, n == 1)
        check('refused: still retrying', tool.p.poll() is None)
    finally:
        tool.stop()
        plane.stop()


def config_errors(d, ca, cli):
    """Bad files and unknown types: mesh_new's error (meshctl check-config
    runs the same checks)."""
    bad = write(d, 'bad.pem', b'not a certificate\n')
    rows = [
        ('unknown type only', [{'type': 'google_default'}], 'no supported type'),
        ('missing file', [files_config(ca, os.path.join(d, 'nope.pem'), cli)], 'cannot read'),
        ('not PEM', [files_config(ca, bad, cli)], 'bad.pem'),
        ('partial config', [{'type': 'tls', 'config': {'ca_certificate_file': ca}}], 'go together'),
        ('bad refresh_interval', [{'type': 'tls', 'config': {'refresh_interval': 'soon'}}], 'duration'),
        ('unknown config key', [{'type': 'tls', 'config': {'cert': ca}}], 'cert'),
        ('tls without identity or files', [{'type': 'tls'}], 'identity'),
    ]
    for i, (what, creds, word) in enumerate(rows):
        boot = bootstrap(d, 'e%d.json' % i, 1, creds)
        out = subprocess.run([TOOL, boot, '1'], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
        msg = out.stdout.strip()
        print('  %s -> %s' % (what, msg))
        check('mesh_new error: %s' % what, out.returncode == 1 and 'channel_creds' in msg and word in msg)
        conf = os.path.join(d, 'e%d.conf.json' % i)
        with open(conf, 'w') as f:
            json.dump({'xds': {'bootstrap': boot},
                       'services': {'web': {'discovery': {'type': 'xds', 'cluster': 'web-cluster'}}}}, f)
        out = subprocess.run([os.path.join(BUILD, 'tools', 'meshctl'), 'check-config', conf],
                             capture_output=True, text=True, timeout=20)
        check('check-config error: %s' % what, out.returncode == 1 and 'channel_creds' in out.stdout + out.stderr
              and word in out.stdout + out.stderr)


def reference(d, ca, ca_pem, srv, cli):
    """Debian grpcio's own xDS client given the same bootstrap (the same
    files; gRPC also checks the control plane's hostname, which the test
    certificate carries as IP 127.0.0.1): its xds:/// channel reaches the
    backend the EDS names."""
    import grpc
    from concurrent import futures
    be = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[('grpc.so_reuseport', 0)])
    h = grpc.method_handlers_generic_handler('test.Echo', {'Who': grpc.unary_unary_rpc_method_handler(
        lambda req, ctx: b'ref-backend')})
    be.add_generic_rpc_handlers((h,))
    bport = be.add_insecure_port('127.0.0.1:0')
    be.start()
    plane = cp.ControlPlane()
    ok = False
    try:
        plane.set(cp.LDS, cp.listener('web', 'web-routes'))
        plane.set(cp.RDS, cp.routes('web-routes', [('web-cluster', 1)]))
        plane.set(cp.CDS, cp.cluster('web-cluster'))
        plane.set(cp.EDS, cp.cla('web-cluster', [('a', 0, 1, [('127.0.0.1', bport)])]))
        plane.start(0, tls=(srv[0], srv[1], ca_pem, True))
        boot = bootstrap(d, 'ref.json', plane.port, [files_config(ca, cli[1], cli[0])])
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=boot)
        code = ('import grpc\n'
                'with grpc.insecure_channel("xds:///web") as ch:\n'
                '    print(ch.unary_unary("/test.Echo/Who")(b"", timeout=20).decode())\n')
        out = subprocess.run(['/usr/bin/python3', '-c', code], capture_output=True, text=True,
                             timeout=60, env=env)
        print('  grpcio %s:' % grpc.__version__, out.stdout.strip(), out.stderr.strip()[-400:])
        ok = out.returncode == 0 and 'ref-backend' in out.stdout and \
            any(r.node.id == 'libmesh-tls' for r in plane.requests)
        if not ok and 'no known creds type found' in out.stderr:
            # gRPC before A65 (C-core 1.5x, Debian bookworm's 1.51) knows
            # only insecure / google_default / fake in the bootstrap: not a
            # pass, not a libmesh failure either; said, and not counted.
            print('SKIP (not counted) reference consumer: grpcio %s predates gRFC A65 '
                  '("tls" channel_creds in the bootstrap)' % grpc.__version__)
            return
    finally:
        plane.stop()
        be.stop(0)
    check('reference consumer: grpcio xDS client connects over TLS with the same bootstrap', ok)


def main():
    d = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, d, True)
    ca = mint_ca('example.org root')
    other = mint_ca('other root')
    ca_pem = ca[1].public_bytes(serialization.Encoding.PEM)
    srv = mint_leaf(ca, 'spiffe://example.org/ns/istio-system/sa/istiod', True)
    cli = mint_leaf(ca, 'spiffe://example.org/ns/default/sa/client', False)
    ca_file = write(d, 'ca.pem', ca_pem)
    cli_files = (write(d, 'cli.key', cli[0]), write(d, 'cli.pem', cli[1]))
    table_subscribe(d, ca_file, ca_pem, srv, cli_files)
    wrong_ca_then_rotate(d, ca_pem, srv, cli, other)
    refused_client_cert(d, ca_pem, srv, other)
    config_errors(d, ca_file, cli_files[0])
    if os.environ.get('XDS_TLS_REFERENCE', '1') == '1':
        reference(d, ca_file, ca_pem, srv, cli_files)
    failed = checks.count(False)
    print('xds tls: %d passed, %d failed' % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
