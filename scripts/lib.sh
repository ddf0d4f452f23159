# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/demo and scripts/test: install what is missing, build.
# Sourced, not run.

# Debian packages the build and the tests use.  Keep this list the one
# source of truth: CI runs on a fresh machine.
MESH_BUILD_PKGS="build-essential autoconf automake libtool pkg-config \
libmbedtls-dev libssl-dev libc-ares-dev libcjson-dev libcurl4-openssl-dev libcunit1-dev \
python3 libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler"
MESH_TEST_PKGS="openssl curl haproxy dnsmasq-base etcd-server etcd-client \
prometheus clang libclang-rt-14-dev valgrind golang-go python3 gnuplot \
chromium procps iproute2 protobuf-compiler python3-protobuf nghttp2-client nghttp2-server \
python3-venv python3-pip python3-setuptools python3-wheel mandoc man-db \
python3-jwt python3-cryptography \
librtmp-dev libssh2-1-dev libpsl-dev libkrb5-dev libldap-dev libzstd-dev libbrotli-dev \
libidn2-dev zlib1g-dev python3-grpcio protobuf-compiler-grpc golang-google-grpc-dev \
debootstrap"
# (python3-venv ... python3-wheel: the install stage's offline pip install;
# mandoc, man-db: man page lint and lookup; python3-jwt, python3-cryptography:
# the independent JWT peer of tests/test_authn; the -dev packages after them:
# libcurl's private static dependencies, for `pkg-config --static --libs
# mesh`, which Debian's libcurl4-openssl-dev does not pull in;
# golang-google-grpc-dev: the go stage's examples/grpc-go, GOPATH mode;
# debootstrap: the trixie stage's Debian 13 root.)
# The demo's xDS act: its control plane (examples/demo/xds_cp.py) is a
# python3-grpcio server with classes protoc generates from libmesh/xds/proto.
MESH_DEMO_PKGS="python3 python3-grpcio python3-protobuf protobuf-compiler"

mesh_log() { printf '==> %s\n' "$*" >&2; }

# ensure_pkgs PKG...: apt-get install the ones not yet installed.
ensure_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  mesh_log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_tree DIR [configure args...]: out-of-tree build in DIR.
build_tree() {
  local dir=$1; shift
  local top; top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ]; then
    mesh_log "autoreconf"
    (cd "$top" && autoreconf -fi >/dev/null 2>&1) || (cd "$top" && autoreconf -fi)
  fi
  mkdir -p "$dir"
  if [ ! -f "$dir/Makefile" ] || [ "$top/configure" -nt "$dir/Makefile" ]; then
    mesh_log "configure $*"
    (cd "$dir" && "$top/configure" -q "$@")
  fi
  mesh_log "make ($dir)"
  make -C "$dir" -j"$(nproc)" -s >/dev/null
}
