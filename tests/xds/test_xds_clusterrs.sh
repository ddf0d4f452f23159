#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: circuit breakers, outlier detection and the connect timeout
# per cluster when one route splits a service across two clusters.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_clusterrs.py"
