#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A SPIFFE Workload API agent for libmesh's tests, on Debian's
python3-grpcio, serving libmesh's own libmesh/workload/proto/workload.proto
(compiled here by protoc --python_out into a temporary directory; grpcio's
generic handlers, no grpc_python_plugin needed) and minting SVIDs with
python3-cryptography and JWT-SVIDs with python3-jwt (PyJWT).

  wl_agent.py --socket PATH --dir DIR [--rotate-s N] [--ttl-s N]

DIR keeps the CA across restarts (ca.crt/ca.key; also jwt.key), gets a
client SVID for openssl (client.crt/client.key, spiffe://example.org/client)
and holds
`control.json`, re-read every 100 ms:
  {"ids": [["spiffe://example.org/a", "hint"], ...],   # the SVID set
   "mode": "ok" | "unavailable" | "denied" | "invalid", # status of fetches
   "federated": {"spiffe://other.org": "PEM path"},      # extra bundles
   "jwt_keys": ["k1", ...],   # kids in the JWT bundle (default ["k1"])
   "jwt_sign": "k1",          # kid that signs new JWT-SVIDs (default "k1")
   "jwt_extra": {...}}        # more claims in new JWT-SVIDs
ValidateJWTSVID validates with PyJWT against the keys of the current JWT
bundle and answers the claims as a google.protobuf.Struct (python3-protobuf's
struct_pb2), INVALID_ARGUMENT when the token does not validate (as SPIRE).
JWT signing keys (P-256) are DIR/jwt-<kid>.key, made on first use (k1 is
DIR/jwt.key, as before).
Events go to stdout, one per line, flushed:
  ready [tcp_port=N] | call <Method> header=<true|false> | sent <Method> serials=<hex,..>
Like SPIRE, a call without `workload.spiffe.io: true` ends INVALID_ARGUMENT
"security header missing from request"."""
import argparse, datetime, json, os, subprocess, sys, tempfile, threading, time

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import jwt as pyjwt
from google.protobuf import struct_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, '..', 'libmesh', 'workload', 'proto')


def load_pb():
    out = tempfile.mkdtemp(prefix='wlpb')
    subprocess.run(['protoc', '-I' + PROTO, '--python_out=' + out,
                    os.path.join(PROTO, 'workload.proto')], check=True)
    sys.path.insert(0, out)
    import workload_pb2
    return workload_pb2


pb = load_pb()
lock = threading.Lock()
cond = threading.Condition(lock)
state = {'version': 0, 'svids': [], 'mode': 'ok', 'federated': {},
         'jwt_keys': ['k1'], 'jwt_sign': 'k1'}


ev_lock = threading.Lock()


def ev(line):
    # One write per line under a lock: print() writes the text and the
    # newline separately, so two streams' events could share a line.
    with ev_lock:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def ca_load(d, td):
    kp, cp = os.path.join(d, 'ca.key'), os.path.join(d, 'ca.crt')
    if os.path.exists(kp):
        key = serialization.load_pem_private_key(open(kp, 'rb').read(), None)
        return key, x509.load_pem_x509_certificate(open(cp, 'rb').read())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'wl test CA')])
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now() - datetime.timedelta(minutes=5))
           .not_valid_after(now() + datetime.timedelta(days=2))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
           .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                        False, False), True)
           .add_extension(x509.SubjectAlternativeName(
               [x509.UniformResourceIdentifier('spiffe://' + td)]), False)
           .sign(key, hashes.SHA256()))
    open(kp, 'wb').write(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    open(cp, 'wb').write(crt.public_bytes(serialization.Encoding.PEM))
    return key, crt


def mint(ca_key, ca_crt, spiffe_id, ttl):
    key = ec.generate_private_key(ec.SECP256R1())
    crt = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'SPIRE')]))
           .issuer_name(ca_crt.subject).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now() - datetime.timedelta(seconds=30))
           .not_valid_after(now() + datetime.timedelta(seconds=ttl))
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
           .add_extension(x509.KeyUsage(True, False, True, False, True, False, False,
                                        False, False), True)
           .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                 x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
           .add_extension(x509.SubjectAlternativeName(
               [x509.UniformResourceIdentifier(spiffe_id)]), False)
           .sign(ca_key, hashes.SHA256()))
    return (crt.public_bytes(serialization.Encoding.DER),
            key.private_bytes(serialization.Encoding.DER,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            format(crt.serial_number, 'x'))


class Agent:
    def __init__(self, a):
        self.a = a
        self.td = 'example.org'
        self.ca_key, self.ca_crt = ca_load(a.dir, self.td)
        self.jwt_keys = {}
        self.ids, self.control = [], None

    def jwt_key(self, kid):
        if kid in self.jwt_keys:
            return self.jwt_keys[kid]
        jp = os.path.join(self.a.dir, 'jwt.key' if kid == 'k1' else 'jwt-%s.key' % kid)
        if not os.path.exists(jp):
            k = ec.generate_private_key(ec.SECP256R1())
            open(jp, 'wb').write(k.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        self.jwt_keys[kid] = serialization.load_pem_private_key(open(jp, 'rb').read(), None)
        return self.jwt_keys[kid]

    def reload_control(self):
        p = os.path.join(self.a.dir, 'control.json')
        try:
            text = open(p).read()
        except OSError:
            return False
        if text == self.control:
            return False
        c = json.loads(text)
        self.control = text
        with lock:
            state['mode'] = c.get('mode', 'ok')
            state['federated'] = c.get('federated', {})
            state['jwt_keys'] = c.get('jwt_keys', ['k1'])
            state['jwt_sign'] = c.get('jwt_sign', 'k1')
            state['jwt_extra'] = c.get('jwt_extra', {})
        self.ids = [tuple(x) for x in c.get('ids', [])]
        return True

    def remint(self):
        svids = [(i, h) + mint(self.ca_key, self.ca_crt, i, self.a.ttl_s)
                 for i, h in self.ids]
        with lock:
            state['svids'] = svids
            state['version'] += 1
            cond.notify_all()

    def loop(self):
        last = 0
        while True:
            changed = self.reload_control()
            if changed or time.time() - last >= self.a.rotate_s:
                self.remint()
                last = time.time()
            with lock:
                cond.notify_all()
            time.sleep(0.1)

    # ---- RPCs ---------------------------------------------------------------
    def check(self, method, ctx):
        md = dict(ctx.invocation_metadata())
        has = md.get('workload.spiffe.io') == 'true'
        ev('call %s header=%s' % (method, 'true' if has else 'false'))
        if not has:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      'security header missing from request')
        self.check_mode(ctx)

    def check_mode(self, ctx):
        mode = state['mode']
        if mode == 'unavailable':
            ctx.abort(grpc.StatusCode.UNAVAILABLE, 'agent is not ready')
        if mode == 'denied':
            ctx.abort(grpc.StatusCode.PERMISSION_DENIED, 'no identity issued')
        if mode == 'invalid':
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, 'bad request')

    def bundle_der(self):
        return self.ca_crt.public_bytes(serialization.Encoding.DER)

    def x509_msg(self):
        r = pb.X509SVIDResponse()
        for i, h, crt, key, serial in state['svids']:
            s = r.svids.add()
            s.spiffe_id, s.x509_svid, s.x509_svid_key = i, crt, key
            s.bundle = self.bundle_der()
            if h:
                s.hint = h
        for td, path in state['federated'].items():
            c = x509.load_pem_x509_certificate(open(path, 'rb').read())
            r.federated_bundles[td] = c.public_bytes(serialization.Encoding.DER)
        return r, ','.join(s[4] for s in state['svids'])

    def stream(self, method, build, ctx):
        self.check(method, ctx)
        seen = -1
        while ctx.is_active():
            with lock:
                self.check_mode(ctx)
                if state['version'] == seen:
                    cond.wait(0.5)
                    continue
                seen = state['version']
                msg, info = build()
            ev('sent %s %s' % (method, info))
            yield msg

    def FetchX509SVID(self, req, ctx):
        yield from self.stream('FetchX509SVID', self.x509_msg, ctx)

    def jwks(self):
        b64 = lambda n: pyjwt.utils.base64url_encode(n.to_bytes(32, 'big')).decode()
        keys = []
        for kid in state['jwt_keys']:
            pub = self.jwt_key(kid).public_key().public_numbers()
            keys.append({'kty': 'EC', 'crv': 'P-256', 'kid': kid,
                         'use': 'jwt-svid', 'x': b64(pub.x), 'y': b64(pub.y)})
        return json.dumps({'keys': keys}).encode()

    def FetchJWTBundles(self, req, ctx):
        def build():
            r = pb.JWTBundlesResponse()
            r.bundles['spiffe://' + self.td] = self.jwks()
            return r, 'td=%s kids=%s' % (self.td, ','.join(state['jwt_keys']))
        yield from self.stream('FetchJWTBundles', build, ctx)

    def FetchX509Bundles(self, req, ctx):
        def build():
            r = pb.X509BundlesResponse()
            r.bundles['spiffe://' + self.td] = self.bundle_der()
            for td, path in state['federated'].items():
                c = x509.load_pem_x509_certificate(open(path, 'rb').read())
                r.bundles[td] = c.public_bytes(serialization.Encoding.DER)
            return r, 'tds=%s' % ','.join(sorted(r.bundles.keys()))
        yield from self.stream('FetchX509Bundles', build, ctx)

    def FetchJWTSVID(self, req, ctx):
        self.check('FetchJWTSVID', ctx)
        if not req.audience:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, 'audience must be specified')
        r = pb.JWTSVIDResponse()
        t = int(time.time())
        for i, h, *_ in state['svids']:
            if req.spiffe_id and req.spiffe_id != i:
                continue
            s = r.svids.add()
            s.spiffe_id = i
            claims = dict(state.get('jwt_extra', {}))
            claims.update({'sub': i, 'aud': list(req.audience), 'iat': t,
                           'exp': t + self.a.ttl_s})
            s.svid = pyjwt.encode(claims,
                                  self.jwt_key(state['jwt_sign']),
                                  algorithm='ES256',
                                  headers={'kid': state['jwt_sign']})
            if h:
                s.hint = h
        ev('sent FetchJWTSVID aud=%s n=%d' % (','.join(req.audience), len(r.svids)))
        return r


def validate(agent, req):
    """(claims, None) or (None, why)."""
    try:
        kid = pyjwt.get_unverified_header(req.svid).get('kid')
        with lock:
            known = kid in state['jwt_keys']
        if not known:
            return None, 'key %r is not in the JWT bundle' % kid
        return pyjwt.decode(req.svid, agent.jwt_key(kid).public_key(),
                            algorithms=['ES256'], audience=req.audience), None
    except Exception as e:  # PyJWT's verdict, whatever the reason
        return None, str(e)


def ValidateJWTSVID(agent, req, ctx):
    agent.check('ValidateJWTSVID', ctx)
    if not req.audience:
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, 'audience must be specified')
    if not req.svid:
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, 'svid must be specified')
    claims, why = validate(agent, req)
    ev('validated aud=%s ok=%s' % (req.audience, 'true' if claims else 'false'))
    if claims is None:
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,
                  'unable to validate JWT-SVID: %s' % why)
    st = struct_pb2.Struct()
    st.update(claims)
    return pb.ValidateJWTSVIDResponse(spiffe_id=claims.get('sub', ''),
                                      claims=st.SerializeToString())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--socket', required=True)
    ap.add_argument('--dir', required=True)
    ap.add_argument('--rotate-s', type=float, default=3600)
    ap.add_argument('--ttl-s', type=int, default=3600)
    ap.add_argument('--tcp', action='store_true',
                    help='also serve on 127.0.0.1 at a port the kernel picks '
                    '(a tcp:// endpoint), named in the ready line')
    a = ap.parse_args()
    agent = Agent(a)
    # A client SVID from the same CA for openssl s_client (PEM in DIR).
    crt, key, _ = mint(agent.ca_key, agent.ca_crt, 'spiffe://example.org/client', 3600)
    der = lambda b: x509.load_der_x509_certificate(b)
    open(os.path.join(a.dir, 'client.crt'), 'wb').write(
        der(crt).public_bytes(serialization.Encoding.PEM))
    open(os.path.join(a.dir, 'client.key'), 'wb').write(
        serialization.load_der_private_key(key, None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    agent.reload_control()
    agent.remint()
    U = lambda f, req, resp: grpc.unary_unary_rpc_method_handler(
        f, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
    S = lambda f, req, resp: grpc.unary_stream_rpc_method_handler(
        f, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
    h = grpc.method_handlers_generic_handler('SpiffeWorkloadAPI', {
        'FetchX509SVID': S(agent.FetchX509SVID, pb.X509SVIDRequest, pb.X509SVIDResponse),
        'FetchX509Bundles': S(agent.FetchX509Bundles, pb.X509BundlesRequest, pb.X509BundlesResponse),
        'FetchJWTBundles': S(agent.FetchJWTBundles, pb.JWTBundlesRequest, pb.JWTBundlesResponse),
        'FetchJWTSVID': U(agent.FetchJWTSVID, pb.JWTSVIDRequest, pb.JWTSVIDResponse),
        'ValidateJWTSVID': U(lambda req, ctx: ValidateJWTSVID(agent, req, ctx),
                             pb.ValidateJWTSVIDRequest, pb.ValidateJWTSVIDResponse),
    })
    from concurrent import futures
    # No SO_REUSEPORT: a port shared with another test's gRPC server would
    # split this agent's callers between the two.
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                      options=[('grpc.so_reuseport', 0)])
    srv.add_generic_rpc_handlers((h,))
    if os.path.exists(a.socket):
        os.unlink(a.socket)
    srv.add_insecure_port('unix:' + a.socket)
    tcp_port = srv.add_insecure_port('127.0.0.1:0') if a.tcp else 0
    if a.tcp and not tcp_port:
        sys.exit('cannot listen on 127.0.0.1')
    srv.start()
    ev('ready tcp_port=%d' % tcp_port if a.tcp else 'ready')
    threading.Thread(target=agent.loop, daemon=True).start()
    srv.wait_for_termination()


if __name__ == '__main__':
    main()
