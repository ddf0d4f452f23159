// Tests of the header-only wrapper mesh.hpp (run by scripts/test.d/cpp.sh).
// Prints one line per failed check and a closing count.
#include "mesh.hpp"

#include <cstdio>
#include <cstring>
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

static void test_config_errors() {
  expect_error([] { mesh::Mesh m(R"({"nmae": "x"})"); }, MESH_ERR_CONFIG,
               "nmae: unknown key");
  expect_error([] { mesh::Mesh m(R"({"log": {"level": "loud"}})"); },
               MESH_ERR_CONFIG, "log.level: unknown value");
  expect_error([] { mesh::Mesh::from_file("/nonexistent/mesh.json"); },
               MESH_ERR_IO, "/nonexistent/mesh.json");
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

int main(int argc, char **argv) {
  test_config_errors();
  test_config_check();
  test_mesh_move();
  test_closed_handles_throw();
  test_error_value();
  if (argc > 1) {
    std::string dir = argv[1];
    try {
      mesh::ca::init("example.org", 3600, dir + "/ca.crt", dir + "/ca.key");
      test_conn_echo_and_moves(dir);
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
