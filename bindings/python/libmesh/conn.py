# SPDX-License-Identifier: Apache-2.0
"""Mutual-TLS connections and listeners (mesh_conn_t, mesh_listener_t).

A Conn behaves like a connected socket.socket: send, sendall, recv,
recv_into, makefile, shutdown, close, fileno, settimeout, a context manager
-- so http.client and friends run over it.  Like the C handle it wraps, a
Conn is used by one thread at a time; close() may come from any thread and
wakes a call blocked in another.
"""

import ctypes
import io
import os
import socket
import time

from . import _lib, errors
from ._life import Life


def _wake(fd, how=socket.SHUT_RDWR):
    """Wake a thread blocked in C on fd (read, poll or accept) by shutting
    the socket down; the C side then sees EOF or an error and returns."""
    if fd < 0:
        return
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        s.shutdown(how)
    except OSError:
        pass
    finally:
        s.close()


class Conn:
    """A mesh connection (see module doc).  Attributes: peer_id, cipher,
    tls_version, alpn, resumed, is_tls, peer_addr."""

    # Blocking reads in the main thread wait in slices (Ctrl-C); a call's
    # borrowed connection keeps the per-try timeout the library set instead.
    _sliced = True
    # settimeout() was called (None then means "forever", not the config's)
    _timeout_set = False

    def __init__(self, handle, mesh):
        self._h = handle
        self._mesh = mesh
        self._life = Life("connection")
        self._timeout = None
        self._io_refs = 0
        self._closing = False
        mesh._adopt(self)

    def __repr__(self):
        if self._life.closed:
            return "<libmesh.Conn closed>"
        return "<libmesh.Conn peer=%s id=%s>" % (self.peer_addr, self.peer_id)

    # -- lifetime --------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._real_close()
        except Exception:
            pass

    @property
    def closed(self):
        return self._life.closed or self._closing

    def close(self):
        """Close the connection (sends close_notify).  With files from
        makefile() still open, the close happens when the last is closed,
        as with socket.socket."""
        self._closing = True
        if self._io_refs <= 0:
            self._real_close()

    def _decref_socketios(self):
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closing and self._io_refs <= 0:
            self._real_close()

    def _real_close(self):
        first, busy = self._life.begin_close()
        if not first:
            return
        self._closing = True
        if busy:  # another thread is inside C on this connection
            _wake(_lib.fn("mesh_conn_fd")(self._h))
        self._life.wait_idle()
        _lib.fn("mesh_conn_close")(self._h)
        self._h = None

    def _enter(self):
        if self._closing and self._io_refs <= 0:
            raise errors.error_for(errors.ERR_CLOSED, "connection is closed")
        self._life.enter()
        return self._h

    def _leave(self):
        self._life.leave()

    def _io_error(self, h, rc):
        return errors.error_for(rc, _lib.dec(_lib.fn("mesh_conn_errmsg")(h)))

    # -- I/O ----------------------------------------------------------------

    def recv(self, bufsize, flags=0):
        """Read up to bufsize bytes; b"" at end of stream."""
        if flags:
            raise ValueError("recv: flags are not supported over mesh")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        buf = ctypes.create_string_buffer(max(1, bufsize))
        n = self._read(buf, bufsize)
        return buf.raw[:n]

    def recv_into(self, buffer, nbytes=0, flags=0):
        """Read into a writable buffer; returns the number of bytes read."""
        if flags:
            raise ValueError("recv_into: flags are not supported over mesh")
        mv = memoryview(buffer).cast("B")
        if nbytes <= 0 or nbytes > len(mv):
            nbytes = len(mv)
        if nbytes == 0:
            return 0
        cbuf = (ctypes.c_char * nbytes).from_buffer(mv)
        return self._read(cbuf, nbytes)

    def _read(self, cbuf, n):
        if n == 0:
            return 0
        h = self._enter()
        try:
            if self._sliced and _lib.in_main_thread():
                r = self._read_sliced(h, cbuf, n)
            else:
                r = _lib.fn("mesh_conn_read")(h, cbuf, n)
            if r == errors.ERR_PEER_CLOSED:
                return 0  # EOF without close_notify: still EOF to callers
            if r < 0:
                raise self._io_error(h, r)
            return r
        finally:
            self._leave()

    def _read_sliced(self, h, cbuf, n):
        """A blocking read in the main thread: C waits at most _lib.SLICE at
        a time (a read timeout is not sticky), so Ctrl-C is seen between
        slices; the Python timeout (settimeout) still bounds the whole.
        The C read timeout is put back afterwards."""
        f = _lib.fn
        deadline = None
        if self._timeout is not None:
            deadline = time.monotonic() + self._timeout
        elif self._read_ms() > 0:  # the config's tls.read_timeout_ms
            deadline = time.monotonic() + self._read_ms() / 1000.0
        slice_ms = max(1, int(_lib.SLICE * 1000))
        try:
            while True:
                ms = slice_ms
                if deadline is not None:
                    left = deadline - time.monotonic()
                    ms = max(1, min(slice_ms, int(left * 1000)))
                f("mesh_conn_set_timeouts")(h, ms, self._write_ms())
                r = f("mesh_conn_read")(h, cbuf, n)
                if r != errors.ERR_TIMEOUT or self._closing:
                    return r
                if deadline is not None and time.monotonic() >= deadline:
                    return r
        finally:
            f("mesh_conn_set_timeouts")(h, self._read_ms(), self._write_ms())

    def _read_ms(self):
        # What settimeout() gave C; without one, the config's timeout.
        t = self._timeout
        if t is None:
            return -1 if self._timeout_set else \
                getattr(self._mesh, "_io_ms", (-1, -1))[0]
        return max(1, int(round(t * 1000)))

    def _write_ms(self):
        t = self._timeout
        if t is None:
            return -1 if self._timeout_set else \
                getattr(self._mesh, "_io_ms", (-1, -1))[1]
        return max(1, int(round(t * 1000)))

    def send(self, data, flags=0):
        """Write some of data; returns how many bytes were written."""
        if flags:
            raise ValueError("send: flags are not supported over mesh")
        data = bytes(data)
        if not data:
            return 0
        h = self._enter()
        try:
            r = _lib.fn("mesh_conn_write")(h, data, len(data))
            if r < 0:
                raise self._io_error(h, r)
            return r
        finally:
            self._leave()

    def sendall(self, data, flags=0):
        """Write all of data."""
        if flags:
            raise ValueError("sendall: flags are not supported over mesh")
        data = bytes(data)
        if not data:
            return
        h = self._enter()
        try:
            rc = _lib.fn("mesh_conn_write_all")(h, data, len(data))
            if rc < 0:
                raise self._io_error(h, rc)
        finally:
            self._leave()

    def shutdown(self, how=socket.SHUT_WR):
        """Send close_notify and shut down the write side (for any `how`)."""
        h = self._enter()
        try:
            rc = _lib.fn("mesh_conn_shutdown")(h)
            if rc < 0:
                raise self._io_error(h, rc)
        finally:
            self._leave()

    def settimeout(self, timeout):
        """Seconds for each blocking read or write (None: wait forever).
        0 does not make the connection non-blocking: it is the shortest
        timeout (1 ms), so calls fail fast with MeshTimeout."""
        if timeout is not None:
            timeout = float(timeout)
            if timeout < 0:
                raise ValueError("Timeout value out of range")
        # The C API reads 0 as "no timeout": never pass it.
        ms = -1 if timeout is None else max(1, int(round(timeout * 1000)))
        h = self._enter()
        try:
            _lib.check(_lib.fn("mesh_conn_set_timeouts")(h, ms, ms))
        finally:
            self._leave()
        self._timeout = timeout
        self._timeout_set = True

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self.settimeout(None if flag else 0.0)

    def makefile(self, mode="r", buffering=None, *, encoding=None,
                 errors=None, newline=None):
        """A file object over the connection, as socket.makefile()."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError("invalid mode %r (only r, w, b allowed)" % mode)
        writing = "w" in mode
        reading = "r" in mode or not writing
        rawmode = ("r" if reading else "") + ("w" if writing else "")
        raw = _ConnIO(self, rawmode)
        self._io_refs += 1
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buf = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buf = io.BufferedReader(raw, buffering)
        else:
            buf = io.BufferedWriter(raw, buffering)
        if "b" in mode:
            return buf
        text = io.TextIOWrapper(buf, encoding, errors, newline)
        text.mode = mode
        return text

    # -- attributes -----------------------------------------------------------

    def _str(self, name):
        h = self._enter()
        try:
            return _lib.dec(_lib.fn(name)(h))
        finally:
            self._leave()

    def _int(self, name):
        h = self._enter()
        try:
            return _lib.fn(name)(h)
        finally:
            self._leave()

    def fileno(self):
        """The underlying socket's fd (for select/poll readiness only)."""
        return self._int("mesh_conn_fd")

    @property
    def peer_id(self):
        """Peer SPIFFE ID ("" for a plaintext PERMISSIVE peer)."""
        return self._str("mesh_conn_peer_id")

    @property
    def cipher(self):
        return self._str("mesh_conn_cipher")

    @property
    def tls_version(self):
        return self._str("mesh_conn_tls_version")

    @property
    def alpn(self):
        return self._str("mesh_conn_alpn")

    @property
    def resumed(self):
        return bool(self._int("mesh_conn_resumed"))

    @property
    def is_tls(self):
        return bool(self._int("mesh_conn_is_tls"))

    @property
    def peer_addr(self):
        """"ip:port" of the peer."""
        return self._str("mesh_conn_peer_addr")

    def getpeername(self):
        """(host, port) of the peer, as a socket would."""
        addr = self.peer_addr
        host, _, port = addr.rpartition(":")
        return host.strip("[]"), int(port) if port.isdigit() else 0

    def peer_chain_pem(self):
        """The peer's certificate chain as PEM text."""
        h = self._enter()
        try:
            size = 16384
            for _ in range(4):
                buf = ctypes.create_string_buffer(size)
                r = _lib.fn("mesh_conn_peer_chain_pem")(h, buf, size)
                if r != errors.ERR_BUFFER:
                    break
                size *= 4
            if r < 0:
                raise errors.error_for(r, "peer chain")
            return _lib.dec(buf.value)
        finally:
            self._leave()


class _ConnIO(io.RawIOBase):
    """Raw I/O over a Conn, the counterpart of socket.SocketIO."""

    def __init__(self, conn, mode):
        super().__init__()
        self._conn = conn
        self._reading = "r" in mode
        self._writing = "w" in mode
        self._timed_out = False

    def readable(self):
        return self._reading and not self.closed

    def writable(self):
        return self._writing and not self.closed

    def readinto(self, b):
        self._checkClosed()
        if self._timed_out:
            raise OSError("cannot read from timed out object")
        try:
            return self._conn.recv_into(b)
        except TimeoutError:
            self._timed_out = True
            raise

    def write(self, b):
        self._checkClosed()
        return self._conn.send(b)

    def fileno(self):
        self._checkClosed()
        return self._conn.fileno()

    def close(self):
        if self.closed:
            return
        super().close()
        self._conn._decref_socketios()
        self._conn = None


class Listener:
    """A mesh listening socket: accept() returns Conn objects whose mTLS
    handshake and peer checks are done."""

    def __init__(self, handle, mesh):
        self._h = handle
        self._mesh = mesh
        self._life = Life("listener")
        mesh._adopt(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self):
        return self._life.closed

    def close(self):
        """Stop listening; wakes a thread blocked in accept()."""
        first, busy = self._life.begin_close()
        if not first:
            return
        if busy:
            _wake(_lib.fn("mesh_listener_fd")(self._h), socket.SHUT_RD)
        self._life.wait_idle()
        _lib.fn("mesh_listener_close")(self._h)
        self._h = None

    @property
    def port(self):
        self._life.enter()
        try:
            return _lib.fn("mesh_listener_port")(self._h)
        finally:
            self._life.leave()

    def fileno(self):
        self._life.enter()
        try:
            return _lib.fn("mesh_listener_fd")(self._h)
        finally:
            self._life.leave()

    def _accept_sliced(self, ms, out, st):
        """mesh_accept in the main thread: wait for a peer at most
        _lib.SLICE at a time so Ctrl-C is seen between slices (a handshake
        under way still has tls.handshake_timeout_ms)."""
        slice_ms = max(1, int(_lib.SLICE * 1000))
        end = None if ms < 0 else time.monotonic() + ms / 1000.0
        while True:
            wait = slice_ms
            if end is not None:
                wait = max(0, min(slice_ms,
                                  int((end - time.monotonic()) * 1000)))
            rc = _lib.fn("mesh_accept")(self._h, wait, ctypes.byref(out),
                                        ctypes.byref(st))
            if rc != errors.ERR_TIMEOUT or self._life.closed:
                return rc
            if end is not None and time.monotonic() >= end:
                return rc

    def accept(self, timeout=None):
        """Accept one peer and complete its handshake within timeout seconds
        (None: wait).  A peer that fails the handshake or the peer check
        raises its error (IdentityError etc.); call again for the next."""
        ms = -1 if timeout is None else max(0, int(round(timeout * 1000)))
        st = _lib.Status()
        out = _lib.Handle()
        self._life.enter()
        try:
            if _lib.in_main_thread():
                rc = self._accept_sliced(ms, out, st)
            else:
                rc = _lib.fn("mesh_accept")(self._h, ms, ctypes.byref(out),
                                            ctypes.byref(st))
        finally:
            self._life.leave()
        if self._life.closed:
            if rc >= 0 and out:
                _lib.fn("mesh_conn_close")(out)
            raise errors.error_for(errors.ERR_CLOSED, "listener is closed")
        _lib.check(rc, st)
        return Conn(out, self._mesh)
