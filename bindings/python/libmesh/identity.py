# SPDX-License-Identifier: Apache-2.0
"""SPIFFE IDs and the development CA (include/mesh/identity.h)."""

import ctypes
import os

from . import _lib

# Flags for ca_issue(): all but DEFAULT break the X.509-SVID rules on
# purpose, for negative tests.
ISSUE_DEFAULT = 0
ISSUE_AS_CA = 1
ISSUE_NO_URI = 2
ISSUE_TWO_URIS = 4
ISSUE_CHAIN = 8


def _path(p):
    return _lib.enc(os.fspath(p))


# MESH_CA_LIFETIME_DEFAULT_S: 10 years, as `meshctl ca init` and Go.
CA_LIFETIME_DEFAULT = 315360000


def ca_init(trust_domain, cert_path, key_path,
            lifetime=CA_LIFETIME_DEFAULT):
    """Create a self-signed ECDSA P-256 CA for trust_domain, valid for
    `lifetime` seconds from now, written as PEM (key mode 0600)."""
    st = _lib.Status()
    rc = _lib.fn("mesh_ca_init")(_lib.enc(trust_domain), int(lifetime),
                                 _path(cert_path), _path(key_path),
                                 ctypes.byref(st))
    _lib.check(rc, st)


def ca_issue(ca_cert, ca_key, spiffe_id, cert_path, key_path,
             not_before=0, not_after=0, flags=ISSUE_DEFAULT):
    """Issue an X.509-SVID for spiffe_id signed by the CA; writes the chain
    and a fresh P-256 key as PEM.  not_before/not_after are Unix seconds
    (0, 0: from a minute ago to an hour from now)."""
    st = _lib.Status()
    rc = _lib.fn("mesh_ca_issue")(_path(ca_cert), _path(ca_key),
                                  _lib.enc(spiffe_id), int(not_before),
                                  int(not_after), int(flags),
                                  _path(cert_path), _path(key_path),
                                  ctypes.byref(st))
    _lib.check(rc, st)


def spiffe_id_validate(spiffe_id):
    """Raise CredentialError (MESH_ERR_SPIFFE_ID) with the reason unless
    spiffe_id is valid per the SPIFFE ID specification."""
    st = _lib.Status()
    _lib.check(_lib.fn("mesh_spiffe_id_validate")(_lib.enc(spiffe_id),
                                                  ctypes.byref(st)), st)


def spiffe_id_parse(spiffe_id):
    """(trust_domain, path) of a valid SPIFFE ID; path is "" or "/a/b"."""
    st = _lib.Status()
    td = ctypes.create_string_buffer(256)
    path = ctypes.create_string_buffer(2049)
    rc = _lib.fn("mesh_spiffe_id_parse")(_lib.enc(spiffe_id), td, len(td),
                                         path, len(path), ctypes.byref(st))
    _lib.check(rc, st)
    return _lib.dec(td.value), _lib.dec(path.value)


def spiffe_match(pattern, spiffe_id):
    """Does spiffe_id match pattern ("*", an exact ID, "td/prefix*",
    "spiffe://td")?"""
    return bool(_lib.fn("mesh_spiffe_match")(_lib.enc(pattern),
                                             _lib.enc(spiffe_id)))
