# SPDX-License-Identifier: Apache-2.0
"""Loading libmesh and declaring its C functions (ctypes, standard library).

The shared library is found, in order, at:
  1. $LIBMESH_PATH: the .so file itself, or a directory holding libmesh.so
     (a build tree's ``build/libmesh/.libs`` works);
  2. the libdir of ``pkg-config mesh`` (PKG_CONFIG_PATH applies);
  3. the libdir recorded by ``make install`` when it installed this package;
  4. the loader's search path (``libmesh.so.0``, then ``ctypes.util``).

Functions are bound on first use, not at import: a library built without
some part (say, no call layer yet) still serves everything else, and using a
missing function raises MeshError(MESH_ERR_UNSUPPORTED) naming it.

ctypes.CDLL releases the GIL around every call, so a blocking mesh_accept()
in one thread does not stall the others.
"""

import ctypes
import ctypes.util
import os
import subprocess
import threading

from . import errors

c_int = ctypes.c_int
c_long = ctypes.c_long
c_uint = ctypes.c_uint
c_int64 = ctypes.c_int64
c_size_t = ctypes.c_size_t
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p


class Status(ctypes.Structure):
    """mesh_status_t: plain data, fixed size (see include/mesh/error.h)."""

    _fields_ = [("code", c_int), ("message", ctypes.c_char * 384)]

    def text(self):
        return self.message.decode("utf-8", "replace")


StatusP = ctypes.POINTER(Status)
# Opaque handles travel as void pointers.
Handle = c_void_p
HandleP = ctypes.POINTER(c_void_p)

CONFIG_ERROR_FN = ctypes.CFUNCTYPE(None, c_char_p, c_void_p)
ENDPOINTS_FN = ctypes.CFUNCTYPE(None, c_char_p, c_void_p, c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)
SPAN_HOOK_FN = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)

# name: (restype, argtypes), straight from include/mesh/*.h.
PROTOTYPES = {
    # error.h
    "mesh_strerror": (c_char_p, [c_int]),
    "mesh_code_name": (c_char_p, [c_int]),
    # mesh.h
    "mesh_version": (c_char_p, []),
    "mesh_version_num": (c_uint, []),
    "mesh_new": (c_int, [c_char_p, HandleP, StatusP]),
    "mesh_new_from_file": (c_int, [c_char_p, HandleP, StatusP]),
    "mesh_free": (None, [Handle]),
    "mesh_config_check": (c_int, [c_char_p, CONFIG_ERROR_FN, c_void_p]),
    "mesh_config_set_max_bytes": (c_size_t, [c_size_t]),
    "mesh_config_max_bytes": (c_size_t, []),
    "mesh_set_log": (None, [Handle, c_int, LOG_FN, c_void_p]),
    "mesh_log_level_name": (c_char_p, [c_int]),
    "mesh_backend_fd": (c_int, [Handle]),
    "mesh_backend_timeout": (c_int, [Handle]),
    "mesh_process": (c_int, [Handle]),
    # identity.h
    "mesh_spiffe_id_validate": (c_int, [c_char_p, StatusP]),
    "mesh_spiffe_id_parse": (c_int, [c_char_p, c_char_p, c_size_t, c_char_p,
                                     c_size_t, StatusP]),
    "mesh_spiffe_match": (c_int, [c_char_p, c_char_p]),
    "mesh_svid_expires_in": (c_int64, [Handle]),
    "mesh_self_id": (c_int, [Handle, c_char_p, c_size_t]),
    "mesh_jwt_svid": (c_int, [Handle, c_char_p, c_char_p, c_size_t, StatusP]),
    "mesh_validate_jwt_svid": (c_int, [Handle, c_char_p, c_char_p, c_char_p,
                                       c_size_t, c_char_p, c_size_t, StatusP]),
    "mesh_identity_reload": (c_int, [Handle, StatusP]),
    "mesh_ca_init": (c_int, [c_char_p, c_int64, c_char_p, c_char_p, StatusP]),
    "mesh_ca_issue": (c_int, [c_char_p, c_char_p, c_char_p, c_int64, c_int64,
                              c_uint, c_char_p, c_char_p, StatusP]),
    # cancel.h
    "mesh_cancel_new": (c_int, [HandleP]),
    "mesh_cancel_free": (None, [Handle]),
    "mesh_cancel_fire": (c_int, [Handle]),
    "mesh_cancel_fired": (c_int, [Handle]),
    "mesh_cancel_fd": (c_int, [Handle]),
    "mesh_cancel_wakeup_fd": (c_int, [Handle]),
    # conn.h
    "mesh_dial_opts_new": (Handle, []),
    "mesh_dial_opts_free": (None, [Handle]),
    "mesh_dial_opts_set_timeout": (c_int, [Handle, c_int]),
    "mesh_dial_opts_add_peer": (c_int, [Handle, c_char_p]),
    "mesh_dial_opts_set_alpn": (c_int, [Handle, c_char_p]),
    "mesh_dial_opts_set_nonblocking": (c_int, [Handle, c_int]),
    "mesh_dial_opts_set_hash_key": (c_int, [Handle, c_char_p, c_size_t]),
    "mesh_dial": (c_int, [Handle, c_char_p, Handle, HandleP, StatusP]),
    "mesh_listen": (c_int, [Handle, c_char_p, HandleP, StatusP]),
    "mesh_listener_port": (c_int, [Handle]),
    "mesh_listener_fd": (c_int, [Handle]),
    "mesh_listener_close": (None, [Handle]),
    "mesh_accept": (c_int, [Handle, c_int, HandleP, StatusP]),
    "mesh_accept_start": (c_int, [Handle, HandleP, StatusP]),
    "mesh_conn_handshake": (c_int, [Handle, StatusP]),
    "mesh_conn_read": (c_long, [Handle, c_void_p, c_size_t]),
    "mesh_conn_write": (c_long, [Handle, c_void_p, c_size_t]),
    "mesh_conn_write_all": (c_int, [Handle, c_void_p, c_size_t]),
    "mesh_conn_set_timeouts": (c_int, [Handle, c_int, c_int]),
    "mesh_conn_shutdown": (c_int, [Handle]),
    "mesh_conn_close": (None, [Handle]),
    "mesh_conn_fd": (c_int, [Handle]),
    "mesh_conn_peer_id": (c_char_p, [Handle]),
    "mesh_conn_cipher": (c_char_p, [Handle]),
    "mesh_conn_tls_version": (c_char_p, [Handle]),
    "mesh_conn_alpn": (c_char_p, [Handle]),
    "mesh_conn_resumed": (c_int, [Handle]),
    "mesh_conn_is_tls": (c_int, [Handle]),
    "mesh_conn_peer_addr": (c_char_p, [Handle]),
    "mesh_conn_peer_chain_pem": (c_long, [Handle, c_char_p, c_size_t]),
    "mesh_conn_errmsg": (c_char_p, [Handle]),
    # metrics.h
    "mesh_metrics_text": (c_int, [Handle, c_char_p, c_size_t,
                                  ctypes.POINTER(c_size_t)]),
    "mesh_admin_port": (c_int, [Handle]),
    # discovery.h
    "mesh_endpoints_get": (c_int, [Handle, c_char_p, HandleP, StatusP]),
    "mesh_endpoints_dup": (Handle, [Handle]),
    "mesh_endpoints_free": (None, [Handle]),
    "mesh_endpoints_count": (c_size_t, [Handle]),
    "mesh_endpoints_version": (ctypes.c_uint64, [Handle]),
    "mesh_endpoint_address": (c_char_p, [Handle, c_size_t]),
    "mesh_endpoint_port": (c_int, [Handle, c_size_t]),
    "mesh_endpoint_weight": (ctypes.c_uint32, [Handle, c_size_t]),
    "mesh_endpoint_priority": (ctypes.c_uint32, [Handle, c_size_t]),
    "mesh_endpoint_health": (c_int, [Handle, c_size_t]),
    "mesh_endpoint_region": (c_char_p, [Handle, c_size_t]),
    "mesh_endpoint_zone": (c_char_p, [Handle, c_size_t]),
    "mesh_endpoint_subzone": (c_char_p, [Handle, c_size_t]),
    "mesh_endpoint_label_count": (c_size_t, [Handle, c_size_t]),
    "mesh_endpoint_label_at": (c_int, [Handle, c_size_t, c_size_t,
                                       ctypes.POINTER(c_char_p),
                                       ctypes.POINTER(c_char_p)]),
    "mesh_endpoint_label": (c_char_p, [Handle, c_size_t, c_char_p]),
    "mesh_discovery_wait": (c_int, [Handle, c_char_p, c_int, StatusP]),
    "mesh_discovery_watch": (c_int, [Handle, c_char_p, ENDPOINTS_FN,
                                     c_void_p, StatusP]),
    "mesh_discovery_unwatch": (c_int, [Handle, c_int]),
}

_lock = threading.Lock()
_dll = None
_path = None
_bound = {}


def _pkgconfig_libdir():
    """`pkg-config --variable=libdir mesh`, or None."""
    try:
        out = subprocess.run(["pkg-config", "--variable=libdir", "mesh"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    d = out.stdout.strip()
    return d if out.returncode == 0 and d else None


def _installed_libdir():
    """The libdir written by `make install` next to this file, or None."""
    try:
        from . import _install
    except ImportError:
        return None
    return getattr(_install, "LIBDIR", None)


def _candidates():
    env = os.environ.get("LIBMESH_PATH")
    if env:
        if os.path.isdir(env):
            for name in ("libmesh.so", "libmesh.so.0"):
                p = os.path.join(env, name)
                if os.path.exists(p):
                    return [p]
            return [os.path.join(env, "libmesh.so")]
        return [env]
    names = []
    for d in (_pkgconfig_libdir(), _installed_libdir()):
        p = os.path.join(d, "libmesh.so.0") if d else None
        if p and os.path.exists(p) and p not in names:
            names.append(p)
    names.append("libmesh.so.0")
    found = ctypes.util.find_library("mesh")
    if found:
        names.append(found)
    return names


def dll():
    """The loaded library (loaded once, thread-safe)."""
    global _dll, _path
    with _lock:
        if _dll is not None:
            return _dll
        tried = []
        for cand in _candidates():
            try:
                _dll = ctypes.CDLL(cand)
                _path = cand
                return _dll
            except OSError as e:
                tried.append("%s (%s)" % (cand, e))
        raise OSError("libmesh: cannot load the shared library; set "
                      "LIBMESH_PATH to libmesh.so or its directory. Tried: "
                      + "; ".join(tried))


def path():
    """Where the library was loaded from."""
    dll()
    return _path


def has(name):
    """Does the loaded library export `name`?"""
    try:
        getattr(dll(), name)
        return True
    except AttributeError:
        return False


def fn(name):
    """The C function `name`, typed per PROTOTYPES; MeshError
    (MESH_ERR_UNSUPPORTED) when this build of the library lacks it."""
    f = _bound.get(name)
    if f is not None:
        return f
    try:
        f = getattr(dll(), name)
    except AttributeError:
        raise errors.error_for(
            errors.ERR_UNSUPPORTED,
            "%s: not in this libmesh (%s)" % (name, _path)) from None
    restype, argtypes = PROTOTYPES[name]
    f.restype = restype
    f.argtypes = argtypes
    _bound[name] = f
    return f


def enc(s):
    """str/bytes/None -> bytes/None for char * arguments."""
    if s is None or isinstance(s, bytes):
        return s
    if isinstance(s, os.PathLike):
        return os.fsencode(s)
    if not isinstance(s, str):
        raise TypeError("expected str, bytes or path, got %s"
                        % type(s).__name__)
    return s.encode("utf-8")


def dec(b):
    """bytes/None from a const char * result -> str ('' for NULL)."""
    return b.decode("utf-8", "replace") if b else ""


def check(rc, st=None, prefix=None):
    """Raise the MeshError for a negative rc, with st's message."""
    if rc >= 0:
        return rc
    msg = st.text() if st is not None and st.code == rc else ""
    if prefix:
        msg = "%s: %s" % (prefix, msg) if msg else prefix
    raise errors.error_for(rc, msg)


# ---- Ctrl-C -----------------------------------------------------------------
# Python runs signal handlers (KeyboardInterrupt) only in the main thread
# and only between bytecodes, never while a ctypes call is blocked in C.
# So in the main thread a blocking call either waits in C in short slices
# (accept, recv: the C call returns MESH_ERR_TIMEOUT after SLICE and is
# called again) or runs on a helper thread while the main thread waits in
# slices (dial, the call API, http_call): on KeyboardInterrupt the helper
# finishes (or is cancelled) in the background and its result is released.

SLICE = 0.05  # seconds C may block before the main thread checks signals


def in_main_thread():
    return threading.current_thread() is threading.main_thread()


def interruptible(work, late=None, cancel=None):
    """work() -- a blocking call into C -- in a way Ctrl-C interrupts.

    Off the main thread: work() itself.  In the main thread: work() runs on
    a helper thread and this thread waits in SLICE steps, so a signal's
    exception (KeyboardInterrupt) is raised within ~SLICE.  Then cancel()
    is called (e.g. to fire a C cancel token) and, when work() finishes
    later, late(result) releases what it returned (e.g. closes a
    connection nobody will use)."""
    if not in_main_thread():
        return work()
    lock = threading.Lock()
    done = threading.Event()
    box = {}

    def run():
        try:
            res, ok = work(), True
        except BaseException as e:  # re-raised in the waiting thread
            res, ok = e, False
        with lock:
            box["res"], box["ok"] = res, ok
            abandoned = box.get("abandoned", False)
        done.set()
        if abandoned and ok and late is not None:
            late(res)

    t = threading.Thread(target=run, name="libmesh-blocking", daemon=True)
    t.start()
    try:
        while not done.wait(SLICE):
            pass
    except BaseException:
        with lock:
            box["abandoned"] = True
            finished = "ok" in box
        if cancel is not None:
            cancel()
        if finished and box["ok"] and late is not None:
            late(box["res"])
        raise
    if not box["ok"]:
        raise box["res"]
    return box["res"]
