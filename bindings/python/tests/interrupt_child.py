# SPDX-License-Identifier: Apache-2.0
"""Child of test_interrupt.py: sets up one blocking call, prints READY,
then blocks in it.  The parent sends SIGINT; the child must end with
KeyboardInterrupt (exit 130 after printing INTERRUPTED) within a bound.
Usage: interrupt_child.py CASE"""

import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import libmesh  # noqa: E402
import libmesh.http  # noqa: E402
import meshtest  # noqa: E402


def ready():
    print("READY", flush=True)


def silent_tcp():
    """A TCP listener that accepts and never speaks (a stalled peer)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def main(case):
    td = meshtest.TrustDomain("example.org")
    tls = {"handshake_timeout_ms": 120000}
    server = libmesh.Mesh(meshtest.config(td, "api", tls=tls))
    if case == "accept":
        ln = server.listen("127.0.0.1:0")
        ready()
        ln.accept()
    elif case == "accept_timeout":
        ln = server.listen("127.0.0.1:0")
        ready()
        ln.accept(timeout=120)
    elif case == "serve_forever":
        srv = libmesh.http.HTTPServer(server.listen("127.0.0.1:0"), object)
        ready()
        srv.serve_forever()
    elif case == "library_serve_forever":
        srv = libmesh.http.Server(server, server.listen("127.0.0.1:0"),
                                  lambda req: (200, {}, b""))
        ready()
        srv.serve_forever()
    elif case == "dial":
        s = silent_tcp()
        client = libmesh.Mesh(meshtest.config(td, "web", tls=tls))
        ready()
        client.dial("127.0.0.1:%d" % s.getsockname()[1], timeout=120)
    elif case == "recv":
        ln = server.listen("127.0.0.1:0")
        held = []
        t = threading.Thread(target=lambda: held.append(ln.accept()),
                             daemon=True)
        t.start()
        client = libmesh.Mesh(meshtest.config(td, "web"))
        conn = client.dial("127.0.0.1:%d" % ln.port)
        conn.settimeout(None)
        ready()
        conn.recv(10)  # the server never writes
    elif case in ("call_do", "request"):
        # Every try gets an error status and the retry backoff is 60 s: the
        # call sleeps in C between tries.
        echo = meshtest.EchoServer(server)
        client = libmesh.Mesh(meshtest.config(td, "web", services={
            "api": {"peers": ["spiffe://example.org/api"],
                    "retry": {"retry_on": ["5xx", "gateway-error"],
                              "num_retries": 5,
                              "base_interval_ms": 60000,
                              "max_interval_ms": 60000},
                    "timeouts": {"overall_ms": 600000},
                    "discovery": {"type": "static", "endpoints": [
                        {"address": "127.0.0.1", "port": echo.port}]}}}))
        client.wait_discovery("api", 5)
        tries = []

        def one(conn):
            conn.sendall(b"x")
            conn.recv(1)
            tries.append(1)
            if len(tries) == 1:
                ready()
            return libmesh.call.OK, 503

        if case == "call_do":
            client.call_do("api", one)
        else:
            def frame(data):
                if len(tries) == 0:
                    tries.append(1)
                    ready()
                return len(data), 503
            client.request("api", b"x", frame)
    else:
        raise SystemExit("unknown case " + case)
    print("RETURNED", flush=True)  # must not happen


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        os._exit(130)
