"""HTTP/1.1 over the mesh with the standard library's http.client and
http.server: only the transport changes.

Client::

    conn = libmesh.http.HTTPConnection(mesh, "payments", timeout=5)
    conn.request("GET", "/balance")
    print(conn.getresponse().read(), conn.sock.peer_id)

Server (any http.server.BaseHTTPRequestHandler subclass; the handler's
``self.connection`` is the mesh Conn, so ``self.connection.peer_id`` names
the caller)::

    srv = libmesh.http.HTTPServer(mesh.listen("127.0.0.1:0"), Handler)
    threading.Thread(target=srv.serve_forever).start()
    ...
    srv.shutdown()
"""

import http.client
import socket
import threading

from . import errors


class HTTPConnection(http.client.HTTPConnection):
    """http.client.HTTPConnection whose connect() dials over the mesh.

    target: a configured service name or "host:port"; it is also the Host
    header unless `host` is given.  peers: SPIFFE ID patterns the server
    must match.  After connect(), ``self.sock`` is the mesh Conn."""

    def __init__(self, mesh, target, timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
                 peers=None, host=None, blocksize=8192):
        super().__init__(host or target, timeout=timeout,
                         blocksize=blocksize)
        self._mesh = mesh
        self._target = target
        self._peers = peers

    def connect(self):
        timeout = self.timeout
        if timeout is socket._GLOBAL_DEFAULT_TIMEOUT:
            timeout = socket.getdefaulttimeout()
        self.sock = self._mesh.dial(self._target, timeout=timeout,
                                    peers=self._peers)


class HTTPServer:
    """Serve a BaseHTTPRequestHandler class on a mesh Listener, one thread
    per connection (like socketserver.ThreadingMixIn)."""

    def __init__(self, listener, handler_class):
        self.listener = listener
        self.RequestHandlerClass = handler_class
        self.server_address = ("mesh", listener.port)
        self.server_name = "mesh"
        self.server_port = listener.port
        self.errors = []  # handshake/identity failures of refused peers
        self._threads = []
        self._lock = threading.Lock()

    def serve_forever(self, max_errors=1000):
        """Accept until shutdown(); failed peers are recorded in .errors."""
        while not self.listener.closed:
            try:
                conn = self.listener.accept()
            except errors.Closed:
                break
            except errors.MeshError as e:
                if self.listener.closed:
                    break
                with self._lock:
                    if len(self.errors) < max_errors:
                        self.errors.append(e)
                continue
            t = threading.Thread(target=self._handle, args=(conn,),
                                 daemon=True)
            t.start()  # before shutdown() can see it: join needs a start
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _handle(self, conn):
        try:
            self.RequestHandlerClass(conn, conn.getpeername(), self)
        except Exception:
            pass
        finally:
            conn.close()

    def shutdown(self, timeout=5.0):
        """Stop accepting and wait (bounded) for running handlers."""
        self.listener.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
