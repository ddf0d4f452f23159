// Tests of the header-only wrapper mesh.hpp (run by scripts/test.d/cpp.sh).
// Prints one line per failed check and a closing count.
#include "mesh.hpp"

#include <cstdio>
#include <cstring>
#include <string>
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

// Run fn, expecting a libmesh::Error with `code` whose detail has `want`.
template <typename F>
static void expect_error(F fn, int code, const char *want) {
  try {
    fn();
    failed++;
    std::fprintf(stderr, "expected %s, nothing thrown\n", mesh_code_name(code));
  } catch (const libmesh::Error &e) {
    CHECK(e.code() == code);
    CHECK(std::strcmp(e.name(), mesh_code_name(code)) == 0);
    CHECK(std::strstr(e.detail(), want) != nullptr);
    CHECK(std::strstr(e.what(), mesh_code_name(code)) == e.what());
    if (!std::strstr(e.detail(), want))
      std::fprintf(stderr, "  detail was: %s\n", e.detail());
  }
}

static_assert(!std::is_copy_constructible_v<libmesh::Mesh>, "Mesh is move-only");
static_assert(!std::is_copy_constructible_v<libmesh::Conn>, "Conn is move-only");
static_assert(!std::is_copy_assignable_v<libmesh::Listener>, "Listener move-only");
static_assert(std::is_nothrow_move_constructible_v<libmesh::Conn>, "noexcept move");
static_assert(std::is_nothrow_move_assignable_v<libmesh::Mesh>, "noexcept move");

static void test_config_errors() {
  expect_error([] { libmesh::Mesh m(R"({"nmae": "x"})"); }, MESH_ERR_CONFIG,
               "nmae: unknown key");
  expect_error([] { libmesh::Mesh m(R"({"log": {"level": "loud"}})"); },
               MESH_ERR_CONFIG, "log.level: unknown value");
  expect_error([] { libmesh::Mesh::from_file("/nonexistent/mesh.json"); },
               MESH_ERR_IO, "/nonexistent/mesh.json");
}

static void test_config_check() {
  auto errs = libmesh::config_check(R"({"name":"a","nmae":1,"log":{"lvl":1}})");
  CHECK(errs.size() == 2);
  CHECK(libmesh::config_check(R"({"name":"ok"})").empty());
}

static void test_mesh_move() {
  libmesh::Mesh a(R"({"name":"a"})");
  mesh_t *raw = a.get();
  CHECK(raw != nullptr);
  libmesh::Mesh b(std::move(a));
  CHECK(a.get() == nullptr);  // NOLINT: moved-from is documented empty
  CHECK(b.get() == raw);
  libmesh::Mesh c(R"({"name":"c"})");
  c = std::move(b);  // frees c's old context, takes b's
  CHECK(c.get() == raw);
  std::vector<libmesh::Mesh> v;
  v.push_back(std::move(c));
  v.emplace_back(R"({"name":"d"})");
  CHECK(v.size() == 2 && v[0].get() == raw);
}

static void test_closed_handles_throw() {
  libmesh::Conn c;
  CHECK(!c);
  expect_error([&] { c.read_some(); }, MESH_ERR_CLOSED, "closed");
  expect_error([&] { c.write_all("x"); }, MESH_ERR_CLOSED, "closed");
  expect_error([&] { (void)c.peer_id(); }, MESH_ERR_CLOSED, "closed");
  c.close();  // idempotent on an empty handle
  libmesh::Listener l;
  CHECK(!l);
  expect_error([&] { l.accept(0); }, MESH_ERR_CLOSED, "closed");
  libmesh::Conn d(std::move(c));
  CHECK(!d);
}

static void test_error_value() {
  libmesh::Error e(MESH_ERR_TIMEOUT, "after 5 ms");
  CHECK(e.code() == MESH_ERR_TIMEOUT);
  CHECK(std::string(e.what()) == "MESH_ERR_TIMEOUT: after 5 ms");
  libmesh::Error f(MESH_ERR_TIMEOUT, "");
  CHECK(std::string(f.what()) == "MESH_ERR_TIMEOUT: timed out");
  std::string longer(1000, 'x');
  libmesh::Error g(MESH_ERR_PARSE, longer);
  CHECK(std::strlen(g.detail()) == sizeof(mesh_status_t::message) - 1);
}

int main() {
  test_config_errors();
  test_config_check();
  test_mesh_move();
  test_closed_handles_throw();
  test_error_value();
  std::printf("test_mesh_hpp: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
