/* SPDX-License-Identifier: Apache-2.0 */
/* The "tls" and "inbound" config sections: validation, defaults, and the
 * tls part's state (m->tls).  Defaults follow Envoy where it defines one;
 * docs/config/tls.md lists each with its reason. */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defaults (see docs/config/tls.md). */
#define DEF_CONNECT_TIMEOUT_MS 5000    /* Envoy cluster connect_timeout */
#define DEF_HANDSHAKE_TIMEOUT_MS 10000 /* bounds a stalled peer */
#define DEF_TICKET_LIFETIME_S 7200     /* BoringSSL/Envoy session timeout */
#define DEF_SESSION_CACHE 64
#define DEF_LISTEN "127.0.0.1:0"

static const char *const versions[] = {"1.2", "1.3", NULL};
static const char *const modes[] = {"STRICT", "PERMISSIVE", NULL};

/* Parsed values; strings are borrowed from the cJSON tree. */
typedef struct tls_parsed {
  mesh__tls_settings_t set;       /* alpn unused here */
  const char *alpn[MESH__ALPN_MAX + 1];
} tls_parsed_t;

static int to_int(int64_t v) { return (int)v; }

static void parse_alpn(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                       tls_parsed_t *p) {
  const cJSON *arr;
  if (!mesh__cfg_strings(c, cfg, path, "alpn", &arr) || !arr)
    return;
  char ap[MESH__PATH_MAX];
  mesh__cfg_path(ap, path, "alpn");
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    size_t len = strlen(it->valuestring);
    if (len == 0 || len > 255) {
      char q[MESH__PATH_MAX + 16];
      snprintf(q, sizeof q, "%s[%d]", ap, i);
      mesh__cfg_error(c, q, "protocol name must be 1-255 bytes");
    } else if (p->set.nalpn >= MESH__ALPN_MAX) {
      mesh__cfg_error(c, ap, "at most %d protocols", MESH__ALPN_MAX);
      break;
    } else {
      p->alpn[p->set.nalpn++] = it->valuestring;
    }
    i++;
  }
}

/* "min_version" / "max_version": "1.3" needs a backend with TLS 1.3. */
static int parse_one_version(mesh__cfg_t *c, const cJSON *cfg,
                             const char *path, const char *key, int def) {
  int v = def;
  if (!mesh__cfg_enum(c, cfg, path, key, versions, def, &v))
    return def;
  if (v == 1 && !mesh__tls_be.has_tls13()) {
    char q[MESH__PATH_MAX];
    mesh__cfg_path(q, path, key);
    mesh__cfg_error(c, q,
                    "\"1.3\" needs a TLS backend with TLS 1.3 (mbedTLS 3.6 "
                    "or OpenSSL 3; this build has %s, TLS 1.2 only)",
                    mesh__tls_be.lib_version());
    return def;
  }
  return v;
}

static void parse_version(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                          tls_parsed_t *p) {
  int top = mesh__tls_be.has_tls13() ? 1 : 0;
  int lo = parse_one_version(c, cfg, path, "min_version", 0);
  int hi = parse_one_version(c, cfg, path, "max_version", top);
  if (lo > hi) {
    char q[MESH__PATH_MAX];
    mesh__cfg_path(q, path, "max_version");
    mesh__cfg_error(c, q, "is below min_version");
    hi = lo;
  }
  p->set.min_version = lo == 1 ? MESH__TLS_V13 : MESH__TLS_V12;
  p->set.max_version = hi == 1 ? MESH__TLS_V13 : MESH__TLS_V12;
}

static void parse_tls(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                      tls_parsed_t *p) {
  static const char *const keys[] = {
      "min_version",        "max_version",        "alpn",
      "session_resumption", "ticket_lifetime_s",
      "session_cache_size", "connect_timeout_ms",
      "handshake_timeout_ms", "read_timeout_ms",
      "write_timeout_ms",   NULL};
  memset(p, 0, sizeof *p);
  p->set.min_version = MESH__TLS_V12;
  p->set.max_version = mesh__tls_be.has_tls13() ? MESH__TLS_V13 : MESH__TLS_V12;
  p->set.resumption = true;
  p->set.ticket_lifetime_s = DEF_TICKET_LIFETIME_S;
  p->set.session_cache_size = DEF_SESSION_CACHE;
  p->set.connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
  p->set.handshake_timeout_ms = DEF_HANDSHAKE_TIMEOUT_MS;
  p->set.read_timeout_ms = -1;
  p->set.write_timeout_ms = -1;
  if (!cfg || !mesh__cfg_object(c, cfg, path, keys))
    return;
  parse_version(c, cfg, path, p);
  parse_alpn(c, cfg, path, p);
  mesh__cfg_bool(c, cfg, path, "session_resumption", true,
                 &p->set.resumption);
  int64_t v;
  mesh__cfg_int(c, cfg, path, "ticket_lifetime_s", 1, 7 * 86400,
                DEF_TICKET_LIFETIME_S, &v);
  p->set.ticket_lifetime_s = to_int(v);
  mesh__cfg_int(c, cfg, path, "session_cache_size", 0, 65536,
                DEF_SESSION_CACHE, &v);
  p->set.session_cache_size = to_int(v);
  mesh__cfg_int(c, cfg, path, "connect_timeout_ms", 1, 3600000,
                DEF_CONNECT_TIMEOUT_MS, &v);
  p->set.connect_timeout_ms = to_int(v);
  mesh__cfg_int(c, cfg, path, "handshake_timeout_ms", 1, 3600000,
                DEF_HANDSHAKE_TIMEOUT_MS, &v);
  p->set.handshake_timeout_ms = to_int(v);
  mesh__cfg_int(c, cfg, path, "read_timeout_ms", -1, 86400000, -1, &v);
  p->set.read_timeout_ms = to_int(v == 0 ? -1 : v);
  mesh__cfg_int(c, cfg, path, "write_timeout_ms", -1, 86400000, -1, &v);
  p->set.write_timeout_ms = to_int(v == 0 ? -1 : v);
}

static void tls_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  tls_parsed_t p;
  parse_tls(c, cfg, path, &p);
}

/* SSLKEYLOGFILE: off unless the environment names a file; loud when on,
 * since whoever reads the file can decrypt every connection. */
static void keylog_open(mesh_t *m, mesh__tls_t *t) {
  t->keylog_fd = -1;
  pthread_mutex_init(&t->keylog_mu, NULL);
  const char *path = getenv("SSLKEYLOGFILE");
  if (!path || !*path)
    return;
  t->keylog_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (t->keylog_fd < 0) {
    mesh__log(m, MESH_LOG_WARN, "tls_keylog_failed",
              "SSLKEYLOGFILE=%s cannot be opened: %s", path, strerror(errno));
    return;
  }
  mesh__log(m, MESH_LOG_WARN, "tls_keylog",
            "SSLKEYLOGFILE=%s: TLS session secrets of every connection are "
            "written there; anyone who can read it can decrypt this "
            "process's traffic (debugging only)",
            path);
}

void mesh__tls_keylog_line(mesh__tls_t *t, const char *line) {
  if (!t || t->keylog_fd < 0)
    return;
  char buf[512];
  int n = snprintf(buf, sizeof buf, "%s\n", line);
  if (n <= 0 || (size_t)n >= sizeof buf)
    return;
  pthread_mutex_lock(&t->keylog_mu);
  if (write(t->keylog_fd, buf, (size_t)n) != n) {
    /* best effort: a debugging aid */
  }
  pthread_mutex_unlock(&t->keylog_mu);
}

void mesh__tls_keylog(mesh__tls_t *t, const char *label,
                      const unsigned char *client_random, size_t crlen,
                      const unsigned char *secret, size_t slen) {
  char line[400];
  size_t o = (size_t)snprintf(line, sizeof line, "%s ", label);
  for (size_t i = 0; i < crlen && o + 3 < sizeof line; i++)
    o += (size_t)snprintf(line + o, sizeof line - o, "%02x", client_random[i]);
  if (o + 2 < sizeof line)
    line[o++] = ' ';
  for (size_t i = 0; i < slen && o + 3 < sizeof line; i++)
    o += (size_t)snprintf(line + o, sizeof line - o, "%02x", secret[i]);
  line[o < sizeof line ? o : sizeof line - 1] = '\0';
  mesh__tls_keylog_line(t, line);
}

static void tls_fini(mesh_t *m) {
  mesh__tls_t *t = m->tls;
  if (!t)
    return;
  if (t->keylog_fd >= 0)
    close(t->keylog_fd);
  pthread_mutex_destroy(&t->keylog_mu);
  mesh__tlsgen_release(t->gen);
  mesh__sesscache_fini(&t->cache);
  mesh__tls_obs_fini(t);
  mesh__tls_be.fini(t);
  pthread_mutex_destroy(&t->mu);
  mesh__tls_svcc_fini(t);
  pthread_mutex_destroy(&t->svcc_mu);
  for (size_t i = 0; i < t->set.nalpn; i++)
    free(t->set.alpn[i]);
  free(t->in.listen);
  for (size_t i = 0; i < t->in.npeers; i++)
    free(t->in.peers[i]);
  free(t->in.peers);
  free(t);
  m->tls = NULL;
}

static int tls_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  mesh__cfg_t c = {.first = st};
  tls_parsed_t p;
  parse_tls(&c, cfg, "tls", &p);
  if (c.nerr)
    return MESH_ERR_CONFIG;
  mesh__tls_t *t = calloc(1, sizeof *t);
  if (!t)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  t->set = p.set;
  t->set.nalpn = 0;
  pthread_mutex_init(&t->mu, NULL);
  pthread_mutex_init(&t->svcc_mu, NULL);
  m->tls = t;
  keylog_open(m, t);
  int brc = mesh__tls_be.init(t, st);
  if (brc != MESH_OK)
    return brc;
  for (size_t i = 0; i < p.set.nalpn; i++) {
    t->set.alpn[i] = strdup(p.alpn[i]);
    if (!t->set.alpn[i])
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    t->set.nalpn++;
  }
  size_t ncache = t->set.resumption ? (size_t)t->set.session_cache_size : 0;
  int rc = mesh__sesscache_init(&t->cache, ncache,
                                (int64_t)t->set.ticket_lifetime_s * 1000);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "out of memory");
  if (mesh__tls_obs_init(m, t) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  /* inbound defaults, replaced by the inbound part when configured */
  t->in.mode = MESH__INBOUND_STRICT;
  t->in.listen = strdup(DEF_LISTEN);
  if (!t->in.listen)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return MESH_OK;
}

const mesh__part_t mesh__tls_part = {
    .key = "tls",
    .check = tls_check,
    .init = tls_init,
    .fini = tls_fini,
};

/* ---- "inbound" ------------------------------------------------------------ */

typedef struct in_parsed {
  const char *listen;
  int mode;
  const cJSON *peers;
} in_parsed_t;

static void parse_inbound(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                          in_parsed_t *p) {
  static const char *const keys[] = {"listen", "mode", "peers", NULL};
  p->listen = DEF_LISTEN;
  p->mode = MESH__INBOUND_STRICT;
  p->peers = NULL;
  if (!cfg || !mesh__cfg_object(c, cfg, path, keys))
    return;
  char q[MESH__PATH_MAX];
  if (mesh__cfg_string(c, cfg, path, "listen", DEF_LISTEN, &p->listen) &&
      !mesh__sock_addr_syntax(p->listen)) {
    mesh__cfg_path(q, path, "listen");
    mesh__cfg_error(c, q,
                    "\"%s\" is not \"host:port\" or \"[v6]:port\" (port "
                    "0-65535)",
                    p->listen);
    p->listen = DEF_LISTEN;
  }
  mesh__cfg_enum(c, cfg, path, "mode", modes, MESH__INBOUND_STRICT, &p->mode);
  if (mesh__cfg_strings(c, cfg, path, "peers", &p->peers) && p->peers &&
      cJSON_GetArraySize(p->peers) == 0) {
    mesh__cfg_path(q, path, "peers");
    mesh__cfg_error(c, q, "must list at least one pattern (\"*\" for any)");
  }
}

static void inbound_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  in_parsed_t p;
  parse_inbound(c, cfg, path, &p);
}

static int inbound_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  mesh__cfg_t c = {.first = st};
  in_parsed_t p;
  parse_inbound(&c, cfg, "inbound", &p);
  if (c.nerr)
    return MESH_ERR_CONFIG;
  mesh__tls_t *t = m->tls;
  if (!t)
    return mesh__fail(st, MESH_ERR_INTERNAL, "inbound: tls part missing");
  char *listen = strdup(p.listen);
  if (!listen)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  free(t->in.listen);
  t->in.listen = listen;
  t->in.mode = p.mode;
  size_t n = p.peers ? (size_t)cJSON_GetArraySize(p.peers) : 1;
  t->in.peers = calloc(n, sizeof *t->in.peers);
  if (!t->in.peers)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (!p.peers) {
    t->in.peers[0] = strdup("*");
    t->in.npeers = t->in.peers[0] ? 1 : 0;
  } else {
    const cJSON *it;
    cJSON_ArrayForEach(it, p.peers) {
      char *s = strdup(it->valuestring);
      if (!s)
        break;
      t->in.peers[t->in.npeers++] = s;
    }
  }
  if (t->in.npeers != n)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return MESH_OK;
}

/* The inbound part runs after the tls part, whose fini frees its state. */
const mesh__part_t mesh__inbound_part = {
    .key = "inbound",
    .check = inbound_check,
    .init = inbound_init,
    .fini = NULL,
};
