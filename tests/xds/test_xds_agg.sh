#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: names subscribed on first use and aggregate clusters (gRFC
# A37) with real backends and the scripted control plane.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_agg.py"
