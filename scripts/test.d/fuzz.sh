# SPDX-License-Identifier: Apache-2.0
# Each libFuzzer harness for a short, bounded time (corpus replay already
# runs in make check).  FUZZ_SECONDS overrides the per-harness time.
set -uo pipefail
bash scripts/fuzz "${FUZZ_SECONDS:-10}"
