# SPDX-License-Identifier: Apache-2.0
"""Independent JWT peer for tests/test_authn.c (Debian python3-jwt, PyJWT,
and python3-cryptography).

  test_authn_peer.py mint DIR ISSUER AUDIENCE
    writes DIR/jwks.json (rsa1, ec1, ec384, ec521), DIR/jwks2.json (+ rsa2: a
    rotation), DIR/jwks_bad.json (bad keys and one good), DIR/tokens.json:
    a table [{name, token, pyjwt: true|false, differs: why|null}] where
    "pyjwt" is PyJWT's own verdict with leeway 60, the audience and issuer
    given, keys picked by kid, and "differs" marks a token libmesh refuses
    on purpose while PyJWT accepts it (stricter parsing); DIR/seam.json:
    the crypto seam's table (tests/test_authn_jws.c), the same expected
    result for every crypto backend: key imports {name, kind, n/e or x/y
    (hex), expect: "ok" or the reason} and signatures {name, key, alg,
    msg, sig (hex), expect: true|false}."""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwk_of(pub, kid):
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        ln = (n.n.bit_length() + 7) // 8
        return {"kty": "RSA", "kid": kid, "use": "sig",
                "n": b64(n.n.to_bytes(ln, "big")), "e": b64(n.e.to_bytes(3, "big"))}
    n = pub.public_numbers()
    size, crv = {"secp256r1": (32, "P-256"), "secp384r1": (48, "P-384"),
                 "secp521r1": (66, "P-521")}[pub.curve.name]
    return {"kty": "EC", "kid": kid, "crv": crv,
            "x": b64(n.x.to_bytes(size, "big")), "y": b64(n.y.to_bytes(size, "big"))}


def main():
    out, iss, aud = sys.argv[2], sys.argv[3], sys.argv[4]
    rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec1 = ec.generate_private_key(ec.SECP256R1())
    ec384 = ec.generate_private_key(ec.SECP384R1())
    ec521 = ec.generate_private_key(ec.SECP521R1())
    keys = {"rsa1": rsa1, "ec1": ec1, "ec384": ec384, "ec521": ec521}
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
        ("rs384", tok(alg="RS384"), None),
        ("rs512", tok(alg="RS512"), None),
        ("ps384", tok(alg="PS384"), None),
        ("ps512", tok(alg="PS512"), None),
        ("es512", tok(key="ec521", alg="ES512"), None),
        ("es512_bad_signature", alter_sig(tok(key="ec521", alg="ES512")), None),
        ("ps512_bad_signature", alter_sig(tok(alg="PS512")), None),
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
    algs = {"rsa1": ["RS256", "PS256", "RS384", "RS512", "PS384", "PS512"],
            "ec1": ["ES256"], "ec384": ["ES384"], "ec521": ["ES512"]}

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
    seam(out, rsa1, ec1, ec384, ec521)


def seam(out, rsa1, ec1, ec384, ec521):
    """Edge cases of the crypto seam: where OpenSSL and mbedTLS could
    differ (RSA public key rules, EC point checks, r||s -> DER, PSS salt)."""
    rn = rsa1.public_key().public_numbers()
    nb = rn.n.to_bytes(256, "big")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    sn = small.public_key().public_numbers().n.to_bytes(128, "big")
    odd = lambda nbytes: (int.from_bytes(os.urandom(nbytes), "big") | (1 << (8 * nbytes - 1)) | 1).to_bytes(nbytes, "big")

    def ecxy(k):
        pn = k.public_key().public_numbers()
        cs = {"secp256r1": 32, "secp384r1": 48}.get(pn.curve.name, 66)
        return pn.x.to_bytes(cs, "big").hex(), pn.y.to_bytes(cs, "big").hex()

    x1, y1 = ecxy(ec1)
    x3, y3 = ecxy(ec384)
    x5, y5 = ecxy(ec521)
    bad_rsa = "not a valid RSA public key (n, e)"
    not_on = "EC point not on the curve"
    keys = [
        ("rsa_ok", "rsa", nb.hex(), "010001", "ok"),
        ("rsa_leading_zero_n", "rsa", "00" + nb.hex(), "010001", "ok"),
        ("rsa_e3", "rsa", nb.hex(), "03", "ok"),
        ("rsa_8192_bits", "rsa", odd(1024).hex(), "010001", "ok"),
        ("rsa_8200_bits", "rsa", odd(1025).hex(), "010001", bad_rsa),
        ("rsa_1024_bits", "rsa", sn.hex(), "010001", "RSA modulus shorter than 2048 bits"),
        ("rsa_even_n", "rsa", (rn.n - 1).to_bytes(256, "big").hex(), "010001", bad_rsa),
        ("rsa_e1", "rsa", nb.hex(), "01", bad_rsa),
        ("rsa_e_even", "rsa", nb.hex(), "010000", bad_rsa),
        ("rsa_e_zero", "rsa", nb.hex(), "00", bad_rsa),
        ("rsa_e_eq_n", "rsa", nb.hex(), nb.hex(), bad_rsa),
        ("rsa_e_empty", "rsa", nb.hex(), "", bad_rsa),
        ("rsa_n_empty", "rsa", "", "010001", bad_rsa),
        ("rsa_n_tiny", "rsa", "ff", "03", bad_rsa),
        ("rsa_n_100_bits", "rsa", odd(13).hex(), "03", bad_rsa),
        # OpenSSL's OPENSSL_RSA_MAX_PUBEXP_BITS: e <= 64 bits once n > 3072 bits
        ("rsa_4096_e_65_bits", "rsa", odd(512).hex(), ((1 << 64) + 1).to_bytes(9, "big").hex(), bad_rsa),
        ("rsa_4096_e_64_bits", "rsa", odd(512).hex(), ((1 << 63) + 1).to_bytes(8, "big").hex(), "ok"),
        ("rsa_3072_e_65_bits", "rsa", odd(384).hex(), ((1 << 64) + 1).to_bytes(9, "big").hex(), "ok"),
        ("ec256_ok", "ec256", x1, y1, "ok"),
        ("ec384_ok", "ec384", x3, y3, "ok"),
        ("ec256_off_curve", "ec256", "01" * 32, "02" * 32, not_on),
        ("ec256_zero", "ec256", "00" * 32, "00" * 32, not_on),
        ("ec256_x_eq_p", "ec256", P256_P.to_bytes(32, "big").hex(), y1, not_on),
        ("ec256_y_plus_p", "ec256", x1, ((int(y1, 16) + P256_P) % (1 << 256)).to_bytes(32, "big").hex(), not_on),
        ("ec256_y_negated", "ec256", x1, (P256_P - int(y1, 16)).to_bytes(32, "big").hex(), "ok"),
        ("ec256_short_x", "ec256", x1[2:], y1, "EC coordinate of the wrong length for the curve"),
        ("ec384_p256_point", "ec384", x1, y1, "EC coordinate of the wrong length for the curve"),
        ("ec384_off_curve", "ec384", "01" * 48, "02" * 48, not_on),
        ("ec521_ok", "ec521", x5, y5, "ok"),
        ("ec521_off_curve", "ec521", "01" * 66, "02" * 66, not_on),
        ("ec521_x_eq_p", "ec521", "01" + "ff" * 65, y5, not_on),
        ("ec521_p384_size", "ec521", x3, y3, "EC coordinate of the wrong length for the curve"),
    ]
    msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
    pss = lambda salt, h=hashes.SHA256(): padding.PSS(mgf=padding.MGF1(h), salt_length=salt)
    rs = rsa1.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    ps = rsa1.sign(msg, pss(32), hashes.SHA256())

    def rs_of(k, h, cs, want=None):
        for _ in range(5000):  # find an r with a given shape (DER edge cases)
            r, s_ = decode_dss_signature(k.sign(msg, ec.ECDSA(h)))
            if want is None or want(r, s_):
                return r, s_
        raise SystemExit("no signature of the wanted shape")

    cat = lambda r, s_, cs: (r.to_bytes(cs, "big") + s_.to_bytes(cs, "big")).hex()
    r1, s1 = rs_of(ec1, hashes.SHA256(), 32)
    rh, sh = rs_of(ec1, hashes.SHA256(), 32, lambda r, s_: r >> 255 and s_ >> 255)
    rz, sz = rs_of(ec1, hashes.SHA256(), 32, lambda r, s_: r >> 248 == 0)
    r3, s3 = rs_of(ec384, hashes.SHA384(), 48)
    r5, s5 = rs_of(ec521, hashes.SHA512(), 66)
    sig_rsa = lambda pad, h: rsa1.sign(msg, pad, h).hex()
    n = rn.n
    sigs = [
        ("rs256_ok", "rsa", "RS256", rs.hex(), True),
        ("rs256_short", "rsa", "RS256", rs[:-1].hex(), False),
        ("rs256_long", "rsa", "RS256", (b"\0" + rs).hex(), False),
        ("rs256_zero", "rsa", "RS256", ("00" * 256), False),
        ("rs256_eq_n", "rsa", "RS256", nb.hex(), False),
        ("rs256_plus_n", "rsa", "RS256", ((int.from_bytes(rs, "big") + n) % (1 << 2048)).to_bytes(256, "big").hex(), False),
        ("rs256_as_ps256", "rsa", "PS256", rs.hex(), False),
        ("rs256_sha384", "rsa", "RS256", rsa1.sign(msg, padding.PKCS1v15(), hashes.SHA384()).hex(), False),
        ("ps256_ok", "rsa", "PS256", ps.hex(), True),
        ("ps256_as_rs256", "rsa", "RS256", ps.hex(), False),
        ("ps256_salt0", "rsa", "PS256", rsa1.sign(msg, pss(0), hashes.SHA256()).hex(), False),
        ("ps256_salt20", "rsa", "PS256", rsa1.sign(msg, pss(20), hashes.SHA256()).hex(), False),
        ("ps256_salt64", "rsa", "PS256", rsa1.sign(msg, pss(64), hashes.SHA256()).hex(), False),
        ("ps256_mgf1_sha1", "rsa", "PS256", rsa1.sign(msg, pss(32, hashes.SHA1()), hashes.SHA256()).hex(), False),
        ("es256_ok", "ec256", "ES256", cat(r1, s1, 32), True),
        ("es256_high_s_negated", "ec256", "ES256", cat(r1, P256_N - s1, 32), True),
        ("es256_high_bits", "ec256", "ES256", cat(rh, sh, 32), True),
        ("es256_r_leading_zero", "ec256", "ES256", cat(rz, sz, 32), True),
        ("es256_r0", "ec256", "ES256", cat(0, s1, 32), False),
        ("es256_s0", "ec256", "ES256", cat(r1, 0, 32), False),
        ("es256_r_eq_n", "ec256", "ES256", cat(P256_N, s1, 32), False),
        ("es256_s_eq_n", "ec256", "ES256", cat(r1, P256_N, 32), False),
        ("es256_s_plus_n", "ec256", "ES256", cat(r1, (s1 + P256_N) % (1 << 256), 32), False),
        ("es256_ones", "ec256", "ES256", "ff" * 64, False),
        ("es256_63_bytes", "ec256", "ES256", cat(r1, s1, 32)[:-2], False),
        ("es256_65_bytes", "ec256", "ES256", cat(r1, s1, 32) + "00", False),
        ("es256_der", "ec256", "ES256", ec1.sign(msg, ec.ECDSA(hashes.SHA256())).hex(), False),
        ("es256_on_p384_key", "ec384", "ES256", cat(r1, s1, 32), False),
        ("es256_as_es384", "ec256", "ES384", cat(r1, s1, 32), False),
        ("es256_rsa_key", "rsa", "ES256", cat(r1, s1, 32), False),
        ("rs256_ec_key", "ec256", "RS256", rs.hex(), False),
        ("es384_ok", "ec384", "ES384", cat(r3, s3, 48), True),
        ("es384_swapped", "ec384", "ES384", cat(s3, r3, 48), False),
        ("rs384_ok", "rsa", "RS384", sig_rsa(padding.PKCS1v15(), hashes.SHA384()), True),
        ("rs512_ok", "rsa", "RS512", sig_rsa(padding.PKCS1v15(), hashes.SHA512()), True),
        ("rs384_as_rs256", "rsa", "RS256", sig_rsa(padding.PKCS1v15(), hashes.SHA384()), False),
        ("rs512_as_rs384", "rsa", "RS384", sig_rsa(padding.PKCS1v15(), hashes.SHA512()), False),
        ("ps384_ok", "rsa", "PS384", sig_rsa(pss(48, hashes.SHA384()), hashes.SHA384()), True),
        ("ps512_ok", "rsa", "PS512", sig_rsa(pss(64, hashes.SHA512()), hashes.SHA512()), True),
        ("ps384_salt32", "rsa", "PS384", sig_rsa(pss(32, hashes.SHA384()), hashes.SHA384()), False),
        ("ps512_mgf1_sha256", "rsa", "PS512", sig_rsa(pss(64), hashes.SHA512()), False),
        ("ps512_as_rs512", "rsa", "RS512", sig_rsa(pss(64, hashes.SHA512()), hashes.SHA512()), False),
        ("es512_ok", "ec521", "ES512", cat(r5, s5, 66), True),
        ("es512_r0", "ec521", "ES512", cat(0, s5, 66), False),
        ("es512_swapped", "ec521", "ES512", cat(s5, r5, 66), False),
        ("es512_131_bytes", "ec521", "ES512", cat(r5, s5, 66)[:-2], False),
        ("es512_on_p384_key", "ec384", "ES512", cat(r5, s5, 66), False),
        ("es384_sha256", "ec384", "ES384", cat(*decode_dss_signature(ec384.sign(msg, ec.ECDSA(hashes.SHA256()))), 48), False),
    ]
    doc = {"keys": [{"name": a, "kind": b, "p1": c, "p2": d, "expect": e} for a, b, c, d, e in keys],
           "key": {"rsa": [nb.hex(), "010001"], "ec256": [x1, y1], "ec384": [x3, y3],
                   "ec521": [x5, y5]},
           "msg": msg.decode(),
           "sigs": [{"name": a, "key": b, "alg": c, "sig": d, "expect": e} for a, b, c, d, e in sigs]}
    with open(os.path.join(out, "seam.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
