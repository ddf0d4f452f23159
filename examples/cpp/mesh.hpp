// mesh.hpp — a small header-only C++17 RAII wrapper over the libmesh C API.
//
//   mesh::Mesh m(config_json);                 // throws mesh::Error
//   mesh::Conn c = m.dial("payments", mesh::DialOptions().timeout_ms(2000));
//   c.write_all("ping");
//   std::string reply = c.read_some(4096);     // "" at end of stream
//   std::cout << c.peer_id() << "\n";
//
// Handles are move-only and freed by their destructors.  The C rule on
// lifetimes still holds: connections and listeners must be destroyed before
// the Mesh they came from (declare the Mesh first, or close() explicitly).
// Threading follows the C API: a Mesh may be shared between threads, a Conn
// or Listener belongs to one thread at a time.
#ifndef MESH_HPP
#define MESH_HPP

#include <mesh/mesh.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mesh {

/// A failed call: the mesh_status_t (code and the library's detail).
class Error : public std::runtime_error {
 public:
  explicit Error(const mesh_status_t &st)
      : std::runtime_error(format(st.code, st.message)), status_(st) {}
  Error(int code, std::string_view detail)
      : std::runtime_error(format(code, std::string(detail).c_str())),
        status_(make_status(code, detail)) {}

  /// The negative mesh_code_t, e.g. MESH_ERR_TIMEOUT.
  int code() const noexcept { return status_.code; }
  /// Symbolic name, e.g. "MESH_ERR_TIMEOUT".
  const char *name() const noexcept { return mesh_code_name(status_.code); }
  /// The library's detail (JSON path, peer, check), may be empty.
  const char *detail() const noexcept { return status_.message; }
  const mesh_status_t &status() const noexcept { return status_; }

 private:
  static std::string format(int code, const char *detail) {
    std::string s = mesh_code_name(code);
    s += ": ";
    s += (detail && *detail) ? detail : mesh_strerror(code);
    return s;
  }
  static mesh_status_t make_status(int code, std::string_view detail) {
    mesh_status_t st{};
    st.code = code;
    size_t n = detail.size() < sizeof st.message - 1 ? detail.size()
                                                     : sizeof st.message - 1;
    detail.copy(st.message, n);
    st.message[n] = '\0';
    return st;
  }
  mesh_status_t status_;
};

namespace detail {
inline int check(int rc, const mesh_status_t &st) {
  if (rc >= 0)
    return rc;
  if (st.code == rc)
    throw Error(st);
  throw Error(rc, "");
}
inline int check(int rc, std::string_view what = {}) {
  if (rc < 0)
    throw Error(rc, what);
  return rc;
}
}  // namespace detail

/// Options for one dial (mesh_dial_opts_t), chainable setters.
class DialOptions {
 public:
  DialOptions() : o_(mesh_dial_opts_new()) {
    if (!o_)
      throw Error(MESH_ERR_NOMEM, "mesh_dial_opts_new");
  }
  ~DialOptions() { mesh_dial_opts_free(o_); }
  DialOptions(DialOptions &&other) noexcept : o_(std::exchange(other.o_, nullptr)) {}
  DialOptions &operator=(DialOptions &&other) noexcept {
    std::swap(o_, other.o_);
    return *this;
  }
  DialOptions(const DialOptions &) = delete;
  DialOptions &operator=(const DialOptions &) = delete;

  /// Connect + handshake budget in milliseconds.
  DialOptions &timeout_ms(int ms) {
    detail::check(mesh_dial_opts_set_timeout(o_, ms), "timeout");
    return *this;
  }
  /// Accept a server whose SPIFFE ID matches pattern (replaces the
  /// service's configured peers once any is added).
  DialOptions &peer(const std::string &pattern) {
    detail::check(mesh_dial_opts_add_peer(o_, pattern.c_str()), "peer");
    return *this;
  }
  /// Comma-separated ALPN list, e.g. "h2,http/1.1".
  DialOptions &alpn(const std::string &protocols) {
    detail::check(mesh_dial_opts_set_alpn(o_, protocols.c_str()), "alpn");
    return *this;
  }
  /// Key for ring_hash / maglev balancing.
  DialOptions &hash_key(std::string_view key) {
    detail::check(mesh_dial_opts_set_hash_key(o_, key.data(), key.size()),
                  "hash_key");
    return *this;
  }
  const mesh_dial_opts_t *get() const noexcept { return o_; }

 private:
  mesh_dial_opts_t *o_;
};

/// An mTLS connection (mesh_conn_t).  Move-only.
class Conn {
 public:
  Conn() noexcept = default;
  explicit Conn(mesh_conn_t *c) noexcept : c_(c) {}
  ~Conn() { close(); }
  Conn(Conn &&other) noexcept : c_(std::exchange(other.c_, nullptr)) {}
  Conn &operator=(Conn &&other) noexcept {
    if (this != &other) {
      close();
      c_ = std::exchange(other.c_, nullptr);
    }
    return *this;
  }
  Conn(const Conn &) = delete;
  Conn &operator=(const Conn &) = delete;

  explicit operator bool() const noexcept { return c_ != nullptr; }
  mesh_conn_t *get() const noexcept { return c_; }
  /// Give up ownership (the caller must mesh_conn_close() it).
  mesh_conn_t *release() noexcept { return std::exchange(c_, nullptr); }
  /// Send close_notify, close and free.  Idempotent.
  void close() noexcept { mesh_conn_close(std::exchange(c_, nullptr)); }

  /// Read up to len bytes; 0 at end of stream.
  size_t read(void *buf, size_t len) {
    long n = mesh_conn_read(live(), buf, len);
    if (n == MESH_ERR_PEER_CLOSED)
      return 0;
    if (n < 0)
      throw Error(static_cast<int>(n), mesh_conn_errmsg(c_));
    return static_cast<size_t>(n);
  }
  /// Read what is available, up to max bytes; "" at end of stream.
  std::string read_some(size_t max = 16384) {
    std::string s(max, '\0');
    s.resize(read(s.data(), s.size()));
    return s;
  }
  /// Write all of data.
  void write_all(std::string_view data) {
    int rc = mesh_conn_write_all(live(), data.data(), data.size());
    if (rc < 0)
      throw Error(rc, mesh_conn_errmsg(c_));
  }
  /// Blocking read/write timeouts in ms (-1: none).
  void set_timeouts(int read_ms, int write_ms) {
    detail::check(mesh_conn_set_timeouts(live(), read_ms, write_ms),
                  "set_timeouts");
  }
  /// Send close_notify and shut down the write side.
  void shutdown() {
    int rc = mesh_conn_shutdown(live());
    if (rc < 0)
      throw Error(rc, mesh_conn_errmsg(c_));
  }

  std::string peer_id() const { return mesh_conn_peer_id(live()); }
  std::string cipher() const { return mesh_conn_cipher(live()); }
  std::string tls_version() const { return mesh_conn_tls_version(live()); }
  std::string alpn() const { return mesh_conn_alpn(live()); }
  std::string peer_addr() const { return mesh_conn_peer_addr(live()); }
  bool resumed() const { return mesh_conn_resumed(live()) == 1; }
  bool is_tls() const { return mesh_conn_is_tls(live()) == 1; }
  int fd() const { return mesh_conn_fd(live()); }

 private:
  mesh_conn_t *live() const {
    if (!c_)
      throw Error(MESH_ERR_CLOSED, "connection is closed");
    return c_;
  }
  mesh_conn_t *c_ = nullptr;
};

/// A listening socket (mesh_listener_t).  Move-only.
class Listener {
 public:
  Listener() noexcept = default;
  explicit Listener(mesh_listener_t *l) noexcept : l_(l) {}
  ~Listener() { close(); }
  Listener(Listener &&other) noexcept : l_(std::exchange(other.l_, nullptr)) {}
  Listener &operator=(Listener &&other) noexcept {
    if (this != &other) {
      close();
      l_ = std::exchange(other.l_, nullptr);
    }
    return *this;
  }
  Listener(const Listener &) = delete;
  Listener &operator=(const Listener &) = delete;

  explicit operator bool() const noexcept { return l_ != nullptr; }
  void close() noexcept { mesh_listener_close(std::exchange(l_, nullptr)); }
  int port() const { return mesh_listener_port(live()); }
  int fd() const { return mesh_listener_fd(live()); }

  /// Accept one peer and complete its handshake (timeout_ms -1: wait).
  Conn accept(int timeout_ms = -1) {
    mesh_status_t st{};
    mesh_conn_t *c = nullptr;
    detail::check(mesh_accept(live(), timeout_ms, &c, &st), st);
    return Conn(c);
  }

 private:
  mesh_listener_t *live() const {
    if (!l_)
      throw Error(MESH_ERR_CLOSED, "listener is closed");
    return l_;
  }
  mesh_listener_t *l_ = nullptr;
};

/// A libmesh context (mesh_t).  Move-only.
class Mesh {
 public:
  /// Create from JSON configuration text; throws Error (MESH_ERR_CONFIG
  /// with the JSON path in detail()).
  explicit Mesh(const std::string &json) {
    mesh_status_t st{};
    detail::check(mesh_new(json.c_str(), &m_, &st), st);
  }
  static Mesh from_file(const std::string &path) {
    mesh_status_t st{};
    mesh_t *m = nullptr;
    detail::check(mesh_new_from_file(path.c_str(), &m, &st), st);
    return Mesh(m);
  }
  ~Mesh() { mesh_free(m_); }
  Mesh(Mesh &&other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
  Mesh &operator=(Mesh &&other) noexcept {
    if (this != &other) {
      mesh_free(m_);
      m_ = std::exchange(other.m_, nullptr);
    }
    return *this;
  }
  Mesh(const Mesh &) = delete;
  Mesh &operator=(const Mesh &) = delete;

  mesh_t *get() const noexcept { return m_; }

  /// Dial a configured service or "host:port" over mTLS (blocking).
  Conn dial(const std::string &target) { return dial_opts(target, nullptr); }
  Conn dial(const std::string &target, const DialOptions &opts) {
    return dial_opts(target, opts.get());
  }
  /// Listen on "host:port" ("" : the config's inbound.listen).
  Listener listen(const std::string &addr = "") {
    mesh_status_t st{};
    mesh_listener_t *l = nullptr;
    detail::check(mesh_listen(m_, addr.empty() ? nullptr : addr.c_str(), &l,
                              &st),
                  st);
    return Listener(l);
  }
  /// This context's SPIFFE ID ("" with no SVID loaded).
  std::string self_id() const {
    std::string s(MESH_SPIFFE_ID_MAX + 1, '\0');
    if (mesh_self_id(m_, s.data(), s.size()) != MESH_OK)
      return "";
    s.resize(s.find('\0'));
    return s;
  }

 private:
  explicit Mesh(mesh_t *m) noexcept : m_(m) {}
  Conn dial_opts(const std::string &target, const mesh_dial_opts_t *o) {
    mesh_status_t st{};
    mesh_conn_t *c = nullptr;
    int rc = mesh_dial(m_, target.c_str(), o, &c, &st);
    if (rc < 0) {
      mesh_conn_close(c);
      detail::check(rc, st);
    }
    return Conn(c);
  }
  mesh_t *m_ = nullptr;
};

/// Every error of a configuration, as "json.path: reason".
inline std::vector<std::string> config_check(const std::string &json) {
  std::vector<std::string> found;
  int rc = mesh_config_check(
      json.c_str(),
      [](const char *text, void *user) {
        static_cast<std::vector<std::string> *>(user)->emplace_back(text);
      },
      &found);
  detail::check(rc, "config_check");
  return found;
}

/// The development CA (ECDSA P-256), for demos and tests.
namespace ca {
inline void init(const std::string &trust_domain, int64_t lifetime_s,
                 const std::string &cert_path, const std::string &key_path) {
  mesh_status_t st{};
  detail::check(mesh_ca_init(trust_domain.c_str(), lifetime_s,
                             cert_path.c_str(), key_path.c_str(), &st),
                st);
}
inline void issue(const std::string &ca_cert, const std::string &ca_key,
                  const std::string &spiffe_id, const std::string &cert_path,
                  const std::string &key_path, int64_t not_before = 0,
                  int64_t not_after = 0, unsigned flags = MESH_CA_ISSUE_DEFAULT) {
  mesh_status_t st{};
  detail::check(mesh_ca_issue(ca_cert.c_str(), ca_key.c_str(),
                              spiffe_id.c_str(), not_before, not_after, flags,
                              cert_path.c_str(), key_path.c_str(), &st),
                st);
}
}  // namespace ca

}  // namespace mesh

#endif  // MESH_HPP
