#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""python3-grpcio (Debian) as a real gRPC peer for libmesh's tests.

Both sides use grpcio's generic handlers with bytes in and out (no protoc
step), over mutual TLS with the test's development CA.

  grpc_peer.py server --port P --cert C --key K --ca CA [--mode MODE]
      [--events FILE]
    Serves the echo service the tests and `meshctl grpc serve` share:
      /mesh.v1.Echo/Echo          unary: the request back
      /mesh.v1.Echo/Stream        bidi: each message back as it came
      /mesh.v1.Echo/Collect       client streaming: all messages joined
      /mesh.v1.Echo/Expand        server streaming: the request back
                                  x-count times (metadata, default 3)
      anything else               UNIMPLEMENTED (grpcio's own answer)
    Request metadata steers it: x-status N (+ x-message-hex: the message
    as hex of its UTF-8) ends the call
    with that status; x-sleep-ms N waits first (deadline tests); every
    x-echo-* key comes back as initial metadata, and the trailers carry
    x-peer-id (the client's SPIFFE ID) and x-trailer-bin (bytes 0 1 2 255).
    --mode unavailable answers every call UNAVAILABLE (a broken backend);
    --mode slow answers Echo after 3 s ("cancelled Echo" when the client
    cancels first).
    --mode stall:MS1,MS2,... (hedging of streaming calls): the server's
    call number k (0, 1, ... in arrival order) first waits MSk ms (0 past
    the list), ending early with "cancelled METHOD" when the client
    cancels; the streaming methods then work as in echo mode, and each
    message a call receives is logged as "recv K HEX" (K: the call's
    number) and its grpc-previous-rpc-attempts as "prev K VALUE" ("-" when
    absent).  --mode failfirst:CODE[:PUSHBACK]: call 0 ends at once with
    status CODE ("fail 0 CODE"; with the trailer grpc-retry-pushback-ms:
    PUSHBACK), the others work as in stall mode without waits.
    --events FILE appends "start METHOD", "cancelled METHOD" and
    "done METHOD" lines, and "peer ipv4:ADDR:PORT" per call (the client's
    port: one per connection).  --option grpc.KEY=INT (repeatable) adds a
    server channel argument (max_concurrent_streams, max_connection_age_ms,
    keepalive enforcement ...).  SIGUSR1 stops it gracefully (GOAWAY, calls in
    flight get --grace seconds), SIGTERM at once.
    Prints "listening PORT" on stdout when ready.

  grpc_peer.py client --target HOST:PORT --cert C --key K --ca CA
      --scenario NAME [--server-name localhost]
    Runs one scenario against a server with the semantics above (ours or
    grpcio's) and exits 0 when every expectation held, 1 otherwise (the
    reason on stderr).  Scenarios: see SCENARIOS below.
"""
import argparse
import os
import sys
import threading
import time

import grpc

SVC = "mesh.v1.Echo"
MAX_MSG = 8 << 20  # both sides accept 8 MiB: the 4 MiB tests fit


def ident(b):
    return b


def md_get(md, key):
    for k, v in md or ():
        if k == key:
            return v
    return None


# ---------------------------------------------------------------- server --


class Events:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def add(self, line):
        if not self.path:
            return
        with self.lock, open(self.path, "a") as f:
            f.write(line + "\n")


def peer_id(ctx):
    for k, vs in ctx.auth_context().items():
        if k in ("x509_subject_alternative_name", "peer_uri"):
            for v in vs:
                s = v.decode() if isinstance(v, bytes) else v
                if s.startswith("spiffe://"):
                    return s
    return ""


def steer(ctx, ev, method):
    """Apply the x-* request metadata; returns False when the call ended."""
    md = ctx.invocation_metadata()
    ev.add("start " + method)
    ev.add("peer " + ctx.peer())  # one client port per connection
    ctx.add_callback(lambda: ev.add("done " + method))
    echo = [(k, v) for k, v in md if k.startswith("x-echo-")]
    if echo:
        ctx.send_initial_metadata(echo)
    ctx.set_trailing_metadata(
        (("x-peer-id", peer_id(ctx)), ("x-trailer-bin", b"\x00\x01\x02\xff")))
    ms = md_get(md, "x-sleep-ms")
    if ms:
        end = time.monotonic() + int(ms) / 1000.0
        while time.monotonic() < end:
            if not ctx.is_active():
                ev.add("cancelled " + method)
                return False
            time.sleep(0.01)
    st = md_get(md, "x-status")
    if st is not None and int(st) != 0:
        hx = md_get(md, "x-message-hex") or ""
        ctx.abort(grpc.StatusCode(_code(int(st))),
                  bytes.fromhex(hx).decode("utf-8"))
    return True


def _code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c.value
    raise ValueError(n)


class Stall:
    """Per-call waits and first-call failures (modes stall:, failfirst:)."""

    def __init__(self, mode):
        self.lock = threading.Lock()
        self.n = 0
        self.waits = []
        self.fail = None
        self.pushback = None
        kind, _, arg = mode.partition(":")
        if kind == "stall":
            self.waits = [int(x) for x in arg.split(",") if x]
        elif kind == "failfirst":
            code, _, pb = arg.partition(":")
            self.fail = int(code)
            self.pushback = pb or None

    def begin(self, ctx, ev, method):
        """The call's number, or None when it ended (cancelled/failed)."""
        with self.lock:
            k = self.n
            self.n += 1
        ev.add("start %s %d" % (method, k))
        ev.add("peer " + ctx.peer())
        prev = md_get(ctx.invocation_metadata(), "grpc-previous-rpc-attempts")
        ev.add("prev %d %s" % (k, prev if prev is not None else "-"))
        if k == 0 and self.fail is not None:
            ev.add("fail 0 %d" % self.fail)
            if self.pushback is not None:
                ctx.set_trailing_metadata(
                    (("grpc-retry-pushback-ms", self.pushback),))
            ctx.abort(grpc.StatusCode(_code(self.fail)), "first call fails")
        ms = self.waits[k] if k < len(self.waits) else 0
        end = time.monotonic() + ms / 1000.0
        while time.monotonic() < end:
            if not ctx.is_active():
                ev.add("cancelled %s %d" % (method, k))
                return None
            time.sleep(0.005)
        return k


def make_stall_handler(mode, ev):
    st = Stall(mode)

    def take(it, ctx, method, k):
        for m in it:
            ev.add("recv %d %s" % (k, m.hex()))
            yield m

    def stream(it, ctx):
        k = st.begin(ctx, ev, "Stream")
        if k is None:
            return
        for m in take(it, ctx, "Stream", k):
            yield m
        if not ctx.is_active():
            ev.add("cancelled Stream %d" % k)

    def collect(it, ctx):
        k = st.begin(ctx, ev, "Collect")
        if k is None:
            return b""
        r = b"".join(take(it, ctx, "Collect", k))
        if not ctx.is_active():
            ev.add("cancelled Collect %d" % k)
        return r

    def expand(req, ctx):
        k = st.begin(ctx, ev, "Expand")
        if k is None:
            return
        ev.add("recv %d %s" % (k, req.hex()))
        n = int(md_get(ctx.invocation_metadata(), "x-count") or 3)
        gap = int(md_get(ctx.invocation_metadata(), "x-gap-ms") or 0)
        try:
            for i in range(n):
                if not ctx.is_active():
                    ev.add("cancelled Expand %d" % k)
                    return
                yield req
                time.sleep(gap / 1000.0)
        except GeneratorExit:
            ev.add("cancelled Expand %d" % k)
            raise

    table = {
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Expand": grpc.unary_stream_rpc_method_handler(expand),
    }
    return grpc.method_handlers_generic_handler(SVC, table)


def make_handler(mode, ev):
    if mode.startswith("stall:") or mode.startswith("failfirst:"):
        return make_stall_handler(mode, ev)
    def unavailable(req, ctx):
        ev.add("start Echo")
        ev.add("peer " + ctx.peer())
        ctx.abort(grpc.StatusCode.UNAVAILABLE, "backend unavailable")

    def echo(req, ctx):
        steer(ctx, ev, "Echo")
        return req

    def stream(it, ctx):
        if not steer(ctx, ev, "Stream"):
            return
        for m in it:
            yield m
        if not ctx.is_active():
            ev.add("cancelled Stream")

    def collect(it, ctx):
        steer(ctx, ev, "Collect")
        return b"".join(it)

    def expand(req, ctx):
        steer(ctx, ev, "Expand")
        n = int(md_get(ctx.invocation_metadata(), "x-count") or 3)
        try:
            for i in range(n):
                if not ctx.is_active():
                    ev.add("cancelled Expand")
                    return
                yield req
                gap = md_get(ctx.invocation_metadata(), "x-gap-ms")
                if gap:
                    time.sleep(int(gap) / 1000.0)
        except GeneratorExit:  # grpcio stops the generator on cancel
            ev.add("cancelled Expand")
            raise

    def slow(req, ctx):  # a slow backend: 3 s per call unless cancelled
        ev.add("start Echo")
        ev.add("peer " + ctx.peer())
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            if not ctx.is_active():
                ev.add("cancelled Echo")
                return req
            time.sleep(0.005)
        ev.add("done Echo")
        return req

    if mode == "unavailable":
        table = {"Echo": grpc.unary_unary_rpc_method_handler(unavailable)}
    elif mode == "slow":
        table = {"Echo": grpc.unary_unary_rpc_method_handler(slow)}
    else:
        table = {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Expand": grpc.unary_stream_rpc_method_handler(expand),
        }
    return grpc.method_handlers_generic_handler(SVC, table)


def serve(a):
    from concurrent import futures
    ev = Events(a.events)
    opts = [("grpc.max_receive_message_length", MAX_MSG),
            ("grpc.max_send_message_length", MAX_MSG),
            ("grpc.so_reuseport", 0)]  # never share a port with another test
    for o in a.option or ():
        k, v = o.split("=", 1)
        opts.append((k, int(v)))
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=opts)
    srv.add_generic_rpc_handlers((make_handler(a.mode, ev),))
    creds = grpc.ssl_server_credentials(
        [(open(a.key, "rb").read(), open(a.cert, "rb").read())],
        root_certificates=open(a.ca, "rb").read(),
        require_client_auth=True)
    port = srv.add_secure_port("127.0.0.1:%d" % a.port, creds)
    srv.start()
    print("listening %d" % port, flush=True)
    import signal
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: srv.stop(a.grace))
    done.wait()
    srv.stop(0)


# ---------------------------------------------------------------- client --


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def stubs(ch):
    return {
        "Echo": ch.unary_unary("/%s/Echo" % SVC, ident, ident),
        "Stream": ch.stream_stream("/%s/Stream" % SVC, ident, ident),
        "Collect": ch.stream_unary("/%s/Collect" % SVC, ident, ident),
        "Expand": ch.unary_stream("/%s/Expand" % SVC, ident, ident),
        "Nope": ch.unary_unary("/%s/Nope" % SVC, ident, ident),
    }


def sc_unary(s):
    r, call = s["Echo"].with_call(b"hello", timeout=10)
    check(r == b"hello", "echo: %r" % r)
    check(call.code() == grpc.StatusCode.OK, "code %s" % call.code())
    pid = md_get(call.trailing_metadata(), "x-peer-id")
    check(pid and pid.startswith("spiffe://"), "x-peer-id %r" % pid)
    print("server peer id seen by it: %s" % pid, file=sys.stderr)


def sc_empty(s):
    r = s["Echo"](b"", timeout=10)
    check(r == b"", "empty echo: %r" % r)


def sc_metadata(s):
    md = (("x-echo-a", "1"), ("x-echo-b", "two words"),
          ("x-echo-c-bin", b"\x00\xff\x10"))
    r, call = s["Echo"].with_call(b"m", metadata=md, timeout=10)
    im = dict(call.initial_metadata())
    check(im.get("x-echo-a") == "1", "x-echo-a %r" % im)
    check(im.get("x-echo-b") == "two words", "x-echo-b %r" % im)
    check(im.get("x-echo-c-bin") == b"\x00\xff\x10", "x-echo-c-bin %r" % im)
    tm = dict(call.trailing_metadata())
    check(tm.get("x-trailer-bin") == b"\x00\x01\x02\xff", "trailer %r" % tm)


def sc_large(s):
    body = bytes(range(256)) * (4 << 12)  # 4 MiB
    r = s["Echo"](body, timeout=30)
    check(r == body, "4 MiB echo: %d bytes back" % len(r))
    r = b"".join(s["Stream"](iter([body]), timeout=30))
    check(r == body, "4 MiB stream: %d bytes back" % len(r))


def sc_too_large(s):
    """Over our 4 MiB receive default: RESOURCE_EXHAUSTED."""
    body = b"x" * ((4 << 20) + 1)
    try:
        s["Echo"](body, timeout=30)
        raise Fail("a 4 MiB + 1 message was accepted")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED,
              "code %s %s" % (e.code(), e.details()))


def sc_statuses(s):
    """Every status code, with a message that needs percent-encoding."""
    msg = "d\u00e9tail 100% \n done"
    for c in grpc.StatusCode:
        n = c.value[0]
        if n == 0:
            continue
        md = (("x-status", str(n)), ("x-message-hex", msg.encode().hex()))
        try:
            s["Echo"](b"x", metadata=md, timeout=10)
            raise Fail("status %d: call succeeded" % n)
        except grpc.RpcError as e:
            check(e.code() == c, "want %s got %s" % (c, e.code()))
            check(e.details() == msg, "%s details %r" % (c, e.details()))


def sc_deadline(s):
    t0 = time.monotonic()
    try:
        s["Echo"](b"x", metadata=(("x-sleep-ms", "5000"),), timeout=0.3)
        raise Fail("no deadline error")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, str(e.code()))
    check(time.monotonic() - t0 < 4, "deadline took too long")


def sc_cancel(s):
    it = s["Expand"](b"tick", metadata=(("x-count", "1000"),
                                        ("x-gap-ms", "20")), timeout=30)
    first = next(it)
    check(first == b"tick", "first %r" % first)
    it.cancel()
    try:
        for _ in it:
            pass
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.CANCELLED, str(e.code()))


def sc_client_stream(s):
    parts = [b"a", b"bc", b"", b"def"]
    r = s["Collect"](iter(parts), timeout=10)
    check(r == b"abcdef", "collect %r" % r)


def sc_server_stream(s):
    got = list(s["Expand"](b"z", metadata=(("x-count", "5"),), timeout=10))
    check(got == [b"z"] * 5, "expand %r" % got)


def sc_bidi(s):
    """Ping-pong: each message is sent only after the previous came back."""
    q = []
    cv = threading.Condition()

    def gen():
        for i in range(20):
            yield b"m%d" % i
            with cv:
                if not cv.wait_for(lambda: len(q) > i, timeout=10):
                    return

    for m in s["Stream"](gen(), timeout=20):
        with cv:
            q.append(m)
            cv.notify_all()
    check(q == [b"m%d" % i for i in range(20)], "bidi %r" % q[:5])


def sc_unimplemented(s):
    try:
        s["Nope"](b"x", timeout=10)
        raise Fail("Nope succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNIMPLEMENTED, str(e.code()))


SCENARIOS = {
    "unary": sc_unary, "empty": sc_empty, "metadata": sc_metadata,
    "large": sc_large, "too_large": sc_too_large, "statuses": sc_statuses,
    "deadline": sc_deadline, "cancel": sc_cancel,
    "client_stream": sc_client_stream, "server_stream": sc_server_stream,
    "bidi": sc_bidi, "unimplemented": sc_unimplemented,
}


def client(a):
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(a.ca, "rb").read(),
        private_key=open(a.key, "rb").read(),
        certificate_chain=open(a.cert, "rb").read())
    opts = [("grpc.ssl_target_name_override", a.server_name),
            ("grpc.max_receive_message_length", MAX_MSG),
            ("grpc.max_send_message_length", MAX_MSG),
            ("grpc.enable_retries", 0)]
    with grpc.secure_channel(a.target, creds, options=opts) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        names = a.scenario.split(",")
        if names == ["all"]:
            names = list(SCENARIOS)
        bad = 0
        for n in names:
            try:
                SCENARIOS[n](stubs(ch))
                print("PASS %s" % n, file=sys.stderr)
            except (Fail, grpc.RpcError) as e:
                print("FAIL %s: %s" % (n, e), file=sys.stderr)
                bad += 1
        return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--target")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--mode", default="echo")
    p.add_argument("--events")
    p.add_argument("--option", action="append",
                   help="grpc.KEY=INT server channel argument (repeatable)")
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--scenario", default="all")
    p.add_argument("--server-name", default="localhost")
    a = p.parse_args()
    if a.role == "server":
        serve(a)
        return 0
    return client(a)


if __name__ == "__main__":
    sys.exit(main())
