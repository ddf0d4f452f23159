# SPDX-License-Identifier: Apache-2.0
# The CUnit suite in a Debian 13 (trixie) root, where libmbedtls-dev is
# mbedTLS 3.6 (TLS 1.3): the only place the mbedTLS 3.x code paths of
# libmesh/tls/be_mbedtls*.c and identity/ are compiled and tested.
# The root is made once with debootstrap from Debian's servers and cached
# in $MESH_TRIXIE_ROOT (default /var/cache/libmesh-trixie); if it cannot
# be made the stage fails and says why (it is never skipped).
set -uo pipefail
. scripts/lib.sh
ROOT=${MESH_TRIXIE_ROOT:-/var/cache/libmesh-trixie}
MIRROR=${MESH_TRIXIE_MIRROR:-http://deb.debian.org/debian}
PKGS="build-essential,autoconf,automake,libtool,pkg-config,libmbedtls-dev,\
libssl-dev,libc-ares-dev,libcjson-dev,libcurl4-openssl-dev,libcunit1-dev,\
openssl,curl,haproxy,procps,iproute2,python3,ca-certificates"
fail() { echo "trixie: $*" >&2; echo "trixie: 0 passed, 1 failed"; exit 1; }

ensure_pkgs debootstrap || fail "debootstrap is not installed"
if [ ! -f "$ROOT/.libmesh-ready" ]; then
  mesh_log "debootstrap trixie into $ROOT (once; cached)"
  rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp" || fail "cannot create $ROOT.tmp"
  debootstrap --variant=minbase --include="$PKGS" trixie "$ROOT.tmp" "$MIRROR" \
    >"$ROOT.debootstrap.log" 2>&1 ||
    fail "cannot make the Debian 13 root with debootstrap from $MIRROR (log: $ROOT.debootstrap.log): $(tail -3 "$ROOT.debootstrap.log" | tr '\n' ' ')"
  rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT" && touch "$ROOT/.libmesh-ready" ||
    fail "cannot move the new root into $ROOT"
fi
ver=$(chroot "$ROOT" dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null)
mesh_log "trixie root: libmbedtls-dev $ver"
case "$ver" in 3.6*) ;; *) fail "libmbedtls-dev in $ROOT is \"$ver\", not 3.6" ;; esac

# The tree as it is now (tracked and new files), fresh in the root.
rm -rf "$ROOT/src" && mkdir -p "$ROOT/src" || fail "cannot write $ROOT/src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$ROOT/src" ||
  fail "cannot copy the source tree"
mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null; done; }
trap cleanup EXIT
for d in proc sys dev dev/pts; do
  mkdir -p "$ROOT/$d"
  mount --bind "/$d" "$ROOT/$d" && mounted+=("$ROOT/$d") || fail "cannot bind-mount /$d"
done
mount -t tmpfs tmpfs "$ROOT/tmp" && mounted+=("$ROOT/tmp") || fail "cannot mount /tmp"
chroot "$ROOT" /bin/bash -c '
  set -uo pipefail
  cd /src && (autoreconf -fi >/dev/null 2>&1 || autoreconf -fi) || exit 1
  mkdir -p build-trixie && cd build-trixie && ../configure -q || exit 1
  cd /src && bash scripts/check-tree build-trixie'
