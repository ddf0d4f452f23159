// SPDX-License-Identifier: Apache-2.0
// Tests of the header-only wrapper mesh.hpp (run by scripts/test.d/cpp.sh).
// Prints one line per failed check and a closing count.
#include "mesh.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

static int passed, failed;

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (cond) {                                                          \
      passed++;                                                          \
    } else {                                                             \
      failed++;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,        \
                   __LINE__, #cond);                                     \
    }                                                                    \
  } while (0)

// Run fn, expecting a mesh::Error with `code` whose detail has `want`.
template <typename F>
static void expect_error(F fn, int code, const char *want) {
  try {
    fn();
    failed++;
    std::fprintf(stderr, "expected %s, nothing thrown\n", mesh_code_name(code));
  } catch (const mesh::Error &e) {
    CHECK(e.code() == code);
    CHECK(std::strcmp(e.name(), mesh_code_name(code)) == 0);
    CHECK(std::strstr(e.detail(), want) != nullptr);
    CHECK(std::strstr(e.what(), mesh_code_name(code)) == e.what());
    if (!std::strstr(e.detail(), want))
      std::fprintf(stderr, "  detail was: %s\n", e.detail());
  }
}

static_assert(!std::is_copy_constructible_v<mesh::Mesh>, "Mesh is move-only");
static_assert(!std::is_copy_constructible_v<mesh::Conn>, "Conn is move-only");
static_assert(!std::is_copy_assignable_v<mesh::Listener>, "Listener move-only");
static_assert(std::is_nothrow_move_constructible_v<mesh::Conn>, "noexcept move");
static_assert(std::is_nothrow_move_assignable_v<mesh::Mesh>, "noexcept move");
static_assert(!std::is_copy_constructible_v<mesh::Call>, "Call is move-only");
static_assert(!std::is_copy_constructible_v<mesh::Watch>, "Watch move-only");
static_assert(std::is_copy_constructible_v<mesh::ConnRef>, "a view copies");
static_assert(std::is_copy_constructible_v<mesh::TraceContext>, "plain data");

static void test_config_errors() {
  expect_error([] { mesh::Mesh m(R"({"nmae": "x"})"); }, MESH_ERR_CONFIG,
               "nmae: unknown key");
  expect_error([] { mesh::Mesh m(R"({"log": {"level": "loud"}})"); },
               MESH_ERR_CONFIG, "log.level: unknown value");
  expect_error([] { mesh::Mesh::from_file("/nonexistent/mesh.json"); },
               MESH_ERR_IO, "/nonexistent/mesh.json");
}

static void test_spiffe_and_version() {
  mesh::spiffe::validate("spiffe://example.org/ns/a/sa/b");
  expect_error([] { mesh::spiffe::validate("spiffe://Example.org/x"); },
               MESH_ERR_SPIFFE_ID, "Example.org");
  auto [td, path] = mesh::spiffe::parse("spiffe://example.org/ns/a");
  CHECK(td == "example.org" && path == "/ns/a");
  CHECK(mesh::spiffe::match("example.org/ns/*", "spiffe://example.org/ns/a"));
  CHECK(!mesh::spiffe::match("example.org/x", "spiffe://example.org/y"));
  CHECK(mesh::version() == mesh_version() && !mesh::version().empty());
  mesh::Mesh m(R"({"log":{"level":"error"},"admin":{"listen":"127.0.0.1:0"}})");
  CHECK(m.admin_port() && *m.admin_port() > 0);
  CHECK(m.metrics_text().find("# TYPE mesh_") != std::string::npos);
  CHECK(!m.svid_expires_in());
  expect_error([&] { m.reload_identity(); }, MESH_ERR_NOT_FOUND, "");
  CHECK(!mesh::Mesh("{}").admin_port());
  std::vector<std::string> lines;
  std::mutex mu;
  m.set_log(MESH_LOG_DEBUG, [&](int, std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  m.listen("127.0.0.1:0");  // logs event=listen at info
  m.set_log(MESH_LOG_ERROR, nullptr);
  std::lock_guard<std::mutex> lock(mu);
  bool listened = false;
  for (const auto &l : lines)
    listened |= l.find("event=listen ") != std::string::npos;
  CHECK(listened);
}

static void test_config_check() {
  auto errs = mesh::config_check(R"({"name":"a","nmae":1,"log":{"lvl":1}})");
  CHECK(errs.size() == 2);
  CHECK(mesh::config_check(R"({"name":"ok"})").empty());
}

static void test_mesh_move() {
  mesh::Mesh a(R"({"name":"a"})");
  mesh_t *raw = a.get();
  CHECK(raw != nullptr);
  mesh::Mesh b(std::move(a));
  CHECK(a.get() == nullptr);  // NOLINT: moved-from is documented empty
  CHECK(b.get() == raw);
  mesh::Mesh c(R"({"name":"c"})");
  c = std::move(b);  // frees c's old context, takes b's
  CHECK(c.get() == raw);
  std::vector<mesh::Mesh> v;
  v.push_back(std::move(c));
  v.emplace_back(R"({"name":"d"})");
  CHECK(v.size() == 2 && v[0].get() == raw);
}

static void test_closed_handles_throw() {
  mesh::Conn c;
  CHECK(!c);
  expect_error([&] { c.read_some(); }, MESH_ERR_CLOSED, "closed");
  expect_error([&] { c.write_all("x"); }, MESH_ERR_CLOSED, "closed");
  expect_error([&] { (void)c.peer_id(); }, MESH_ERR_CLOSED, "closed");
  c.close();  // idempotent on an empty handle
  mesh::Listener l;
  CHECK(!l);
  expect_error([&] { l.accept(0); }, MESH_ERR_CLOSED, "closed");
  mesh::Conn d(std::move(c));
  CHECK(!d);
}

static void test_error_value() {
  mesh::Error e(MESH_ERR_TIMEOUT, "after 5 ms");
  CHECK(e.code() == MESH_ERR_TIMEOUT);
  CHECK(std::string(e.what()) == "MESH_ERR_TIMEOUT: after 5 ms");
  mesh::Error f(MESH_ERR_TIMEOUT, "");
  CHECK(std::string(f.what()) == "MESH_ERR_TIMEOUT: timed out");
  std::string longer(1000, 'x');
  mesh::Error g(MESH_ERR_PARSE, longer);
  CHECK(std::strlen(g.detail()) == sizeof(mesh_status_t::message) - 1);
}

// ---- connections: needs the dev CA and a writable directory -------------

static std::string svid_config(const std::string &dir, const std::string &name) {
  std::string crt = dir + "/" + name + ".crt", key = dir + "/" + name + ".key";
  mesh::ca::issue(dir + "/ca.crt", dir + "/ca.key",
                     "spiffe://example.org/" + name, crt, key);
  return R"({"name":")" + name + R"(","log":{"level":"error"},)" +
         R"("identity":{"cert":")" + crt + R"(","key":")" + key +
         R"(","bundle":")" + dir + R"(/ca.crt"}})";
}

static void test_conn_echo_and_moves(const std::string &dir) {
  mesh::Mesh server(svid_config(dir, "server"));
  mesh::Mesh client(svid_config(dir, "client"));
  CHECK(client.self_id() == "spiffe://example.org/client");
  mesh::Listener ln = server.listen("127.0.0.1:0");
  CHECK(ln.port() > 0);
  std::string target = "127.0.0.1:" + std::to_string(ln.port());
  std::string seen;
  std::thread srv([&] {
    try {
      std::vector<mesh::Conn> conns;
      for (int i = 0; i < 2; i++)
        conns.push_back(ln.accept(5000));  // Conn moves into the vector
      seen = conns[0].peer_id();
      for (auto &c : conns) {
        std::string got = c.read_some();
        c.write_all(got);
      }
    } catch (const mesh::Error &e) {
      std::fprintf(stderr, "server: %s\n", e.what());
    }
  });
  mesh::Conn a = client.dial(target, mesh::DialOptions().timeout_ms(5000));
  mesh::Conn b = client.dial(target);
  mesh::Conn moved(std::move(b));
  CHECK(!b && moved);
  a.write_all("one");
  moved.write_all("two");
  CHECK(a.read_some() == "one");
  CHECK(moved.read_some() == "two");
  srv.join();
  CHECK(seen == "spiffe://example.org/client");
  CHECK(a.peer_id() == "spiffe://example.org/server");
  CHECK(a.is_tls() && !a.cipher().empty());
  CHECK(a.tls_version().rfind("TLS", 0) == 0);
  CHECK(a.peer_chain_pem().rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
  CHECK(client.svid_expires_in() && *client.svid_expires_in() > 0);
  client.reload_identity();
  CHECK(a.read_some().empty());  // the server closed: EOF, not an error
  mesh_conn_t *raw = moved.release();
  CHECK(raw != nullptr && !moved);
  mesh_conn_close(raw);

  // The wrong peer: the exception carries the library's code and detail.
  // (The server's side may succeed: a resumed session shows no
  // certificate, and the client checks the saved one afterwards.)
  std::thread refuse([&] {
    try {
      ln.accept(5000);
    } catch (const mesh::Error &) {
    }
  });
  expect_error(
      [&] {
        client.dial(target, mesh::DialOptions().timeout_ms(5000).peer(
                                "spiffe://example.org/other"));
      },
      MESH_ERR_PEER_ID, "spiffe://example.org/server");
  refuse.join();
  expect_error([&] { ln.accept(50); }, MESH_ERR_TIMEOUT, "within 50 ms");
}

// ---- trace context (no I/O) ---------------------------------------------

static const char *const TP =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_trace_context() {
  mesh::TraceContext t = mesh::TraceContext::from_traceparent(TP);
  CHECK(t.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(t.span_id() == "00f067aa0ba902b7");
  CHECK(t.parent_span_id().empty());
  CHECK(t.sampled());
  CHECK(t.traceparent() == TP);
  expect_error([] { mesh::TraceContext::from_traceparent("garbage"); },
               MESH_ERR_PARSE, "traceparent");
  mesh::TraceContext b = mesh::TraceContext::from_b3(
      "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
  CHECK(b.parent_span_id() == "05e3ac9a4f6e3b90");

  std::map<std::string, std::string> in{
      {"TraceParent", TP}, {"Tracestate", "congo=t61rcWkgMzE, rojo=1"}};
  auto got = mesh::extract(in);
  CHECK(got && got->span_id() == t.span_id());
  CHECK(got && got->tracestate() == "congo=t61rcWkgMzE,rojo=1");
  std::vector<std::pair<std::string, std::string>> out;
  mesh::inject(*got, MESH_PROPAGATE_TRACECONTEXT | MESH_PROPAGATE_B3,
               [&out](std::string_view k, std::string_view v) {
                 out.emplace_back(k, v);
               });
  auto again = mesh::extract(out, MESH_PROPAGATE_B3);
  CHECK(out.size() == 3);  // traceparent, tracestate, b3
  CHECK(again && again->trace_id() == t.trace_id());
  // repeated fields are joined; a repeated key keeps its first member
  std::multimap<std::string, std::string> rep{
      {"traceparent", TP},
      {"tracestate", "congo=t61rcWkgMzE"},
      {"tracestate", "rojo=1,congo=later"}};
  auto joined = mesh::extract(rep);
  CHECK(joined && joined->tracestate() == "congo=t61rcWkgMzE,rojo=1");
  std::vector<std::pair<std::string, std::string>> two_tp{
      {"traceparent", TP}, {"traceparent", TP}};
  CHECK(!mesh::extract(two_tp, MESH_PROPAGATE_TRACECONTEXT));
  CHECK(!mesh::extract(std::map<std::string, std::string>{}));
  CHECK(!mesh::extract(std::map<std::string, std::string>{
      {"traceparent", "garbage"}}));
  bool threw = false;
  try {
    mesh::inject(t, MESH_PROPAGATE_TRACECONTEXT,
                 [](std::string_view, std::string_view) {
                   throw std::runtime_error("setter bug");
                 });
  } catch (const std::runtime_error &) {
    threw = true;  // the setter's exception, carried over the C call
  }
  CHECK(threw);
}

// ---- discovery (static: no I/O) ------------------------------------------

static void test_discovery() {
  mesh::Mesh m(R"({"log":{"level":"error"},"services":{"api":{"discovery":
    {"type":"static","endpoints":[
      {"address":"127.0.0.2","port":8443,"health":"draining"},
      {"address":"127.0.0.1","port":8443,"weight":3,"priority":1,
       "locality":{"region":"eu","zone":"a","subzone":"r1"},
       "labels":{"version":"v1"}}]}}}})");
  m.wait_discovery("api", 5000);
  mesh::Endpoints e = m.endpoints("api");
  CHECK(e.version > 0 && e.endpoints.size() == 2);
  if (e.endpoints.size() == 2) {
    const mesh::Endpoint &a = e.endpoints[0], &b = e.endpoints[1];
    CHECK(a.address == "127.0.0.1" && a.port == 8443 && a.weight == 3);
    CHECK(a.priority == 1 && a.region == "eu" && a.zone == "a");
    CHECK(a.labels.size() == 1 && a.labels.at("version") == "v1");
    CHECK(b.health == MESH_HEALTH_DRAINING && b.labels.empty());
  }
  expect_error([&] { m.endpoints("nope"); }, MESH_ERR_UNKNOWN_SERVICE,
               "nope");
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> sizes;
  {
    mesh::Watch w = m.watch("api", [&](const std::string &svc,
                                       const mesh::Endpoints &eps) {
      std::lock_guard<std::mutex> lock(mu);
      if (svc == "api")
        sizes.push_back(eps.endpoints.size());
      cv.notify_all();
    });
    CHECK(w && w.id() > 0);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return !sizes.empty(); });
    CHECK(sizes.size() == 1 && sizes[0] == 2);
  }  // unwatched here
  expect_error([&] { m.watch("nope", [](const std::string &,
                                        const mesh::Endpoints &) {}); },
               MESH_ERR_UNKNOWN_SERVICE, "nope");
}

// ---- authorization (no I/O) ------------------------------------------------

static void test_authz() {
  mesh::Mesh m(R"({"log":{"level":"error"},"authz":{"policies":[
    {"name":"deny-dev-post","action":"DENY","rules":[
      {"from":[{"source":{"namespaces":["dev"]}}],
       "to":[{"operation":{"methods":["POST"]}}]}]},
    {"name":"tenant","action":"CUSTOM","provider":"callback","rules":[
      {"to":[{"operation":{"paths":["/t*"]}}]}]}]}})");
  const std::string dev = "spiffe://example.org/ns/dev/sa/tool";
  m.authz_check(mesh::AuthzRequest().principal(dev).http("GET", "/x"));
  expect_error(
      [&] {
        m.authz_check(mesh::AuthzRequest().principal(dev).http("POST", "/x"));
      },
      MESH_ERR_DENIED, "deny-dev-post");
  mesh::AuthzRequest r;
  r.principal(dev).source_ip("127.0.0.7").port(8443).http("GET",
                                                          "/t//x/../y?q", "h");
  r.header("X-Tenant", "acme");
  CHECK(r.principal() == dev && r.ns() == "dev");
  CHECK(r.source_ip() == "127.0.0.7" && r.port() == 8443);
  CHECK(r.path() == std::optional<std::string>("/t/y"));
  CHECK(r.header("x-tenant") == std::optional<std::string>("acme"));
  CHECK(!mesh::AuthzRequest().method());
  // CUSTOM without an authorizer denies; with one, it decides.
  expect_error([&] { m.authz_check(r); }, MESH_ERR_DENIED, "tenant");
  std::atomic<int> asked{0};
  m.set_authorizer([&](const mesh::AuthzView &v, std::string_view policy) {
    asked++;
    return policy == "tenant" && v.header("x-tenant") == "acme";
  });
  m.authz_check(r);
  r.header("x-tenant", "evil");  // still the first value: acme
  m.authz_check(r);
  mesh::AuthzRequest evil;
  evil.principal(dev).http("GET", "/t").header("x-tenant", "evil");
  expect_error([&] { m.authz_check(evil); }, MESH_ERR_DENIED, "tenant");
  m.set_authorizer([](const mesh::AuthzView &, std::string_view) -> bool {
    throw std::runtime_error("authorizer bug");
  });
  expect_error([&] { m.authz_check(r); }, MESH_ERR_DENIED, "tenant");
  CHECK(asked == 3);
  CHECK(m.authz_counter("custom_deny") == 3);
  expect_error([&] { m.authz_counter("nope"); }, MESH_ERR_NOT_FOUND, "nope");
  expect_error([&] { m.authz_reload(R"({"policies":[{"name":1}]})"); },
               MESH_ERR_CONFIG, "policies[0].name");
  m.authz_reload(R"({"policies":[]})");
  m.authz_check(evil);
  CHECK(m.authz_counter("reload") == 1 && m.authz_counter("reload_error") == 1);
  expect_error([&] { mesh::AuthzRequest().source_ip("nope"); },
               MESH_ERR_INVALID_ARG, "source_ip");
}

// ---- the call API and spans, over real connections -------------------------

// Accepts on a loopback listener and echoes each connection in a thread,
// until stopped (bounded waits only).
class EchoServer {
 public:
  explicit EchoServer(mesh::Mesh &m) : ln_(m.listen("127.0.0.1:0")) {
    t_ = std::thread([this] { run(); });
  }
  ~EchoServer() {
    stop_ = true;
    t_.join();
    for (auto &w : workers_)
      w.join();
  }
  int port() const { return port_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

 private:
  void run() {
    while (!stop_) {
      try {
        mesh::Conn c = ln_.accept(50);
        accepted_++;
        workers_.emplace_back([c = std::move(c)]() mutable {
          try {
            c.set_timeouts(5000, 5000);
            for (std::string d = c.read_some(); !d.empty(); d = c.read_some())
              c.write_all(d);
          } catch (const mesh::Error &) {
          }
        });
      } catch (const mesh::Error &) {  // timeout, or a refused peer
      }
    }
  }
  mesh::Listener ln_;
  int port_ = ln_.port();
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<std::thread> workers_;
  std::thread t_;
};

static mesh::TryResult ping(mesh::CallRef &c, const std::string &msg) {
  mesh::ConnRef conn = c.conn();
  conn.write_all(msg);
  if (conn.read_exactly(msg.size()) != msg)
    return {mesh::Outcome::protocol_error, 0};
  return {mesh::Outcome::ok, 200};
}

static void test_call(const std::string &dir) {
  mesh::Mesh server(svid_config(dir, "api"));
  EchoServer echo(server);
  std::string cfg = svid_config(dir, "web");
  cfg.pop_back();
  cfg += R"(,"services":{"api":{"peers":["spiffe://example.org/api"],
    "retry":{"retry_on":["5xx"],"num_retries":2,"base_interval_ms":1},
    "discovery":{"type":"static","endpoints":[{"address":"127.0.0.1","port":)" +
         std::to_string(echo.port()) + "}]}}}}";
  mesh::Mesh web(cfg);
  web.wait_discovery("api", 5000);

  // One try: begin, speak, end; the connection goes back to the pool.
  for (int i = 0; i < 2; i++) {
    mesh::Call c = web.call("api", mesh::CallOptions().deadline_ms(5000));
    CHECK(c.endpoint() == echo.addr() && c.attempt() == 0);
    CHECK(c.remaining_ms() > 0 && c.remaining_ms() <= 5000);
    CHECK(c.conn().peer_id() == "spiffe://example.org/api");
    CHECK(ping(c, "one try").outcome == mesh::Outcome::ok);
    c.end(mesh::Outcome::ok, 200);
    CHECK(!c);
    expect_error([&] { c.conn(); }, MESH_ERR_CLOSED, "ended");
    c.end(mesh::Outcome::ok, 200);  // no-op
  }
  CHECK(echo.accepted() == 1);
  {
    mesh::Call forgotten = web.call("api");  // ended (cancelled) by ~Call
  }
  expect_error([&] { web.call("api").end(static_cast<mesh::Outcome>(42)); },
               MESH_ERR_INVALID_ARG, "unknown outcome");
  expect_error(
      [&] { web.call("api", mesh::CallOptions().subset("nope")); },
      MESH_ERR_NOT_FOUND, "nope");

  // call_do: the library's retries around a C++ function.
  std::vector<int> tries;
  web.call_do("api", [&](mesh::CallRef &c) {
    tries.push_back(c.attempt());
    return ping(c, "retried");
  });
  CHECK(tries.size() == 1);
  tries.clear();
  expect_error(
      [&] {
        web.call_do("api", [&](mesh::CallRef &c) {
          tries.push_back(c.attempt());
          ping(c, "x");
          return mesh::TryResult{mesh::Outcome::ok, 503};
        });
      },
      MESH_ERR_UPSTREAM, "503");
  CHECK(tries.size() == 3);
  // A connection error thrown by the try is its outcome (a reset here):
  // retried.
  tries.clear();
  web.call_do("api", [&](mesh::CallRef &c) {
    tries.push_back(c.attempt());
    if (c.attempt() == 0)
      throw mesh::Error(MESH_ERR_RESET, "simulated reset");
    return ping(c, "after reset");
  });
  CHECK(tries.size() == 2);
  // Any other exception stops the call and comes back as is.
  tries.clear();
  bool threw = false;
  try {
    web.call_do("api", [&](mesh::CallRef &c) -> mesh::TryResult {
      tries.push_back(c.attempt());
      throw std::logic_error("our bug");
    });
  } catch (const std::logic_error &) {
    threw = true;
  }
  CHECK(threw && tries.size() == 1);
  // A try that waits for an answer that never comes: the per-try timeout.
  auto t0 = std::chrono::steady_clock::now();
  expect_error(
      [&] {
        web.call_do(
            "api",
            [](mesh::CallRef &c) {
              c.conn().read_some(1);
              return mesh::TryResult{};
            },
            mesh::CallOptions().per_try_timeout_ms(200).max_retries(0));
      },
      MESH_ERR_TIMEOUT, "per-try timeout");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  CHECK(ms >= 150 && ms < 3000);

  // request: the library writes and reads, the frame function decides.
  const std::string req = "framed request\n";
  int frames = 0;
  mesh::Response resp = web.request(
      "api", req, [&](std::string_view data, int &status) -> long {
        frames++;
        if (data.size() < req.size())
          return 0;
        status = 200;
        return static_cast<long>(req.size());
      });
  CHECK(resp.body == req && resp.status == 200 && frames >= 1);
  threw = false;
  try {
    web.request("api", req, [](std::string_view, int &) -> long {
      throw std::runtime_error("frame bug");
    });
  } catch (const std::runtime_error &) {
    threw = true;
  }
  CHECK(threw);
}

static void test_spans(const std::string &dir) {
  mesh::Mesh server(svid_config(dir, "api"));
  EchoServer echo(server);
  std::string cfg = svid_config(dir, "web");
  cfg.pop_back();
  cfg += R"(,"services":{"api":{"peers":["spiffe://example.org/api"],
    "discovery":{"type":"static","endpoints":[{"address":"127.0.0.1","port":)" +
         std::to_string(echo.port()) + "}]}}}}";
  mesh::Mesh web(cfg);
  std::mutex mu;
  std::vector<mesh::Span> started, ended;
  web.set_span_hooks(
      [&](const mesh::Span &s) {
        std::lock_guard<std::mutex> lock(mu);
        started.push_back(s);
      },
      [&](const mesh::Span &s) {
        std::lock_guard<std::mutex> lock(mu);
        ended.push_back(s);
      });
  auto named = [&](const std::string &name) {
    std::vector<mesh::Span> got;
    for (int i = 0; i < 500 && got.empty(); i++) {
      {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto &s : ended)
          if (s.name == name)
            got.push_back(s);
      }
      if (got.empty())
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return got;
  };
  mesh::TraceContext parent = mesh::TraceContext::from_traceparent(TP);
  {
    mesh::Conn c = web.dial(
        echo.addr(), mesh::DialOptions().timeout_ms(5000).trace_parent(parent));
  }
  auto dials = named("mesh.dial");
  CHECK(dials.size() == 1);
  if (dials.size() == 1) {
    const mesh::Span &d = dials[0];
    CHECK(d.trace_id() == parent.trace_id());
    CHECK(d.parent_span_id() == parent.span_id());
    CHECK(d.kind == MESH_SPAN_CLIENT && d.end_ns > d.start_ns);
    const int64_t *port = d.attr<int64_t>("server.port");
    CHECK(port && *port == echo.port());
    const std::string *peer = d.attr<std::string>("mesh.peer.spiffe_id");
    CHECK(peer && *peer == "spiffe://example.org/api");
    CHECK(!d.attr<double>("server.port"));  // wrong type: nullptr
    auto hs = named("mesh.handshake");
    CHECK(hs.size() == 1 && hs[0].parent_span_id() == d.span_id());
    std::lock_guard<std::mutex> lock(mu);
    bool seen = false;
    for (const auto &s : started)
      seen |= s.span_id() == d.span_id() && s.end_ns == 0;
    CHECK(seen);
  }
  std::string sent;
  web.call_do(
      "api",
      [&](mesh::CallRef &c) {
        sent = c.trace_context().span_id();
        return ping(c, "traced");
      },
      mesh::CallOptions().trace_parent(parent));
  auto calls = named("mesh.call"), tries = named("mesh.try");
  CHECK(calls.size() == 1 && tries.size() == 1);
  if (calls.size() == 1 && tries.size() == 1) {
    CHECK(calls[0].parent_span_id() == parent.span_id());
    CHECK(tries[0].parent_span_id() == calls[0].span_id());
    CHECK(tries[0].span_id() == sent);
  }
  web.set_span_hooks(nullptr, nullptr);  // removed
  size_t before;
  {
    std::lock_guard<std::mutex> lock(mu);
    before = ended.size();
  }
  { mesh::Conn c = web.dial(echo.addr()); }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::lock_guard<std::mutex> lock(mu);
  CHECK(ended.size() == before);
}

int main(int argc, char **argv) {
  test_config_errors();
  test_config_check();
  test_spiffe_and_version();
  test_mesh_move();
  test_closed_handles_throw();
  test_error_value();
  test_trace_context();
  test_discovery();
  test_authz();
  if (argc > 1) {
    std::string dir = argv[1];
    try {
      mesh::ca::init("example.org", 3600, dir + "/ca.crt", dir + "/ca.key");
      test_conn_echo_and_moves(dir);
      test_call(dir);
      test_spans(dir);
    } catch (const mesh::Error &e) {
      failed++;
      std::fprintf(stderr, "unexpected: %s\n", e.what());
    }
  } else {
    failed++;
    std::fprintf(stderr, "usage: test_mesh_hpp DIR (for certificates)\n");
  }
  std::printf("test_mesh_hpp: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
