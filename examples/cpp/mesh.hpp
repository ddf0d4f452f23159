// SPDX-License-Identifier: Apache-2.0
// mesh.hpp — a small header-only C++17 RAII wrapper over the libmesh C API.
//
//   mesh::Mesh m(config_json);                 // throws mesh::Error
//   mesh::Conn c = m.dial("payments", mesh::DialOptions().timeout_ms(2000));
//   c.write_all("ping");
//   std::string reply = c.read_some(4096);     // "" at end of stream
//   std::cout << c.peer_id() << "\n";
//
// Handles are move-only and freed by their destructors.  The C rule on
// lifetimes still holds: connections, listeners, calls and watches must be
// destroyed before the Mesh they came from (declare the Mesh first, or
// close() explicitly).  Threading follows the C API: a Mesh may be shared
// between threads, a Conn, Listener or Call belongs to one thread at a time.
//
// Callbacks (span hooks, watches, the authorizer, try and frame functions)
// are std::function objects kept alive by the Mesh until it is freed; an
// exception never unwinds into C: hooks and watches swallow it, an
// authorizer's denies, and call_do()/request() rethrow it once the C call
// has returned.
#ifndef MESH_HPP
#define MESH_HPP

#include <mesh/mesh.h>

#include <cctype>
#include <climits>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
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
inline std::string str(const char *s) { return s ? s : ""; }
inline std::string hex(const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}
inline bool zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}
inline bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); i++)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}
inline int ms(long long v) {
  return v > 0x7fffffff ? 0x7fffffff : static_cast<int>(v);
}

/// Callbacks handed to C, kept until mesh_free() (C may still be running
/// one it was told to replace).
struct Keep {
  std::mutex mu;
  std::vector<std::shared_ptr<void>> items;
  template <typename T>
  T *add(T value) {
    auto p = std::make_shared<T>(std::move(value));
    std::lock_guard<std::mutex> lock(mu);
    items.push_back(p);
    return p.get();
  }
};
}  // namespace detail

// ---- trace context ---------------------------------------------------------

/// Every propagation format (W3C, b3, x-b3-*).
constexpr unsigned propagate_all = MESH_PROPAGATE_TRACECONTEXT |
                                   MESH_PROPAGATE_B3 | MESH_PROPAGATE_B3_MULTI;

/// A span context as carried between processes (mesh_trace_ctx_t, plain
/// data, copyable).  Parsed and formatted by the library.
class TraceContext {
 public:
  TraceContext() noexcept : c_{} {}
  explicit TraceContext(const mesh_trace_ctx_t &c) noexcept : c_(c) {}

  /// Parse a W3C traceparent value (throws MESH_ERR_PARSE when invalid).
  static TraceContext from_traceparent(std::string_view s) {
    TraceContext t;
    detail::check(mesh_traceparent_parse(s.data(), s.size(), &t.c_),
                  "traceparent");
    return t;
  }
  /// Parse a B3 single-header value.
  static TraceContext from_b3(std::string_view s) {
    TraceContext t;
    detail::check(mesh_b3_parse(s.data(), s.size(), &t.c_), "b3");
    return t;
  }
  std::string traceparent() const {
    char buf[MESH_TRACEPARENT_LEN + 1];
    detail::check(mesh_traceparent_format(&c_, buf, sizeof buf), "traceparent");
    return buf;
  }
  std::string b3() const {
    char buf[128];
    detail::check(mesh_b3_format(&c_, buf, sizeof buf), "b3");
    return buf;
  }
  std::string trace_id() const { return detail::hex(c_.trace_id, 16); }
  std::string span_id() const { return detail::hex(c_.span_id, 8); }
  /// B3's ParentSpanId, or a span's parent in hooks; "" when none.
  std::string parent_span_id() const {
    return detail::zero(c_.parent_span_id, 8)
               ? ""
               : detail::hex(c_.parent_span_id, 8);
  }
  bool sampled() const noexcept { return c_.flags & MESH_TRACE_FLAG_SAMPLED; }
  std::string tracestate() const { return c_.tracestate; }
  const mesh_trace_ctx_t &get() const noexcept { return c_; }
  mesh_trace_ctx_t *ptr() noexcept { return &c_; }

 private:
  mesh_trace_ctx_t c_;
};

/// The trace context in a header container (any sequence of pairs of
/// std::string: std::map, std::multimap, a vector of pairs, ...; names
/// compared without case), trying W3C, then b3, then
/// x-b3-* among formats.  A name present several times (a repeated
/// field) reads as its values joined with "," in order, as HTTP combines
/// them.  Empty when no header is present or they are invalid (start a
/// new trace then).
template <typename Headers>
std::optional<TraceContext> extract(const Headers &headers,
                                    unsigned formats = propagate_all) {
  struct Get {
    const Headers *h;
    std::string joined;  // the value returned last (valid until next call)
    static const char *fn(const char *key, void *user) noexcept {
      Get &g = *static_cast<Get *>(user);
      try {
        bool found = false;
        g.joined.clear();
        for (const auto &kv : *g.h) {
          if (!detail::iequal(std::string_view(kv.first), key))
            continue;
          if (found)
            g.joined += ',';
          g.joined += kv.second;
          found = true;
        }
        return found ? g.joined.c_str() : nullptr;
      } catch (...) {  // never unwind into C: out of memory reads as absent
        return nullptr;
      }
    }
  } get{&headers, {}};
  TraceContext t;
  if (mesh_trace_extract(formats, &Get::fn, &get, t.ptr()) != MESH_OK)
    return std::nullopt;
  return t;
}

/// Write ctx's headers in every enabled format through
/// set(std::string_view name, std::string_view value).
template <typename Set>
void inject(const TraceContext &ctx, unsigned formats, Set &&set) {
  using F = std::remove_reference_t<Set>;
  struct Put {
    F *f;
    std::exception_ptr err;
    static int fn(const char *key, const char *value, void *user) {
      auto *p = static_cast<Put *>(user);
      try {
        (*p->f)(std::string_view(key), std::string_view(value));
        return 0;
      } catch (...) {
        p->err = std::current_exception();
        return 1;
      }
    }
  } put{&set, nullptr};
  int rc = mesh_trace_inject(&ctx.get(), formats, &Put::fn, &put);
  if (put.err)
    std::rethrow_exception(put.err);
  detail::check(rc, "trace inject");
}

/// A span the library started or ended, copied out of the hook call.
struct Span {
  using Value = std::variant<std::string, int64_t, bool, double>;
  std::string name;
  mesh_span_kind_t kind = MESH_SPAN_INTERNAL;
  TraceContext context;  // its parent_span_id() is the parent span
  uint64_t start_ns = 0, end_ns = 0;  // Unix ns; end_ns 0 while running
  mesh_span_status_t status = MESH_SPAN_STATUS_UNSET;
  std::string status_message;
  std::map<std::string, Value> attributes;

  std::string trace_id() const { return context.trace_id(); }
  std::string span_id() const { return context.span_id(); }
  std::string parent_span_id() const { return context.parent_span_id(); }
  /// The attribute key as a T (std::string, int64_t, bool, double), or
  /// nullptr when absent or of another type.
  template <typename T>
  const T *attr(const std::string &key) const {
    auto it = attributes.find(key);
    return it == attributes.end() ? nullptr : std::get_if<T>(&it->second);
  }

  static Span from(const mesh_span_t *sp) {
    Span s;
    s.name = mesh_span_name(sp);
    s.kind = mesh_span_kind(sp);
    mesh_trace_ctx_t c;
    mesh_span_context(sp, &c);
    s.context = TraceContext(c);
    s.start_ns = mesh_span_start_ns(sp);
    s.end_ns = mesh_span_end_ns(sp);
    const char *msg = nullptr;
    s.status = mesh_span_status(sp, &msg);
    s.status_message = detail::str(msg);
    for (size_t i = 0, n = mesh_span_attr_count(sp); i < n; i++) {
      const char *key = nullptr, *sv = nullptr;
      int64_t num = 0;
      double dbl = 0;
      switch (mesh_span_attr(sp, i, &key, &sv, &num, &dbl)) {
      case MESH_ATTR_STRING:
        s.attributes[key] = std::string(detail::str(sv));
        break;
      case MESH_ATTR_INT:
        s.attributes[key] = num;
        break;
      case MESH_ATTR_BOOL:
        s.attributes[key] = num != 0;
        break;
      case MESH_ATTR_DOUBLE:
        s.attributes[key] = dbl;
        break;
      default:
        break;
      }
    }
    return s;
  }
};
using SpanHook = std::function<void(const Span &)>;

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
  /// Open the dial's spans ("mesh.dial", "mesh.handshake") under parent,
  /// e.g. the context extracted from the request being served.
  DialOptions &trace_parent(const TraceContext &parent) {
    detail::check(mesh_dial_opts_set_trace_parent(o_, &parent.get()),
                  "trace_parent");
    return *this;
  }
  const mesh_dial_opts_t *get() const noexcept { return o_; }

 private:
  mesh_dial_opts_t *o_;
};

/// A connection used without owning it (a call's connection): the I/O and
/// attributes of Conn, valid as long as whatever owns it.
class ConnRef {
 public:
  ConnRef() noexcept = default;
  explicit ConnRef(mesh_conn_t *c) noexcept : c_(c) {}

  explicit operator bool() const noexcept { return c_ != nullptr; }
  mesh_conn_t *get() const noexcept { return c_; }

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
  /// Read exactly n bytes; throws MESH_ERR_PEER_CLOSED at an early end.
  std::string read_exactly(size_t n) {
    std::string s(n, '\0');
    for (size_t got = 0; got < n;) {
      size_t k = read(s.data() + got, n - got);
      if (k == 0)
        throw Error(MESH_ERR_PEER_CLOSED, "end of stream after " +
                                              std::to_string(got) + " of " +
                                              std::to_string(n) + " bytes");
      got += k;
    }
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
  /// The peer's certificate chain as PEM, leaf first (only the leaf
  /// after a resumed handshake).
  std::string peer_chain_pem() const {
    for (size_t size = 16384; size <= (1u << 20); size *= 4) {
      std::string s(size, '\0');
      long n = mesh_conn_peer_chain_pem(live(), s.data(), s.size());
      if (n == MESH_ERR_BUFFER)
        continue;
      detail::check(static_cast<int>(n), "peer chain");
      s.resize(static_cast<size_t>(n));
      return s;
    }
    throw Error(MESH_ERR_BUFFER, "peer chain larger than 1 MiB");
  }

 protected:
  mesh_conn_t *live() const {
    if (!c_)
      throw Error(MESH_ERR_CLOSED, "connection is closed");
    return c_;
  }
  mesh_conn_t *c_ = nullptr;
};

/// An mTLS connection (mesh_conn_t) that closes itself.  Move-only.
class Conn : public ConnRef {
 public:
  Conn() noexcept = default;
  explicit Conn(mesh_conn_t *c) noexcept : ConnRef(c) {}
  ~Conn() { close(); }
  Conn(Conn &&other) noexcept : ConnRef(std::exchange(other.c_, nullptr)) {}
  Conn &operator=(Conn &&other) noexcept {
    if (this != &other) {
      close();
      c_ = std::exchange(other.c_, nullptr);
    }
    return *this;
  }
  Conn(const Conn &) = delete;
  Conn &operator=(const Conn &) = delete;

  /// Give up ownership (the caller must mesh_conn_close() it).
  mesh_conn_t *release() noexcept { return std::exchange(c_, nullptr); }
  /// Send close_notify, close and free.  Idempotent.
  void close() noexcept { mesh_conn_close(std::exchange(c_, nullptr)); }
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

// ---- discovery --------------------------------------------------------------

/// One endpoint of a service, copied out of the library.
struct Endpoint {
  std::string address;  // IP literal or hostname, as the source gave it
  int port = 0;
  uint32_t weight = 0, priority = 0;
  int health = MESH_HEALTH_UNKNOWN;  // MESH_HEALTH_*
  std::string region, zone, subzone;
  std::map<std::string, std::string> labels;
};

/// A service's endpoint set at one moment (ordered by address, port);
/// version grows with each change, 0 before discovery's first answer.
struct Endpoints {
  uint64_t version = 0;
  std::vector<Endpoint> endpoints;

  static Endpoints from(const mesh_endpoints_t *e) {
    Endpoints out;
    out.version = mesh_endpoints_version(e);
    for (size_t i = 0, n = mesh_endpoints_count(e); i < n; i++) {
      Endpoint ep;
      ep.address = detail::str(mesh_endpoint_address(e, i));
      ep.port = mesh_endpoint_port(e, i);
      ep.weight = mesh_endpoint_weight(e, i);
      ep.priority = mesh_endpoint_priority(e, i);
      ep.health = mesh_endpoint_health(e, i);
      ep.region = detail::str(mesh_endpoint_region(e, i));
      ep.zone = detail::str(mesh_endpoint_zone(e, i));
      ep.subzone = detail::str(mesh_endpoint_subzone(e, i));
      for (size_t j = 0, k = mesh_endpoint_label_count(e, i); j < k; j++) {
        const char *key = nullptr, *val = nullptr;
        if (mesh_endpoint_label_at(e, i, j, &key, &val) == MESH_OK)
          ep.labels[key] = val;
      }
      out.endpoints.push_back(std::move(ep));
    }
    return out;
  }
};
using WatchFn = std::function<void(const std::string &, const Endpoints &)>;

/// A discovery watch; removed by its destructor or stop() (when that
/// returns the callback is not running).  Move-only; destroy it before
/// its Mesh.
class Watch {
 public:
  Watch() noexcept = default;
  Watch(mesh_t *m, int id) noexcept : m_(m), id_(id) {}
  ~Watch() { stop(); }
  Watch(Watch &&o) noexcept
      : m_(std::exchange(o.m_, nullptr)), id_(std::exchange(o.id_, 0)) {}
  Watch &operator=(Watch &&o) noexcept {
    if (this != &o) {
      stop();
      m_ = std::exchange(o.m_, nullptr);
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  Watch(const Watch &) = delete;
  Watch &operator=(const Watch &) = delete;
  explicit operator bool() const noexcept { return m_ != nullptr; }
  int id() const noexcept { return id_; }
  void stop() noexcept {
    if (m_)
      mesh_discovery_unwatch(m_, id_);
    m_ = nullptr;
  }

 private:
  mesh_t *m_ = nullptr;
  int id_ = 0;
};

// ---- the call API -----------------------------------------------------------

/// How one try ended (mesh_call_outcome_t).
enum class Outcome : int {
  ok = MESH_CALL_OK,              // complete response, connection reusable
  ok_close = MESH_CALL_OK_CLOSE,  // complete response, do not reuse
  connect_failure = MESH_CALL_CONNECT_FAILURE,
  reset = MESH_CALL_RESET,
  timeout = MESH_CALL_TIMEOUT,
  protocol_error = MESH_CALL_PROTOCOL_ERROR,
  cancelled = MESH_CALL_CANCELLED
};

/// What a try function reports: the outcome and the protocol's status
/// (HTTP-like: 5xx are server errors; 0 for none).
struct TryResult {
  Outcome outcome = Outcome::ok;
  int status = 0;
};

/// Options for one call (mesh_call_opts_t), chainable setters; durations
/// in milliseconds.  Default: everything from the service's config.
class CallOptions {
 public:
  CallOptions() : o_(mesh_call_opts_new()) {
    if (!o_)
      throw Error(MESH_ERR_NOMEM, "mesh_call_opts_new");
  }
  ~CallOptions() { mesh_call_opts_free(o_); }
  CallOptions(CallOptions &&other) noexcept
      : o_(std::exchange(other.o_, nullptr)) {}
  CallOptions &operator=(CallOptions &&other) noexcept {
    std::swap(o_, other.o_);
    return *this;
  }
  CallOptions(const CallOptions &) = delete;
  CallOptions &operator=(const CallOptions &) = delete;

  /// Overall deadline, retries included.
  CallOptions &deadline_ms(int v) {
    detail::check(mesh_call_opts_set_deadline(o_, v), "deadline_ms");
    return *this;
  }
  CallOptions &per_try_timeout_ms(int v) {
    detail::check(mesh_call_opts_set_per_try_timeout(o_, v),
                  "per_try_timeout_ms");
    return *this;
  }
  CallOptions &connect_timeout_ms(int v) {
    detail::check(mesh_call_opts_set_connect_timeout(o_, v),
                  "connect_timeout_ms");
    return *this;
  }
  /// Retries after the first try (0 turns them off).
  CallOptions &max_retries(int n) {
    detail::check(mesh_call_opts_set_max_retries(o_, n), "max_retries");
    return *this;
  }
  CallOptions &hedging(bool on) {
    detail::check(mesh_call_opts_set_hedging(o_, on ? 1 : 0), "hedging");
    return *this;
  }
  CallOptions &hash_key(std::string_view key) {
    detail::check(mesh_call_opts_set_hash_key(o_, key.data(), key.size()),
                  "hash_key");
    return *this;
  }
  CallOptions &alpn(const std::string &protocols) {
    detail::check(mesh_call_opts_set_alpn(o_, protocols.c_str()), "alpn");
    return *this;
  }
  /// A named subset of the service (bypasses the split).
  CallOptions &subset(const std::string &name) {
    detail::check(mesh_call_opts_set_subset(o_, name.c_str()), "subset");
    return *this;
  }
  /// The parent of the call's span.
  CallOptions &trace_parent(const TraceContext &parent) {
    detail::check(mesh_call_opts_set_trace_parent(o_, &parent.get()),
                  "trace_parent");
    return *this;
  }
  const mesh_call_opts_t *get() const noexcept { return o_; }

 private:
  mesh_call_opts_t *o_;
};

/// A try of a call, not owned: what a call_do() try function gets.
class CallRef {
 public:
  explicit CallRef(mesh_call_t *c = nullptr) noexcept : c_(c) {}
  explicit operator bool() const noexcept { return c_ != nullptr; }
  /// The connection (borrowed: valid until the try ends; never close it).
  ConnRef conn() const { return ConnRef(mesh_call_conn(live())); }
  /// "ip:port" of the endpoint this try went to.
  std::string endpoint() const { return mesh_call_endpoint(live()); }
  /// 0 for the first try, then 1, 2, ... for retries.
  int attempt() const { return mesh_call_attempt(live()); }
  /// Milliseconds left in this try (-1: no timeout).
  int remaining_ms() const { return mesh_call_remaining_ms(live()); }
  /// The context of this try's span ("mesh.try") to send with the request.
  TraceContext trace_context() const {
    TraceContext t;
    detail::check(mesh_call_trace_context(live(), t.ptr()), "trace_context");
    return t;
  }

 protected:
  mesh_call_t *live() const {
    if (!c_)
      throw Error(MESH_ERR_CLOSED, "the call has ended");
    return c_;
  }
  mesh_call_t *c_;
};

/// One try of a call (mesh_call_begin()) that you end with end(); the
/// destructor ends a forgotten one as Outcome::cancelled.  Move-only.
class Call : public CallRef {
 public:
  Call() noexcept = default;
  explicit Call(mesh_call_t *c) noexcept : CallRef(c) {}
  ~Call() { mesh_call_end(std::exchange(c_, nullptr), MESH_CALL_CANCELLED, 0); }
  Call(Call &&other) noexcept : CallRef(std::exchange(other.c_, nullptr)) {}
  Call &operator=(Call &&other) noexcept {
    if (this != &other) {
      mesh_call_end(std::exchange(c_, other.c_), MESH_CALL_CANCELLED, 0);
      other.c_ = nullptr;
    }
    return *this;
  }
  Call(const Call &) = delete;
  Call &operator=(const Call &) = delete;

  /// Report how the try went and release the connection (pooled on
  /// Outcome::ok).  A no-op once ended.
  void end(Outcome outcome, int status = 0) {
    if (c_)
      detail::check(mesh_call_end(std::exchange(c_, nullptr),
                                  static_cast<int>(outcome), status),
                    "call end: unknown outcome");
  }
};

using TryFn = std::function<TryResult(CallRef &)>;
/// Framing of a response: all bytes so far -> 0 need more, n > 0 complete
/// (set status), negative malformed.
using FrameFn = std::function<long(std::string_view, int &status)>;

/// A response of Mesh::request().
struct Response {
  std::string body;
  int status = 0;
};

// ---- authorization ------------------------------------------------------------

/// Reading a request's authorization attributes (not owned): what an
/// authorizer gets, valid during its call.
class AuthzView {
 public:
  explicit AuthzView(const mesh_authz_request_t *r) noexcept : r_(r) {}
  std::string principal() const { return mesh_authz_request_principal(r_); }
  std::string ns() const { return mesh_authz_request_namespace(r_); }
  std::string source_ip() const {
    char buf[64];
    return mesh_authz_request_source_ip(r_, buf, sizeof buf) == MESH_OK ? buf
                                                                          : "";
  }
  /// Destination port, -1 when unknown.
  int port() const { return mesh_authz_request_port(r_); }
  /// HTTP method, normalized path and host; empty for a non-HTTP request.
  std::optional<std::string> method() const {
    return opt(mesh_authz_request_method(r_));
  }
  std::optional<std::string> path() const {
    return opt(mesh_authz_request_path(r_));
  }
  std::optional<std::string> host() const {
    return opt(mesh_authz_request_host(r_));
  }
  std::optional<std::string> header(const std::string &name) const {
    return opt(mesh_authz_request_header(r_, name.c_str()));
  }
  const mesh_authz_request_t *get() const noexcept { return r_; }

 protected:
  static std::optional<std::string> opt(const char *s) {
    if (!s)
      return std::nullopt;
    return std::string(s);
  }
  const mesh_authz_request_t *r_;
};

/// The attributes of a request to check with Mesh::authz_check(); chainable
/// setters, readable as an AuthzView.  Move-only.
class AuthzRequest : public AuthzView {
 public:
  AuthzRequest() : AuthzView(mesh_authz_request_new()) {
    if (!r_)
      throw Error(MESH_ERR_NOMEM, "mesh_authz_request_new");
  }
  ~AuthzRequest() { mesh_authz_request_free(own()); }
  AuthzRequest(AuthzRequest &&o) noexcept
      : AuthzView(std::exchange(o.r_, nullptr)) {}
  AuthzRequest &operator=(AuthzRequest &&o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  AuthzRequest(const AuthzRequest &) = delete;
  AuthzRequest &operator=(const AuthzRequest &) = delete;

  /// Peer SPIFFE ID, peer address and local port of a connection.
  AuthzRequest &conn(const ConnRef &c) {
    detail::check(mesh_authz_request_set_conn(own(), c.get()), "conn");
    return *this;
  }
  AuthzRequest &principal(const std::string &spiffe_id) {
    detail::check(mesh_authz_request_set_principal(own(), spiffe_id.c_str()),
                  "principal");
    return *this;
  }
  AuthzRequest &source_ip(const std::string &ip) {
    detail::check(mesh_authz_request_set_source_ip(own(), ip.c_str()),
                  "source_ip " + ip);
    return *this;
  }
  AuthzRequest &port(int p) {
    detail::check(mesh_authz_request_set_port(own(), p), "port");
    return *this;
  }
  /// Make it an HTTP request (target: path and query).
  AuthzRequest &http(const std::string &method, const std::string &target,
                     const std::string &host = "") {
    detail::check(mesh_authz_request_set_http(own(), method.c_str(),
                                              target.c_str(), host.c_str()),
                  "http " + target);
    return *this;
  }
  AuthzRequest &header(const std::string &name, const std::string &value) {
    detail::check(
        mesh_authz_request_add_header(own(), name.c_str(), value.c_str()),
        "header " + name);
    return *this;
  }
  using AuthzView::header;
  using AuthzView::port;
  using AuthzView::principal;
  using AuthzView::source_ip;

 private:
  // The handle we allocated (the view stores it const).
  mesh_authz_request_t *own() const noexcept {
    return const_cast<mesh_authz_request_t *>(r_);
  }
};
using Authorizer = std::function<bool(const AuthzView &, std::string_view)>;

// ---- the context --------------------------------------------------------------

/// A libmesh context (mesh_t).  Move-only.
class Mesh {
 public:
  /// Create from JSON configuration text; throws Error (MESH_ERR_CONFIG
  /// with the JSON path in detail()).
  explicit Mesh(const std::string &json) : keep_(new detail::Keep) {
    mesh_status_t st{};
    detail::check(mesh_new(json.c_str(), &m_, &st), st);
  }
  static Mesh from_file(const std::string &path) {
    mesh_status_t st{};
    mesh_t *m = nullptr;
    detail::check(mesh_new_from_file(path.c_str(), &m, &st), st);
    return Mesh(m);
  }
  ~Mesh() { mesh_free(m_); }  // then keep_: no callback runs any more
  Mesh(Mesh &&other) noexcept
      : m_(std::exchange(other.m_, nullptr)), keep_(std::move(other.keep_)) {}
  Mesh &operator=(Mesh &&other) noexcept {
    if (this != &other) {
      mesh_free(m_);
      m_ = std::exchange(other.m_, nullptr);
      keep_ = std::move(other.keep_);
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
  /// Seconds until this context's SVID expires (negative once expired);
  /// empty with no SVID loaded.
  std::optional<int64_t> svid_expires_in() const {
    int64_t v = mesh_svid_expires_in(live());
    if (v == INT64_MIN)
      return std::nullopt;
    return v;
  }
  /// Re-read the SVID, key and bundle files now; on failure the old
  /// identity stays and the error (with the file name) is thrown.
  void reload_identity() {
    mesh_status_t st{};
    detail::check(mesh_identity_reload(live(), &st), st);
  }
  /// Route log lines at or below level (MESH_LOG_*) to fn (empty:
  /// stderr), called from any thread; exceptions are swallowed.
  void set_log(int level, std::function<void(int, std::string_view)> fn) {
    if (!fn) {
      mesh_set_log(live(), level, nullptr, nullptr);
      return;
    }
    using LogFn = std::function<void(int, std::string_view)>;
    LogFn *f = keep_->add(std::move(fn));
    mesh_set_log(
        live(), level,
        [](int lv, const char *line, void *user) {
          try {
            (*static_cast<LogFn *>(user))(lv, line);
          } catch (...) {
          }
        },
        f);
  }
  /// The admin endpoint's port; empty when it is not configured.
  std::optional<int> admin_port() const {
    int p = mesh_admin_port(live());
    if (p == MESH_ERR_NOT_FOUND)
      return std::nullopt;
    return detail::check(p, "admin port");
  }

  // -- discovery --

  /// The current endpoints of a configured service (never blocks).
  Endpoints endpoints(const std::string &service) const {
    mesh_status_t st{};
    mesh_endpoints_t *e = nullptr;
    detail::check(mesh_endpoints_get(live(), service.c_str(), &e, &st), st);
    std::unique_ptr<mesh_endpoints_t, void (*)(mesh_endpoints_t *)> hold(
        e, mesh_endpoints_free);
    return Endpoints::from(e);
  }
  /// Wait at most timeout_ms for the service's first discovery answer
  /// (throws MESH_ERR_TIMEOUT, or MESH_ERR_DISCOVERY if it was an error).
  void wait_discovery(const std::string &service, int timeout_ms) const {
    mesh_status_t st{};
    detail::check(
        mesh_discovery_wait(live(), service.c_str(), timeout_ms, &st), st);
  }
  /// Call fn(service, endpoints) on each change of the service's endpoints
  /// (and once now if it has a set), on the library's worker thread.
  Watch watch(const std::string &service, WatchFn fn) {
    WatchFn *f = keep_->add(std::move(fn));
    mesh_status_t st{};
    int id = mesh_discovery_watch(
        live(), service.c_str(),
        [](const char *svc, const mesh_endpoints_t *eps, void *user) {
          try {
            (*static_cast<WatchFn *>(user))(svc, Endpoints::from(eps));
          } catch (...) {  // never unwind into the worker
          }
        },
        f, &st);
    detail::check(id, st);
    return Watch(m_, id);
  }

  // -- the call API --

  /// Begin one try of a call: pick an endpoint, get a pooled or new
  /// connection.  Speak over call.conn(), then call.end(outcome, status).
  Call call(const std::string &service) { return call(service, nullptr); }
  Call call(const std::string &service, const CallOptions &opts) {
    return call(service, opts.get());
  }

  /// Run fn under the service's retry policy (backoff, budget, per-try
  /// timeout, deadline); each try gets its own CallRef.  fn returns how
  /// the try went, or throws: a mesh::Error of the connection (reset,
  /// closed, TLS, I/O, timeout) counts as that outcome and may be
  /// retried; any other exception stops the call and is rethrown here.
  /// Throws Error on failure (MESH_ERR_UPSTREAM: an error status after
  /// retries).
  void call_do(const std::string &service, TryFn fn) {
    call_do(service, std::move(fn), nullptr);
  }
  void call_do(const std::string &service, TryFn fn,
               const CallOptions &opts) {
    call_do(service, std::move(fn), opts.get());
  }

  /// Send req and read the response until frame says it is complete, with
  /// retries and, if the service configures it, hedging.  Throws Error
  /// (MESH_ERR_UPSTREAM for a final error status).
  Response request(const std::string &service, std::string_view req,
                   FrameFn frame, size_t max_response = 1u << 20) {
    return request(service, req, std::move(frame), nullptr, max_response);
  }
  Response request(const std::string &service, std::string_view req,
                   FrameFn frame, const CallOptions &opts,
                   size_t max_response = 1u << 20) {
    return request(service, req, std::move(frame), opts.get(), max_response);
  }

  // -- tracing --

  /// Call on_start / on_end (either may be empty; both empty removes
  /// them) when a sampled span starts / ends, on the thread that starts or
  /// ends it.  Must be thread-safe; exceptions are swallowed.
  void set_span_hooks(SpanHook on_start, SpanHook on_end = nullptr) {
    struct Hooks {
      SpanHook start, end;
    };
    bool any = on_start || on_end;
    Hooks *h = any ? keep_->add(Hooks{std::move(on_start), std::move(on_end)})
                   : nullptr;
    mesh_span_hook start = nullptr, end = nullptr;
    if (h && h->start)
      start = [](const mesh_span_t *sp, void *user) {
        auto *hs = static_cast<Hooks *>(user);
        try {
          hs->start(Span::from(sp));
        } catch (...) {
        }
      };
    if (h && h->end)
      end = [](const mesh_span_t *sp, void *user) {
        auto *hs = static_cast<Hooks *>(user);
        try {
          hs->end(Span::from(sp));
        } catch (...) {
        }
      };
    detail::check(mesh_set_span_hooks(live(), start, end, h), "span hooks");
  }
  /// The formats configured in tracing.propagation (MESH_PROPAGATE_*).
  unsigned trace_formats() const { return mesh_trace_formats(live()); }

  // -- authorization --

  /// Check a request against the current policies; throws Error
  /// MESH_ERR_DENIED (policy and reason in detail()) when denied.
  void authz_check(const AuthzRequest &r) const {
    mesh_status_t st{};
    detail::check(mesh_authz_check(live(), r.get(), &st), st);
  }
  /// Replace the policies (the text of an "authz" section); on any error
  /// (MESH_ERR_CONFIG with its path) nothing changes.
  void authz_reload(const std::string &json) {
    mesh_status_t st{};
    detail::check(mesh_authz_reload(live(), json.c_str(), &st), st);
  }
  /// A decision counter ("allow", "deny", "conn_deny", "custom_deny", ...).
  uint64_t authz_counter(const std::string &name) const {
    uint64_t v = 0;
    detail::check(mesh_authz_counter(live(), name.c_str(), &v), name);
    return v;
  }
  /// Decide CUSTOM policies with "provider": "callback" (empty: remove;
  /// such policies then deny).  Runs on the checking thread, possibly
  /// several at once; an exception denies.
  void set_authorizer(Authorizer fn) {
    if (!fn) {
      detail::check(mesh_authz_set_callback(live(), nullptr, nullptr),
                    "authorizer");
      return;
    }
    Authorizer *f = keep_->add(std::move(fn));
    detail::check(
        mesh_authz_set_callback(
            live(),
            [](const mesh_authz_request_t *req, const char *policy,
               void *user) {
              try {
                return (*static_cast<Authorizer *>(user))(AuthzView(req),
                                                          policy)
                           ? MESH_AUTHZ_ALLOW
                           : MESH_AUTHZ_DENY;
              } catch (...) {
                return MESH_AUTHZ_DENY;  // fail closed
              }
            },
            f),
        "authorizer");
  }

  // -- metrics --

  /// Every metric in the Prometheus text format.
  std::string metrics_text() const {
    size_t need = 0;
    std::string buf(65536, '\0');
    for (int i = 0; i < 8; i++) {  // the set may grow between calls
      int n = mesh_metrics_text(live(), buf.data(), buf.size(), &need);
      if (n != MESH_ERR_BUFFER) {
        detail::check(n, "metrics");
        buf.resize(static_cast<size_t>(n));
        return buf;
      }
      buf.assign(need > 2 * buf.size() ? need : 2 * buf.size(), '\0');
    }
    throw Error(MESH_ERR_BUFFER, "metrics text keeps growing");
  }

 private:
  explicit Mesh(mesh_t *m) : m_(m), keep_(new detail::Keep) {}
  mesh_t *live() const {
    if (!m_)
      throw Error(MESH_ERR_CLOSED, "mesh is moved from");
    return m_;
  }
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
  Call call(const std::string &service, const mesh_call_opts_t *o) {
    mesh_status_t st{};
    mesh_call_t *c = nullptr;
    detail::check(mesh_call_begin(live(), service.c_str(), o, &c, &st), st);
    return Call(c);
  }
  static bool conn_error(int code) {
    return code == MESH_ERR_RESET || code == MESH_ERR_PEER_CLOSED ||
           code == MESH_ERR_CLOSED || code == MESH_ERR_TLS ||
           code == MESH_ERR_IO || code == MESH_ERR_TIMEOUT;
  }
  void call_do(const std::string &service, TryFn fn,
               const mesh_call_opts_t *o) {
    struct Run {
      TryFn fn;
      std::exception_ptr err;
    } run{std::move(fn), nullptr};
    mesh_status_t st{};
    int rc = mesh_call_do(
        live(), service.c_str(), o,
        [](mesh_call_t *call, mesh_conn_t *, int *status, void *user) {
          auto *r = static_cast<Run *>(user);
          try {
            CallRef ref(call);
            TryResult res = r->fn(ref);
            *status = res.status;
            return static_cast<int>(res.outcome);
          } catch (const Error &e) {
            if (conn_error(e.code()))
              return e.code();
            r->err = std::current_exception();
          } catch (...) {
            r->err = std::current_exception();
          }
          return static_cast<int>(MESH_ERR_INTERNAL);  // stop, no retry
        },
        &run, &st);
    if (run.err)
      std::rethrow_exception(run.err);
    detail::check(rc, st);
  }
  Response request(const std::string &service, std::string_view req,
                   FrameFn frame, const mesh_call_opts_t *o,
                   size_t max_response) {
    struct Run {
      FrameFn fn;
      std::exception_ptr err;
    } run{std::move(frame), nullptr};
    Response resp;
    std::string buf(max_response, '\0');
    size_t n = 0;
    mesh_status_t st{};
    int rc = mesh_call_request(
        live(), service.c_str(), o, req.data(), req.size(),
        [](const void *data, size_t len, int *status, void *user) -> long {
          auto *r = static_cast<Run *>(user);
          if (r->err)
            return -1;
          try {
            return r->fn(std::string_view(static_cast<const char *>(data), len),
                         *status);
          } catch (...) {
            r->err = std::current_exception();
            return -1;
          }
        },
        &run, buf.data(), buf.size(), &n, &resp.status, &st);
    if (run.err)
      std::rethrow_exception(run.err);
    detail::check(rc, st);
    buf.resize(n);
    resp.body = std::move(buf);
    return resp;
  }
  mesh_t *m_ = nullptr;
  std::unique_ptr<detail::Keep> keep_;
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

/// Runtime library version, e.g. "0.1.0".
inline std::string version() { return mesh_version(); }

/// SPIFFE IDs (no I/O).
namespace spiffe {
/// Throws MESH_ERR_SPIFFE_ID with the reason when id is not valid.
inline void validate(const std::string &id) {
  mesh_status_t st{};
  detail::check(mesh_spiffe_id_validate(id.c_str(), &st), st);
}
/// Trust domain and path ("" or "/a/b") of a valid ID.
inline std::pair<std::string, std::string> parse(const std::string &id) {
  std::string td(MESH_TRUST_DOMAIN_MAX + 1, '\0'),
      path(MESH_SPIFFE_ID_MAX + 1, '\0');
  mesh_status_t st{};
  detail::check(mesh_spiffe_id_parse(id.c_str(), td.data(), td.size(),
                                     path.data(), path.size(), &st),
                st);
  td.resize(td.find('\0'));
  path.resize(path.find('\0'));
  return {td, path};
}
/// Does id match pattern ("*", exact, "td/prefix*", "spiffe://td", ...)?
inline bool match(const std::string &pattern, const std::string &id) {
  return mesh_spiffe_match(pattern.c_str(), id.c_str()) == 1;
}
}  // namespace spiffe

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
