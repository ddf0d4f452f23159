# SPDX-License-Identifier: Apache-2.0
"""Mint the certificates of test_svid_diff's differential table into DIR.

Usage: x509diff_mint.py DIR.  Writes root.crt (the example.org bundle),
other.crt (an unrelated other.org CA) and, per row, <row>.crt (the chain
as sent: leaf first; also split in <row>.leaf.pem and <row>.rest.pem) and
<row>.key.  Every certificate is made here, with
python3-cryptography, so both builds see the very same bytes."""
import datetime as dt
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

D = sys.argv[1]
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
H = dt.timedelta(hours=1)
SERIAL = [100]


def p256():
    return ec.generate_private_key(ec.SECP256R1())


def ku(ds=False, cs=False, crl=False):
    return x509.KeyUsage(ds, False, False, False, False, cs, crl, False, False)


def mk(subj, key, issuer, ikey, ca=None, pathlen=None, sans=("spiffe://example.org/x",),
       kus=None, eku=True, extra=(), nb=None, na=None, md=None, dup_san=False):
    """One certificate.  ca: None = no basicConstraints, else its cA."""
    SERIAL[0] += 1
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE"),
                                  x509.NameAttribute(NameOID.COMMON_NAME, subj)]))
         .issuer_name(issuer.subject if issuer is not None else
                      x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, subj)]))
         .public_key(key.public_key()).serial_number(SERIAL[0])
         .not_valid_before(nb or NOW - H).not_valid_after(na or NOW + 24 * H))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca, pathlen), True)
    if kus is None:
        kus = ku(cs=True, crl=True) if ca else ku(ds=True)
    if kus is not False:
        b = b.add_extension(kus, True)
    if not ca and eku:
        b = b.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(s) if "://" in s else x509.DNSName(s)
             for s in sans]), False)
    for ext, crit in extra:
        b = b.add_extension(ext, crit)
    return b.sign(ikey or key, md or hashes.SHA256())


def pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write(name, chain, key):
    with open(f"{D}/{name}.crt", "wb") as f:
        f.write(pem(*chain))
    with open(f"{D}/{name}.leaf.pem", "wb") as f:  # for openssl s_client
        f.write(pem(chain[0]))
    with open(f"{D}/{name}.rest.pem", "wb") as f:
        f.write(pem(*chain[1:]))
    with open(f"{D}/{name}.key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


TDID = ("spiffe://example.org",)
rk = p256()
root = mk("root", rk, None, None, ca=True, sans=TDID)
write("root", [root], rk)
ok2 = p256()
other = mk("other", ok2, None, None, ca=True, sans=("spiffe://other.org",))
with open(f"{D}/other.crt", "wb") as f:
    f.write(pem(other))


def leaf_row(name, key=None, issuer=root, ikey=rk, chain=(), **kw):
    key = key or p256()
    write(name, [mk("leaf-" + name, key, issuer, ikey, **kw), *chain], key)


def inter(name, issuer=root, ikey=rk, **kw):
    k = p256()
    kw.setdefault("ca", True)
    kw.setdefault("sans", TDID)
    return mk(name, k, issuer, ikey, **kw), k


UNK = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
leaf_row("ok")
leaf_row("unk_crit", extra=[(UNK, True)])
leaf_row("unk_noncrit", extra=[(UNK, False)])
# a known extension marked critical: SAN (X509-SVID 4.1 does not forbid it)
leaf_row("crit_san", sans=(), extra=[(x509.SubjectAlternativeName(
    [x509.UniformResourceIdentifier("spiffe://example.org/x")]), True)])
leaf_row("crit_eku", eku=False, extra=[(x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), True)])
# policy extensions marked critical (mbedTLS 2.28 knows only anyPolicy)
leaf_row("crit_policy", extra=[(x509.CertificatePolicies(
    [x509.PolicyInformation(ObjectIdentifier("1.3.6.1.4.1.55555.2"), None)]), True)])
leaf_row("crit_anypolicy", extra=[(x509.CertificatePolicies(
    [x509.PolicyInformation(ObjectIdentifier("2.5.29.32.0"), None)]), True)])


def der_len(n):
    return bytes([n]) if n < 128 else bytes([0x82, n >> 8, n & 0xff])


def dup_san():
    """Two subjectAltName extensions (no library writes that): a second
    SAN under a placeholder OID (2.5.29.99), renamed in the TBS and signed
    again."""
    key = p256()
    second = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier("spiffe://example.org/y")])
    c = mk("leaf-dup_san", key, root, rk, extra=[(x509.UnrecognizedExtension(
        ObjectIdentifier("2.5.29.99"), second.public_bytes()), False)])
    tbs = c.tbs_certificate_bytes
    assert tbs.count(b"\x06\x03\x55\x1d\x63") == 1
    tbs = tbs.replace(b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x11")
    der = c.public_bytes(serialization.Encoding.DER)
    rest = der[der.index(c.tbs_certificate_bytes) + len(tbs):]
    algid = rest[:2 + rest[1]]
    sig = rk.sign(tbs, ec.ECDSA(hashes.SHA256()))
    body = tbs + algid + b"\x03" + der_len(len(sig) + 1) + b"\x00" + sig
    out = x509.load_der_x509_certificate(b"\x30" + der_len(len(body)) + body)
    write("dup_san", [out], key)



def sha1():
    """A leaf signed ecdsa-with-SHA1.  Newer cryptography/OpenSSL (Debian
    13) refuse to sign a certificate with SHA-1, so it is made with SHA-256,
    the AlgorithmIdentifier rewritten (in the TBS and outside it) and the
    TBS signed again over its SHA-1 digest."""
    key = p256()
    c = mk("leaf-sha1", key, root, rk)
    a256 = b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02"
    a1 = b"\x30\x09\x06\x07\x2a\x86\x48\xce\x3d\x04\x01"
    tbs = c.tbs_certificate_bytes
    assert tbs.count(a256) == 1 and tbs[:2] == b"\x30\x82"
    content = tbs[4:].replace(a256, a1)
    tbs = b"\x30" + der_len(len(content)) + content
    h = hashes.Hash(hashes.SHA1())
    h.update(tbs)
    sig = rk.sign(h.finalize(), ec.ECDSA(utils.Prehashed(hashes.SHA1())))
    body = tbs + a1 + b"\x03" + der_len(len(sig) + 1) + b"\x00" + sig
    out = x509.load_der_x509_certificate(b"\x30" + der_len(len(body)) + body)
    write("sha1", [out], key)


dup_san()
# pathLenConstraint 0 on i1, which signs the CA i2, which signs the leaf
i1, k1 = inter("i1", pathlen=0)
i2, k2 = inter("i2", issuer=i1, ikey=k1)
leaf_row("pathlen0", issuer=i2, ikey=k2, chain=(i2, i1))
i1b, k1b = inter("i1b", pathlen=1)
i2b, k2b = inter("i2b", issuer=i1b, ikey=k1b)
leaf_row("pathlen1", issuer=i2b, ikey=k2b, chain=(i2b, i1b))
leaf_row("out_of_order", issuer=i2b, ikey=k2b, chain=(i1b, i2b))
leaf_row("extra_unrelated", issuer=i2b, ikey=k2b, chain=(i2b, other, i1b))
# nameConstraints (RFC 5280: MUST be critical)
ncp = x509.NameConstraints([x509.UniformResourceIdentifier("other.org")], None)
nce = x509.NameConstraints(None, [x509.UniformResourceIdentifier("other.org")])
inc, knc = inter("nc_permit", extra=[(ncp, True)])
leaf_row("nc_permit_other", issuer=inc, ikey=knc, chain=(inc,))
inc, knc = inter("nc_exclude", extra=[(nce, True)])
leaf_row("nc_exclude_other", issuer=inc, ikey=knc, chain=(inc,))
inc, knc = inter("nc_permit_nc", extra=[(ncp, False)])
leaf_row("nc_permit_noncrit", issuer=inc, ikey=knc, chain=(inc,))
inc, knc = inter("nobc", ca=None)
leaf_row("int_no_bc", issuer=inc, ikey=knc, chain=(inc,))
inc, knc = inter("noks", kus=ku(crl=True))
leaf_row("int_no_certsign", issuer=inc, ikey=knc, chain=(inc,))
inc, knc = inter("int_expired", nb=NOW - 48 * H, na=NOW - 24 * H)
leaf_row("int_expired", issuer=inc, ikey=knc, chain=(inc,))
inc, knc = inter("int_future", nb=NOW + 24 * H, na=NOW + 48 * H)
leaf_row("int_future", issuer=inc, ikey=knc, chain=(inc,))
# SPIFFE ID spellings
for name, uri in [("uri_upper_scheme", "SPIFFE://example.org/x"),
                  ("uri_upper_td", "spiffe://EXAMPLE.org/x"),
                  ("uri_pct", "spiffe://example.org/a%20b"),
                  ("uri_slash", "spiffe://example.org/x/"),
                  ("uri_query", "spiffe://example.org/x?a=b"),
                  ("uri_frag", "spiffe://example.org/x#f"),
                  ("uri_port", "spiffe://example.org:443/x"),
                  ("uri_userinfo", "spiffe://u@example.org/x")]:
    leaf_row(name, sans=(uri,))
leaf_row("uri_dns", sans=("spiffe://example.org/x", "x.example.org"))
# keys and hashes
sha1()
leaf_row("p384", key=ec.generate_private_key(ec.SECP384R1()))
leaf_row("rsa2048", key=rsa.generate_private_key(65537, 2048))
leaf_row("rsa1024", key=rsa.generate_private_key(65537, 1024))
leaf_row("p384_sha384", key=ec.generate_private_key(ec.SECP384R1()), md=hashes.SHA384())
