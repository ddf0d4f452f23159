#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: gRPC's own xDS client (Debian python3-grpcio) and libmesh's
# decoders against the same scripted management server (tests/xds/cp.py).
# Run from the build directory (automake does); Debian's python3 on purpose
# (python3-grpcio lives there).
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_interop.py"
