#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: libmesh's ADS stream against tests/xds/cp.py (pushes, NACK,
# control plane killed and restarted).  Run from the build directory.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_e2e.py"
