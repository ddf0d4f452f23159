#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: the RDS route table applied per request (paths, headers,
# retries, timeouts, splits, a live update) with real backends.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_routes.py"
