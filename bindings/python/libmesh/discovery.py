# SPDX-License-Identifier: Apache-2.0
"""Service discovery (include/mesh/discovery.h): the current endpoints of a
configured service, waiting for the first answer, change callbacks."""

import collections

from . import _lib

HEALTH_NAMES = ("unknown", "healthy", "unhealthy", "draining")

Endpoint = collections.namedtuple(
    "Endpoint", "address port weight priority health region zone subzone "
                "labels")
Endpoint.__doc__ = """One endpoint: health is "unknown", "healthy",
"unhealthy" or "draining" (read when the set was converted); labels is a
dict."""


class Endpoints(list):
    """The endpoints of a service at one moment (a list of Endpoint,
    ordered by address then port); .version increases with each change, 0
    before discovery's first answer."""

    def __init__(self, items=(), version=0):
        super().__init__(items)
        self.version = version


def convert(eps):
    """Copy a borrowed mesh_endpoints_t into an Endpoints list."""
    f = _lib.fn
    n = f("mesh_endpoints_count")(eps)
    out = []
    for i in range(n):
        labels = {}
        k, v = _lib.c_char_p(), _lib.c_char_p()
        for j in range(f("mesh_endpoint_label_count")(eps, i)):
            if f("mesh_endpoint_label_at")(eps, i, j, k, v) == 0:
                labels[_lib.dec(k.value)] = _lib.dec(v.value)
        h = f("mesh_endpoint_health")(eps, i)
        out.append(Endpoint(
            _lib.dec(f("mesh_endpoint_address")(eps, i)),
            f("mesh_endpoint_port")(eps, i),
            f("mesh_endpoint_weight")(eps, i),
            f("mesh_endpoint_priority")(eps, i),
            HEALTH_NAMES[h] if 0 <= h < len(HEALTH_NAMES) else "unknown",
            _lib.dec(f("mesh_endpoint_region")(eps, i)),
            _lib.dec(f("mesh_endpoint_zone")(eps, i)),
            _lib.dec(f("mesh_endpoint_subzone")(eps, i)),
            labels))
    return Endpoints(out, f("mesh_endpoints_version")(eps))
