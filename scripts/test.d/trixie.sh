# SPDX-License-Identifier: Apache-2.0
# The whole CUnit suite in a Debian 13 (trixie) root, where libmbedtls-dev
# is mbedTLS 3.6 with TLS 1.3 on by default: the only place the mbedTLS
# 3.x code of libmesh/tls/be_mbedtls*.c, identity/ and authn/ is compiled
# and tested.  Then the cross-backend test against this machine's OpenSSL
# build: its libmesh dials the root's `meshctl serve`, and the root's
# `meshctl dial` (mbedTLS 3.6) dials it; TLS 1.2 and 1.3, full and resumed.
#
# The root is made with debootstrap from Debian's servers
# ($MESH_TRIXIE_MIRROR) and cached in $MESH_TRIXIE_ROOT (default
# /var/cache/libmesh-trixie); its packages follow MESH_BUILD_PKGS and
# MESH_TEST_PKGS of scripts/lib.sh.  If it cannot be made the stage fails
# and says why: it is never skipped.  Nothing of trixie touches this
# machine's apt sources.  Measured on the 2-core CI machine: warm cache
# 5 min at load 8-11 (copy, configure, -j2 build, suite, cross test), 13
# min at load 14-23; cold cache 5 min at load 3-10 (debootstrap 30 s,
# packages 42 s), up to +6 min when the mirror is slow; the root: 2.6 GB.
set -uo pipefail
. scripts/lib.sh
ROOT=${MESH_TRIXIE_ROOT:-/var/cache/libmesh-trixie}
MIRROR=${MESH_TRIXIE_MIRROR:-http://deb.debian.org/debian}
fail() { echo "trixie: $*" >&2; echo "trixie-root: 0 passed, 1 failed"; exit 1; }

# Packages for the root: everything `make check` uses.  Left out: what
# only other stages need (sanitizers, valgrind, Go, bindings' pip, man
# pages, libcurl's static dependencies) and bookworm-only names.
nocheck=" clang libclang-rt-14-dev valgrind golang-go gnuplot python3-venv \
python3-pip python3-setuptools python3-wheel mandoc man-db librtmp-dev \
libssh2-1-dev libpsl-dev libkrb5-dev libldap-dev libzstd-dev libbrotli-dev \
libidn2-dev zlib1g-dev debootstrap "
pkgs=ca-certificates
for p in $MESH_BUILD_PKGS $MESH_TEST_PKGS; do
  [[ $nocheck == *" $p "* ]] || pkgs+=" $p"
done

ensure_pkgs debootstrap || fail "debootstrap is not installed"
mkdir -p "$(dirname "$ROOT")" || fail "cannot create $(dirname "$ROOT")"
exec 9>"$ROOT.lock" && flock 9 || fail "cannot lock $ROOT.lock"

# Never leave (or delete through) a bind mount of /dev, /proc, /sys.
unmount_all() {
  findmnt -rn -o TARGET | grep -E "^$ROOT(\.tmp)?/" | sort -r |
    while read -r m; do umount -l "$m"; done
}
unmount_all
trap unmount_all EXIT

if [ ! -f "$ROOT/.libmesh-ready" ]; then
  mesh_log "debootstrap trixie into $ROOT from $MIRROR (once; cached)"
  rm -rf --one-file-system "$ROOT.tmp" && mkdir -p "$ROOT.tmp" ||
    fail "cannot create $ROOT.tmp"
  debootstrap --variant=minbase trixie "$ROOT.tmp" "$MIRROR" \
    >"$ROOT.debootstrap.log" 2>&1 ||
    fail "cannot make the Debian 13 root with debootstrap from $MIRROR (log: $ROOT.debootstrap.log): $(tail -3 "$ROOT.debootstrap.log" | tr '\n' ' ')"
  rm -rf --one-file-system "$ROOT" && mv "$ROOT.tmp" "$ROOT" &&
    touch "$ROOT/.libmesh-ready" || fail "cannot move the new root into $ROOT"
fi

for d in proc sys dev dev/pts; do
  mkdir -p "$ROOT/$d" && mount --bind "/$d" "$ROOT/$d" ||
    fail "cannot bind-mount /$d into $ROOT"
done
mount -t tmpfs tmpfs "$ROOT/tmp" || fail "cannot mount a tmpfs on $ROOT/tmp"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null

# Packages: installed when the wanted list changed (first run, or lib.sh
# gained one).
want=$(tr ' ' '\n' <<<"$pkgs" | sort -u)
if [ "$want" != "$(cat "$ROOT/.libmesh-pkgs" 2>/dev/null)" ]; then
  mesh_log "installing packages in the trixie root"
  chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs" \
    >"$ROOT.apt.log" 2>&1 ||
    fail "cannot install the packages in the Debian 13 root (log: $ROOT.apt.log): $(tail -3 "$ROOT.apt.log" | tr '\n' ' ')"
  echo "$want" >"$ROOT/.libmesh-pkgs"
fi
ver=$(chroot "$ROOT" dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null)
case "$ver" in 3.6*) ;; *) fail "libmbedtls-dev in $ROOT is \"$ver\", not 3.6" ;; esac
mesh_log "trixie root: libmbedtls-dev $ver"

# The tree as it is now (tracked and new files), fresh in the root.
rm -rf --one-file-system "$ROOT/src" && mkdir -p "$ROOT/src" ||
  fail "cannot write $ROOT/src"
# Without git (an exported tree, as in a fresh root): every file but the
# build trees.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -co --exclude-standard -z | tar --null -T - -cf -
else
  tar --exclude='./build*' --exclude=./autom4te.cache --exclude=./.git -cf - .
fi | tar -xf - -C "$ROOT/src" || fail "cannot copy the source tree"
chroot "$ROOT" /bin/bash -c '
  cd /src && { autoreconf -fi >/dev/null 2>&1 || autoreconf -fi; } &&
  mkdir -p build-trixie && cd build-trixie && ../configure -q' ||
  fail "configure failed in the trixie root"
chroot "$ROOT" /bin/bash -c 'cd /src && bash scripts/check-tree build-trixie' |
  sed 's/^\([A-Za-z0-9_ ()-]*\): \([0-9]* passed\)/\1 (trixie): \2/'
rc=${PIPESTATUS[0]}

# Cross-backend: this machine's OpenSSL build against the root's meshctl
# (run in the root, its /tmp the test's /tmp so the files it writes are
# there).
build_tree build-openssl --with-tls=openssl &&
  make -C build-openssl -j2 -s tests/test_tls_cross >/dev/null ||
  fail "cannot build build-openssl for the cross test"
peer=$PWD/build-openssl/trixie-meshctl
# chroot(1) changes to the new root's /: the wrapper goes back to the
# caller's directory (the same path in the root when it is under the bound
# /tmp, as the test's files are), so relative paths name the same files.
cat >"$peer" <<WRAPPER && chmod +x "$peer" || fail "cannot write $peer"
#!/bin/sh
exec chroot "$ROOT" /bin/sh -c 'cd "\$0" 2>/dev/null || cd /; exec /src/build-trixie/tools/meshctl "\$@"' "\$PWD" "\$@"
WRAPPER
# The root's /tmp is this machine's for the test (unmount_all takes it off
# at exit); a mount namespace per call (unshare -m) fails where this stage
# itself runs in a chroot ("cannot change root filesystem propagation").
mount --bind /tmp "$ROOT/tmp" || fail "cannot bind /tmp into $ROOT"
log=build-openssl/tests/test_tls_cross.trixie.log
MESH_PEER_MESHCTL=$peer build-openssl/tests/test_tls_cross >"$log" 2>&1
r=$?
umount -l "$ROOT/tmp"
grep -h " passed, [0-9]* failed$" "$log" |
  sed 's/^test_tls_cross/test_tls_cross(openssl vs trixie mbedTLS 3.6)/' ||
  echo "test_tls_cross(openssl vs trixie mbedTLS 3.6): 0 passed, 1 failed"
if [ $r -ne 0 ]; then echo "---- $log"; tail -40 "$log"; rc=1; fi
exit "$rc"
