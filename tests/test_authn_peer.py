# SPDX-License-Identifier: Apache-2.0
"""Independent JWT peer for tests/test_authn.c (Debian python3-jwt, PyJWT,
and python3-cryptography).

  test_authn_peer.py mint DIR ISSUER AUDIENCE
    writes DIR/jwks.json (rsa1, ec1, ec384), DIR/jwks2.json (+ rsa2: a
    rotation), DIR/jwks_bad.json (bad keys and one good), DIR/tokens.json:
    a table [{name, token, pyjwt: true|false, differs: why|null}] where
    "pyjwt" is PyJWT's own verdict with leeway 60, the audience and issuer
    given, keys picked by kid, and "differs" marks a token libmesh refuses
    on purpose while PyJWT accepts it (stricter parsing)."""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwk_of(pub, kid):
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        ln = (n.n.bit_length() + 7) // 8
        return {"kty": "RSA", "kid": kid, "use": "sig",
                "n": b64(n.n.to_bytes(ln, "big")), "e": b64(n.e.to_bytes(3, "big"))}
    n = pub.public_numbers()
    size = 32 if pub.curve.name == "secp256r1" else 48
    return {"kty": "EC", "kid": kid, "crv": "P-256" if size == 32 else "P-384",
            "x": b64(n.x.to_bytes(size, "big")), "y": b64(n.y.to_bytes(size, "big"))}


def main():
    out, iss, aud = sys.argv[2], sys.argv[3], sys.argv[4]
    rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec1 = ec.generate_private_key(ec.SECP256R1())
    ec384 = ec.generate_private_key(ec.SECP384R1())
    keys = {"rsa1": rsa1, "ec1": ec1, "ec384": ec384}
    jwks = {"keys": [jwk_of(k.public_key(), kid) for kid, k in keys.items()]}
    jwks2 = {"keys": jwks["keys"] + [jwk_of(rsa2.public_key(), "rsa2")]}
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    bad = {"keys": [
        {"kty": "RSA", "kid": "short", "n": jwk_of(small.public_key(), "x")["n"], "e": "AQAB"},
        {"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)},
        {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": jwks["keys"][0]["n"], "e": "AQAB"},
        jwk_of(rsa1.public_key(), "rsa1"),
    ]}
    now = int(time.time())
    base = {"iss": iss, "sub": "alice", "aud": aud, "iat": now - 10, "exp": now + 600,
            "groups": ["dev", "admin"], "nested": {"role": "ops"}, "azp": "web"}

    def tok(claims=None, key="rsa1", alg="RS256", kid=None, headers=None):
        c = dict(base)
        c.update(claims or {})
        c = {k: v for k, v in c.items() if v is not None}
        h = {} if kid is False else {"kid": kid if kid is not None else key}
        h.update(headers or {})
        signer = {"rsa2": rsa2}.get(key, keys.get(key))
        return jwt.encode(c, signer, algorithm=alg, headers=h)

    def alter_sig(t):
        head, _, sig = t.rpartition(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
        raw[len(raw) // 2] ^= 1
        return head + "." + b64(bytes(raw))

    def raw(header, payload, sig=b"x" * 256):
        return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(sig)])

    pem = rsa1.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_in = b64(json.dumps({"alg": "HS256", "kid": "rsa1"}).encode()) + "." + \
        b64(json.dumps(base).encode())
    hs = hs_in + "." + b64(hmac.new(pem, hs_in.encode(), hashlib.sha256).digest())
    none = b64(b'{"alg":"none"}') + "." + b64(json.dumps(base).encode()) + "."
    none_sig = none + b64(b"x")
    good = tok()
    h, p, s = good.split(".")
    dup_in = b64(b'{"alg":"RS256","kid":"ec1","kid":"rsa1"}') + "." + p
    rs = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    dup = dup_in + "." + b64(rs.sign(dup_in.encode(), rsa1))
    table = [
        ("rs256", good, None),
        ("ps256", tok(alg="PS256"), None),
        ("es256", tok(key="ec1", alg="ES256"), None),
        ("es384", tok(key="ec384", alg="ES384"), None),
        ("es256_svid", tok({"sub": "spiffe://example.org/alice"}, key="ec1", alg="ES256"), None),
        ("no_kid_rs256", tok(kid=False), None),
        ("aud_list", tok({"aud": ["other", aud]}), None),
        ("expired", tok({"exp": now - 120}), None),
        ("expired_within_skew", tok({"exp": now - 30}), None),
        ("nbf_future", tok({"nbf": now + 300}), None),
        ("nbf_within_skew", tok({"nbf": now + 30}), None),
        ("iat_future", tok({"iat": now + 300}), None),
        ("exp_not_number", tok({"exp": "tomorrow"}), None),
        ("wrong_issuer", tok({"iss": "https://evil.example"}), None),
        ("wrong_audience", tok({"aud": "someone-else"}), None),
        ("no_audience", tok({"aud": None}), None),
        ("bad_signature", alter_sig(good), None),
        ("es256_bad_signature", alter_sig(tok(key="ec1", alg="ES256")), None),
        ("alg_none", none, None),
        ("alg_none_with_sig", none_sig, None),
        ("hs256_rsa_public_key", hs, None),
        ("unknown_kid", tok(key="rsa2"), None),
        ("ec_key_rs256_header", raw({"alg": "RS256", "kid": "ec1"}, base), None),
        ("es256_der_length_sig", raw({"alg": "ES256", "kid": "ec1"}, base, b"\x30" * 70), None),
        ("malformed_b64_header", "!!" + good[2:], None),
        ("malformed_json_header", b64(b"{not json") + "." + p + "." + s, None),
        ("payload_not_object", h + "." + b64(b"[1,2]") + "." + s, None),
        ("two_parts", h + "." + p, None),
        ("four_parts", good + ".x", None),
        ("padded_b64", h + "=." + p + "." + s, None),
        ("duplicate_header_key", dup,
         "duplicate JSON key: core's JSON entry point refuses them"),
        ("oversized_token", tok({"blob": "a" * 20000}),
         "over the 16 KiB token cap"),
    ]
    pubs = {kid: k.public_key() for kid, k in keys.items()}
    algs = {"rsa1": ["RS256", "PS256"], "ec1": ["ES256"], "ec384": ["ES384"]}

    def verdict(t):
        try:
            hd = jwt.get_unverified_header(t)
        except Exception:
            return False
        kid = hd.get("kid")
        cands = [k for k in pubs if kid is None or k == kid]
        for k in cands:
            try:
                jwt.decode(t, pubs[k], algorithms=algs[k], audience=aud, issuer=iss,
                           leeway=60)
                return True
            except jwt.InvalidSignatureError:
                continue
            except Exception:
                return False
        return False

    rows = [{"name": n, "token": t, "pyjwt": verdict(t), "differs": d} for n, t, d in table]
    os.makedirs(out, exist_ok=True)
    for name, doc in (("jwks.json", jwks), ("jwks2.json", jwks2), ("jwks_bad.json", bad)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(doc, f)
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
