#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: LOGICAL_DNS clusters (gRFC A37) from the scripted control
# plane, resolved through a dnsmasq the test starts, with real backends.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_ldns.py"
