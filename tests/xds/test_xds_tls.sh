#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check: the ADS connection over TLS (bootstrap channel_creds "tls")
# against tests/xds/cp.py with grpc.ssl_server_credentials.  Run from the
# build directory.
here=$(cd "$(dirname "$0")" && pwd)
TEST_BUILDDIR=$(pwd) exec timeout 300 /usr/bin/python3 "$here/test_xds_tls.py"
