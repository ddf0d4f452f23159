#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a user of an installed libmesh gets: `./configure --prefix=P && make
# install` into a temporary prefix, then, with nothing from the build tree:
#   man      a page for every exported symbol, lint-clean (mandoc), `man`
#            finds mesh_dial;
#   c        a program built with pkg-config and an rpath runs without
#            LD_LIBRARY_PATH; `pkg-config --static --libs mesh` links it
#            against libmesh.a;
#   python   the package `make install` put under P, and a venv with
#            `pip install --no-index --no-build-isolation bindings/python`,
#            find the installed library (pkg-config's libdir / the recorded
#            libdir, no LIBMESH_PATH) and run an mTLS round trip;
#   go       a module outside the tree (its go.mod replaces libmesh.dev/mesh
#            with bindings/go) builds with `#cgo pkg-config: mesh` against P.
# Prints "install: N passed, M failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bdir=${MESH_INSTALL_BUILD:-$top/build-install}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A fixed prefix inside the build dir: configured once, emptied each run
# (a fresh prefix each time would mean a full rebuild).
P="$bdir/prefix"
p=0; f=0
ok() { p=$((p + 1)); [ -n "${VERBOSE:-}" ] && echo "ok: $1"; return 0; }
ko() { echo "FAIL: $1"; [ -f "$tmp/out" ] && sed 's/^/    /' "$tmp/out" | tail -30; f=$((f + 1)); return 0; }
check() { local name=$1; shift; if "$@" >"$tmp/out" 2>&1; then ok "$name"; else ko "$name"; fi; }
unset LD_LIBRARY_PATH LIBMESH_PATH PYTHONPATH
# Debian's python3 (its python3-setuptools and python3-wheel build the
# package); another python3 first in PATH (pyenv) may lack wheel.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

mkdir -p "$bdir"
rm -rf "$P"
if [ ! -f "$bdir/Makefile" ] || [ "$top/configure" -nt "$bdir/Makefile" ] ||
   ! grep -qx "prefix = $P" "$bdir/Makefile"; then
  (cd "$bdir" && "$top/configure" -q --prefix="$P") >"$tmp/build.log" 2>&1
fi
if ! (cd "$bdir" && make -j"$(nproc)" -s install) >>"$tmp/build.log" 2>&1; then
  echo "FAIL: configure && make install"; tail -40 "$tmp/build.log"
  echo "install: 0 passed, 1 failed"; exit 1
fi
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
libdir=$(pkg-config --variable=libdir mesh)
version=$(sed -n 's/^AC_INIT(\[libmesh\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")

# ---- man pages
man3="$P/share/man/man3"
missing=""
for sym in $(nm -D --defined-only "$libdir/libmesh.so" | awk '$2 == "T" && $3 ~ /^mesh_/ {sub(/@.*/, "", $3); print $3}'); do
  [ -e "$man3/$sym.3" ] || missing="$missing $sym"
done
if [ -z "$missing" ]; then ok "man: every exported symbol has a page"
else echo "FAIL: man: no page for:$missing"; f=$((f + 1)); fi
check "man: pages lint-clean (mandoc -T lint -W warning)" \
  bash -c "cd '$man3' && mandoc -T lint -W warning *.3"
check "man: man finds mesh_dial and mesh_call_opts_free" bash -c "
  MANPATH='$P/share/man' man -P cat mesh_dial | grep -q 'mesh_dial(' &&
  MANPATH='$P/share/man' man -P cat mesh_call_opts_free | grep -q 'mesh_call_opts_free'"

# ---- C: pkg-config, rpath, static
cat >"$tmp/app.c" <<'C'
#include <mesh/mesh.h>
#include <stdio.h>
int main(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new("{\"log\": {\"level\": \"error\"}}", &m, &st);
  printf("libmesh %s %s\n", mesh_version(), mesh_code_name(rc));
  mesh_free(m);
  return 0;
}
C
check "c: pkg-config --cflags --libs mesh with an rpath builds" bash -c "
  cc -Wall -Werror '$tmp/app.c' -o '$tmp/app' \$(pkg-config --cflags --libs mesh) \
    -Wl,-rpath,\$(pkg-config --variable=libdir mesh) -pthread"
check "c: runs without LD_LIBRARY_PATH" bash -c "
  env -u LD_LIBRARY_PATH '$tmp/app' | grep -qx 'libmesh $version MESH_OK'"
mkdir -p "$tmp/static"
cp "$libdir/libmesh.a" "$tmp/static/"
check "c: pkg-config --static --libs mesh links libmesh.a" bash -c "
  cc '$tmp/app.c' -o '$tmp/app-static' \$(pkg-config --cflags mesh) \
    -L'$tmp/static' \$(pkg-config --static --libs mesh) &&
  ! ldd '$tmp/app-static' | grep -q libmesh.so &&
  '$tmp/app-static' | grep -qx 'libmesh $version MESH_OK'"

# ---- Python
cat >"$tmp/use.py" <<'PY'
import os, sys, tempfile, threading
import libmesh
want_version, want_dir = sys.argv[1], sys.argv[2]
assert libmesh.__version__ == want_version, libmesh.__version__
assert libmesh.version() == want_version, libmesh.version()
assert os.path.realpath(libmesh.library_path()).startswith(os.path.realpath(want_dir)), libmesh.library_path()
assert os.path.realpath(libmesh.__file__).find("bindings/python") < 0, libmesh.__file__
d = tempfile.mkdtemp()
ca, key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
libmesh.ca_init("example.org", ca, key)
def cfg(name):
    crt, k = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    libmesh.ca_issue(ca, key, "spiffe://example.org/" + name, crt, k)
    return {"name": name, "log": {"level": "error"},
            "identity": {"cert": crt, "key": k, "bundle": ca}}
with libmesh.Mesh(cfg("server")) as s, libmesh.Mesh(cfg("client")) as c:
    ln = s.listen("127.0.0.1:0")
    def serve():
        with ln.accept(timeout=10) as conn:
            conn.sendall(b"hi " + conn.peer_id.encode())
    t = threading.Thread(target=serve); t.start()
    with c.dial("127.0.0.1:%d" % ln.port, timeout=10) as conn:
        print(conn.recv(100).decode())
    t.join()
PY
pysite=$(dirname "$(find "$P/lib" -path '*-packages/libmesh' -type d | head -1)")
check "python: the package make install put under the prefix (recorded libdir)" bash -c "
  cd '$tmp' && env -u PKG_CONFIG_PATH PYTHONPATH='$pysite' $py use.py '$version' '$libdir' |
  grep -qx 'hi spiffe://example.org/client'"
check "python: venv + pip install --no-index --no-build-isolation bindings/python" bash -c "
  $py -m venv --system-site-packages '$tmp/venv' &&
  '$tmp/venv/bin/pip' install -q --no-index --no-build-isolation '$top/bindings/python' &&
  '$tmp/venv/bin/pip' show libmesh-proxyless | grep -qx 'Version: $version'"
check "python: the venv's package finds the library through pkg-config" bash -c "
  cd '$tmp' && '$tmp/venv/bin/python' use.py '$version' '$libdir' |
  grep -qx 'hi spiffe://example.org/client'"

# ---- Go: a module outside the tree, against the prefix
if command -v go >/dev/null; then
  mkdir -p "$tmp/gomod"
  cat >"$tmp/gomod/main.go" <<'GO'
package main

import (
	"fmt"

	mesh "libmesh.dev/mesh"
)

func main() {
	m, err := mesh.New(`{"log": {"level": "error"}}`)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	fmt.Println("libmesh", mesh.Version())
}
GO
  printf 'module example.com/app\n\ngo 1.19\n\nrequire libmesh.dev/mesh v0.0.0\n\nreplace libmesh.dev/mesh => %s\n' \
    "$top/bindings/go" >"$tmp/gomod/go.mod"
  check "go: a module outside the tree builds with #cgo pkg-config: mesh and runs" bash -c "
    cd '$tmp/gomod' && unset CGO_CFLAGS CGO_LDFLAGS &&
    GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE='$tmp/gocache' GOPATH='$tmp/gopath' \
    CGO_LDFLAGS='-Wl,-rpath,$libdir' go build -o app . &&
    env -u LD_LIBRARY_PATH ./app | grep -qx 'libmesh $version'"
else
  echo "FAIL: go not installed (apt-get install golang-go)"; f=$((f + 1))
fi

echo "install: $p passed, $f failed"
[ "$f" -eq 0 ]
