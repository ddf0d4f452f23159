#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: a canary shifted live through xDS (weighted clusters) while
# threads call real backends.  Run from the build directory.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_canary.py"
