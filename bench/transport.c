/* SPDX-License-Identifier: Apache-2.0 */
/* Benchmark transports; see transport.h. */
#include "transport.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "baretls.h"
#include <mesh/mesh.h>

/* The call's `reused` flag (did it get a pooled connection?) is internal;
 * the benchmark reads it to count pooled calls exactly. */
#include "resilience/call.h"

enum { M_TCP, M_TLS, M_MESH };

struct bt_ctx {
  int mode;
  bt_opts_t o;
  baretls_conf_t cli, srv; /* tls mode */
  int have_cli, have_srv;
  mesh_t *mesh;            /* mesh mode */
  _Atomic long calls, reused; /* mesh mode client: calls, pooled ones */
  pthread_mutex_t mu;
  mbedtls_ssl_session session; /* tls mode: resumption across connects */
};

struct bt_conn {
  bt_ctx_t *c;
  int fd;
  baretls_t tls;
  mesh_conn_t *mc;
  int resumed;
};

int64_t bt_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int split_hostport(const char *hp, char *host, size_t hl, char *port,
                          size_t pl) {
  const char *colon = strrchr(hp, ':');
  if (!colon)
    return -1;
  size_t n = (size_t)(colon - hp);
  if (hp[0] == '[' && n >= 2) {
    hp++;
    n -= 2;
  }
  if (n >= hl)
    return -1;
  memcpy(host, hp, n);
  host[n] = '\0';
  snprintf(port, pl, "%s", colon + 1);
  return 0;
}

static int tcp_open(const char *hostport, int listen_) {
  char host[256], port[16];
  if (split_hostport(hostport, host, sizeof host, port, sizeof port) != 0)
    return -1;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
  struct addrinfo *ai;
  if (getaddrinfo(host, port, &hints, &ai) != 0)
    return -1;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  int ok;
  if (listen_) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ok = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0;
  } else {
    ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  freeaddrinfo(ai);
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

int bt_tcp_connect(const char *hostport) { return tcp_open(hostport, 0); }
int bt_tcp_listen(const char *hostport) { return tcp_open(hostport, 1); }

int bt_ctx_new(const bt_opts_t *o, bt_ctx_t **out) {
  bt_ctx_t *c = calloc(1, sizeof *c);
  if (!c)
    return -1;
  c->o = *o;
  pthread_mutex_init(&c->mu, NULL);
  mbedtls_ssl_session_init(&c->session);
  if (strcmp(o->mode, "tcp") == 0) {
    c->mode = M_TCP;
  } else if (strcmp(o->mode, "tls") == 0) {
    c->mode = M_TLS;
  } else if (strcmp(o->mode, "mesh") == 0) {
    c->mode = M_MESH;
    mesh_status_t st;
    if (mesh_new_from_file(o->config, &c->mesh, &st) != MESH_OK) {
      fprintf(stderr, "mesh_new: %s\n", st.message);
      free(c);
      return -1;
    }
  } else {
    fprintf(stderr, "unknown mode %s\n", o->mode);
    free(c);
    return -1;
  }
  *out = c;
  return 0;
}

void bt_ctx_free(bt_ctx_t *c) {
  if (!c)
    return;
  if (c->have_cli)
    baretls_conf_free(&c->cli);
  if (c->have_srv)
    baretls_conf_free(&c->srv);
  mbedtls_ssl_session_free(&c->session);
  mesh_free(c->mesh);
  free(c);
}

int bt_connect(bt_ctx_t *c, bt_conn_t **out) {
  bt_conn_t *k = calloc(1, sizeof *k);
  if (!k)
    return -1;
  k->c = c;
  k->fd = -1;
  if (c->mode == M_MESH) {
    /* Nothing to open: every request is a call that picks an endpoint and
     * takes a pooled connection (or dials one). */
    *out = k;
    return 0;
  }
  k->fd = bt_tcp_connect(c->o.target);
  if (k->fd < 0) {
    fprintf(stderr, "connect %s: %s\n", c->o.target, strerror(errno));
    free(k);
    return -1;
  }
  if (c->mode == M_TLS) {
    pthread_mutex_lock(&c->mu);
    if (!c->have_cli) {
      if (baretls_conf_init(&c->cli, 0, c->o.ca, c->o.cert, c->o.key) != 0) {
        pthread_mutex_unlock(&c->mu);
        close(k->fd);
        free(k);
        return -1;
      }
      c->have_cli = 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (baretls_open(&k->tls, &c->cli, k->fd, NULL) != 0) {
      free(k);
      return -1;
    }
  }
  *out = k;
  return 0;
}

int bt_write(bt_conn_t *k, const void *buf, size_t len) {
  switch (k->c->mode) {
  case M_MESH:
    return mesh_conn_write_all(k->mc, buf, len) == MESH_OK ? 0 : -1;
  case M_TLS:
    return baretls_write_all(&k->tls, buf, len);
  default: {
    const char *p = buf;
    while (len) {
      ssize_t w = write(k->fd, p, len);
      if (w <= 0) {
        if (w < 0 && errno == EINTR)
          continue;
        return -1;
      }
      p += w;
      len -= (size_t)w;
    }
    return 0;
  }
  }
}

int bt_read(bt_conn_t *k, void *buf, size_t len) {
  char *p = buf;
  switch (k->c->mode) {
  case M_TLS:
    return baretls_read_exact(&k->tls, buf, len);
  case M_MESH:
    while (len) {
      long r = mesh_conn_read(k->mc, p, len);
      if (r <= 0)
        return -1;
      p += r;
      len -= (size_t)r;
    }
    return 0;
  default:
    while (len) {
      ssize_t r = read(k->fd, p, len);
      if (r <= 0) {
        if (r < 0 && errno == EINTR)
          continue;
        return -1;
      }
      p += r;
      len -= (size_t)r;
    }
    return 0;
  }
}

/* One call through the mesh: pick (least_request over the service's
 * discovered endpoints), pooled connection, spans and metrics around it,
 * outcome reported back to the balancer and outlier detection. */
static int mesh_request(bt_conn_t *k, const void *req, void *resp,
                        size_t len) {
  bt_ctx_t *c = k->c;
  mesh_call_t *call;
  mesh_status_t st;
  int rc = mesh_call_begin(c->mesh, c->o.target, NULL, &call, &st);
  if (rc != MESH_OK) {
    fprintf(stderr, "mesh_call_begin %s: %s\n", c->o.target, st.message);
    return -1;
  }
  atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
  if (call->reused)
    atomic_fetch_add_explicit(&c->reused, 1, memory_order_relaxed);
  k->mc = mesh_call_conn(call);
  rc = bt_write(k, req, len) == 0 && bt_read(k, resp, len) == 0 ? 0 : -1;
  k->mc = NULL;
  mesh_call_end(call, rc == 0 ? MESH_CALL_OK : MESH_CALL_RESET, 0);
  return rc;
}

int bt_request(bt_conn_t *k, const void *req, void *resp, size_t len) {
  if (k->c->mode == M_MESH)
    return mesh_request(k, req, resp, len);
  if (bt_write(k, req, len) != 0)
    return -1;
  return bt_read(k, resp, len);
}

void bt_calls(bt_ctx_t *c, long *calls, long *reused) {
  *calls = atomic_load(&c->calls);
  *reused = atomic_load(&c->reused);
}

mesh_t *bt_mesh(bt_ctx_t *c) { return c->mesh; }

int bt_resumed(bt_conn_t *k) { return k->resumed; }

void bt_close(bt_conn_t *k) {
  if (!k)
    return;
  if (k->c->mode == M_MESH)
    mesh_conn_close(k->mc); /* NULL for clients: calls own theirs */
  else if (k->c->mode == M_TLS)
    baretls_close(&k->tls);
  else
    close(k->fd);
  free(k);
}

/* ---- server ---- */

struct srv_conn {
  bt_ctx_t *c;
  bt_conn_t k;
  size_t size;
};

static void *serve_conn(void *arg) {
  struct srv_conn *s = arg;
  char *buf = malloc(s->size);
  while (buf && bt_read(&s->k, buf, s->size) == 0 &&
         bt_write(&s->k, buf, s->size) == 0) {
  }
  free(buf);
  if (s->c->mode == M_MESH)
    mesh_conn_close(s->k.mc);
  else if (s->c->mode == M_TLS)
    baretls_close(&s->k.tls);
  else
    close(s->k.fd);
  free(s);
  return NULL;
}

int bt_serve(bt_ctx_t *c, const char *listen_addr, size_t msg_size) {
  mesh_listener_t *ml = NULL;
  int lfd = -1;
  if (c->mode == M_MESH) {
    mesh_status_t st;
    if (mesh_listen(c->mesh, listen_addr, &ml, &st) != MESH_OK) {
      fprintf(stderr, "mesh_listen: %s\n", st.message);
      return -1;
    }
  } else {
    lfd = bt_tcp_listen(listen_addr);
    if (lfd < 0) {
      fprintf(stderr, "listen %s: %s\n", listen_addr, strerror(errno));
      return -1;
    }
    if (c->mode == M_TLS) {
      if (baretls_conf_init(&c->srv, 1, c->o.ca, c->o.cert, c->o.key) != 0)
        return -1;
      c->have_srv = 1;
    }
  }
  for (;;) {
    struct srv_conn *s = calloc(1, sizeof *s);
    if (!s)
      return -1;
    s->c = c;
    s->k.c = c;
    s->size = msg_size;
    if (c->mode == M_MESH) {
      mesh_status_t st;
      if (mesh_accept(ml, -1, &s->k.mc, &st) != MESH_OK) {
        fprintf(stderr, "accept: %s\n", st.message);
        free(s);
        continue;
      }
    } else {
      int fd = accept(lfd, NULL, NULL);
      if (fd < 0) {
        free(s);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      s->k.fd = fd;
      if (c->mode == M_TLS && baretls_open(&s->k.tls, &c->srv, fd, NULL)) {
        close(fd);
        free(s);
        continue;
      }
    }
    pthread_t t;
    if (pthread_create(&t, NULL, serve_conn, s) == 0)
      pthread_detach(t);
    else
      serve_conn(s);
  }
}
