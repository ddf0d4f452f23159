# SPDX-License-Identifier: Apache-2.0
# The whole CUnit suite again under AddressSanitizer + UBSan (leaks fatal).
set -uo pipefail
. scripts/lib.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
build_tree build-asan --enable-sanitizers=address,undefined || exit 1
bash scripts/check-tree build-asan
