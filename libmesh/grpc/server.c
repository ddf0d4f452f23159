/* SPDX-License-Identifier: Apache-2.0 */
/* The gRPC server: handlers by full method name, one thread per call (the
 * call threads of http/h2_workers.c, shared with mesh_http_serve over
 * HTTP/2), one per connection.  Every call is authorized first (method
 * POST, path "/pkg.Service/Method", as Istio applies AuthorizationPolicy
 * to gRPC). */
#include "grpc/grpc_srv.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tls/tls.h"

typedef struct method_ent {
  char *path;
  mesh_grpc_handler_fn fn;
  void *user;
} method_ent_t;

struct mesh_grpc_server {
  mesh_t *m;
  method_ent_t *v;
  size_t n;
  size_t max_recv;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic bool stopping;
  int threads;                 /* live connection and call threads */
  mesh__h2_session_t **sess;   /* sessions being served (for drain) */
  size_t nsess, capsess;
};

int mesh_grpc_server_new(mesh_t *m, mesh_grpc_server_t **out,
                         mesh_status_t *st) {
  if (!m || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "grpc server: NULL argument");
  mesh_grpc_server_t *s = calloc(1, sizeof *s);
  if (!s)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->m = m;
  s->max_recv = MESH__GRPC_MAX_MSG_DEFAULT;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  *out = s;
  return MESH_OK;
}

int mesh_grpc_server_add_method(mesh_grpc_server_t *srv, const char *method,
                                mesh_grpc_handler_fn fn, void *user,
                                mesh_status_t *st) {
  const char *a, *b;
  size_t al, bl;
  if (!srv || !fn ||
      mesh__grpc_path_split(method, &a, &al, &b, &bl) != MESH_OK)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "grpc server: method must be \"/pkg.Service/Method\" "
                      "with a handler");
  for (size_t i = 0; i < srv->n; i++)
    if (!strcmp(srv->v[i].path, method))
      return mesh__fail(st, MESH_ERR_INVALID_ARG,
                        "grpc server: %s is already registered", method);
  method_ent_t *v = realloc(srv->v, (srv->n + 1) * sizeof *v);
  if (!v)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  srv->v = v;
  char *p = strdup(method);
  if (!p)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  srv->v[srv->n++] = (method_ent_t){p, fn, user};
  return MESH_OK;
}

int mesh_grpc_server_set_max_recv(mesh_grpc_server_t *srv, size_t bytes) {
  if (!srv || bytes == 0 || bytes > ((size_t)1 << 31))
    return MESH_ERR_INVALID_ARG;
  srv->max_recv = bytes;
  return MESH_OK;
}

static bool find_method(void *p, const char *path, mesh_grpc_handler_fn *fn,
                        void **user) {
  const mesh_grpc_server_t *srv = p;
  for (size_t i = 0; path && i < srv->n; i++)
    if (!strcmp(srv->v[i].path, path)) {
      *fn = srv->v[i].fn;
      *user = srv->v[i].user;
      return true;
    }
  return false;
}

/* ---- threads ------------------------------------------------------------------ */

static void thread_done(mesh_grpc_server_t *srv) {
  pthread_mutex_lock(&srv->mu);
  srv->threads--;
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
}

/* Start a detached thread counted in srv->threads. */
static int spawn(mesh_grpc_server_t *srv, void *(*fn)(void *), void *arg) {
  pthread_mutex_lock(&srv->mu);
  srv->threads++;
  pthread_mutex_unlock(&srv->mu);
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int e = pthread_create(&t, &at, fn, arg);
  pthread_attr_destroy(&at);
  if (e != 0) {
    thread_done(srv);
    return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

/* ---- one connection -------------------------------------------------------------- */

typedef struct conn_ctx {
  mesh_grpc_server_t *srv;
  mesh__h2_session_t *s;
  mesh__grpc_peer_t peer;
  mesh__h2_workers_t w;        /* the call threads (http/h2_workers.c) */
} conn_ctx_t;

static void call_worker(void *arg, mesh__h2_stream_t *x) {
  conn_ctx_t *cc = arg;
  mesh__grpc_srv_handle(cc->srv->m, x, &cc->peer, cc->srv->max_recv,
                        find_method, cc->srv);
}

static void track(mesh_grpc_server_t *srv, mesh__h2_session_t *s, bool add) {
  pthread_mutex_lock(&srv->mu);
  if (add && srv->nsess == srv->capsess) {
    size_t cap = srv->capsess ? srv->capsess * 2 : 8;
    mesh__h2_session_t **v = realloc(srv->sess, cap * sizeof *v);
    if (v) {
      srv->sess = v;
      srv->capsess = cap;
    }
  }
  if (add && srv->nsess < srv->capsess)
    srv->sess[srv->nsess++] = s;
  for (size_t i = 0; !add && i < srv->nsess; i++)
    if (srv->sess[i] == s)
      srv->sess[i] = srv->sess[--srv->nsess];
  bool drain = add && atomic_load(&srv->stopping);
  pthread_mutex_unlock(&srv->mu);
  if (drain)
    mesh__h2_session_drain(s);
}

/* Accept streams until the peer is done; each call on its own thread, at
 * most max_concurrent_streams at once (the limit we advertise). */
static int accept_loop(conn_ctx_t *cc, mesh_status_t *st) {
  int rc;
  for (;;) {
    mesh__h2_stream_t *x = NULL;
    rc = mesh__h2_workers_accept(&cc->w, mesh__now_ms() + 500, &x, st);
    if (rc == MESH_ERR_TIMEOUT)
      continue; /* drive the session; shutdown drains it (track) */
    if (rc != MESH_OK)
      break;
    mesh__h2_workers_spawn(&cc->w, x, call_worker, cc);
  }
  return rc == MESH_ERR_PEER_CLOSED ? MESH_OK : rc;
}

int mesh_grpc_server_serve_conn(mesh_grpc_server_t *srv, mesh_conn_t *c,
                                mesh_status_t *st) {
  mesh__ok(st);
  if (!srv || !c) {
    mesh_conn_close(c);
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "grpc server: NULL argument");
  }
  const char *alpn = mesh_conn_alpn(c);
  if (mesh_conn_is_tls(c) && !mesh__alpn_is_h2(alpn)) {
    mesh_conn_close(c);
    return mesh__fail(st, MESH_ERR_UNSUPPORTED,
                      "grpc server: the peer negotiated ALPN \"%s\", not h2 "
                      "(add \"h2\" to tls.alpn)",
                      alpn);
  }
  conn_ctx_t cc;
  memset(&cc, 0, sizeof cc);
  cc.srv = srv;
  mesh__grpc_peer_from_conn(&cc.peer, c);
  const mesh__h2_settings_t *set = &mesh__http_settings(srv->m)->h2;
  int rc = mesh__h2_session_new_conn(srv->m, c, true, set, &cc.s, st);
  if (rc == MESH_OK) {
    mesh__h2_workers_init(&cc.w, cc.s, set->max_concurrent_streams);
    track(srv, cc.s, true);
    rc = accept_loop(&cc, st);
    mesh__h2_workers_wait(&cc.w);
    mesh__h2_workers_destroy(&cc.w);
    track(srv, cc.s, false);
    mesh__h2_session_free(cc.s);
  }
  return rc;
}

typedef struct conn_arg {
  mesh_grpc_server_t *srv;
  mesh_conn_t *c;
} conn_arg_t;

static void *conn_thread(void *p) {
  conn_arg_t *a = p;
  mesh_status_t st;
  int rc = mesh_grpc_server_serve_conn(a->srv, a->c, &st);
  if (rc != MESH_OK)
    mesh__log(a->srv->m, MESH_LOG_DEBUG, "grpc_conn_end", "code=%s msg=\"%s\"",
              mesh_code_name(rc), st.message);
  mesh_grpc_server_t *srv = a->srv;
  free(a);
  thread_done(srv);
  return NULL;
}

int mesh_grpc_server_serve(mesh_grpc_server_t *srv, mesh_listener_t *l,
                           mesh_status_t *st) {
  mesh__ok(st);
  if (!srv || !l)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "grpc server: NULL argument");
  while (!atomic_load(&srv->stopping)) {
    mesh_conn_t *c = NULL;
    mesh_status_t ast;
    int rc = mesh_accept(l, 200, &c, &ast);
    if (rc == MESH_ERR_TIMEOUT)
      continue;
    if (rc == MESH_ERR_CLOSED || rc == MESH_ERR_INVALID_ARG)
      return mesh__fail(st, rc, "grpc server: accept: %s", ast.message);
    if (rc != MESH_OK) {
      mesh__log(srv->m, MESH_LOG_INFO, "grpc_accept_failed",
                "code=%s msg=\"%s\"", mesh_code_name(rc), ast.message);
      continue;
    }
    conn_arg_t *a = malloc(sizeof *a);
    if (a)
      *a = (conn_arg_t){srv, c};
    if (!a || spawn(srv, conn_thread, a) != MESH_OK) {
      mesh_conn_close(c);
      free(a);
    }
  }
  return MESH_OK;
}

void mesh_grpc_server_shutdown(mesh_grpc_server_t *srv) {
  if (!srv)
    return;
  atomic_store(&srv->stopping, true);
  pthread_mutex_lock(&srv->mu);
  size_t n = srv->nsess;
  mesh__h2_session_t **v = n ? malloc(n * sizeof *v) : NULL;
  if (v)
    memcpy(v, srv->sess, n * sizeof *v);
  pthread_mutex_unlock(&srv->mu);
  /* Drained outside the lock; a session leaving meanwhile is still alive:
   * serve_conn untracks it before freeing it, under srv->mu, and we hold
   * no reference... so drain only while tracked. */
  for (size_t i = 0; v && i < n; i++) {
    pthread_mutex_lock(&srv->mu);
    bool live = false;
    for (size_t k = 0; k < srv->nsess; k++)
      live = live || srv->sess[k] == v[i];
    if (live)
      mesh__h2_session_drain(v[i]);
    pthread_mutex_unlock(&srv->mu);
  }
  free(v);
}

void mesh_grpc_server_free(mesh_grpc_server_t *srv) {
  if (!srv)
    return;
  mesh_grpc_server_shutdown(srv);
  pthread_mutex_lock(&srv->mu);
  while (srv->threads > 0)
    pthread_cond_wait(&srv->cv, &srv->mu);
  pthread_mutex_unlock(&srv->mu);
  for (size_t i = 0; i < srv->n; i++)
    free(srv->v[i].path);
  free(srv->v);
  free(srv->sess);
  pthread_cond_destroy(&srv->cv);
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}
