#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark smoke: every part of bench/run for a fraction of a second, so
# the benchmarks build, run and report (docs/benchmarks.md is made by the
# full run, not here).  Prints "bench: N passed, M failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${MESH_BUILD:-build} timeout -k 10 600 bash bench/run --smoke
