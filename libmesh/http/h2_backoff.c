/* SPDX-License-Identifier: Apache-2.0 */
/* Client keepalive backoff (gRFC A8, as grpc-core's subchannel does): a
 * server that ends a connection with GOAWAY ENHANCE_YOUR_CALM and debug
 * data "too_many_pings" gets twice that connection's keepalive time on
 * every later connection to it.  The target is the peer's address (what
 * grpc-core keys a subchannel by), kept per context (m->http). */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "http/h2_int.h"
#include "http/http.h"

#define KA_TARGETS_MAX 1024 /* bounded: one per distinct server address */

typedef struct ka_ent {
  char key[sizeof(((mesh__h2_session_t *)0)->ka_key)];
  int64_t ms;
} ka_ent_t;

struct mesh__h2_ka_table {
  pthread_mutex_t mu;
  ka_ent_t *v;
  size_t n, cap;
};

void mesh__h2_ka_free(struct mesh__h2_ka_table *t) {
  if (!t)
    return;
  pthread_mutex_destroy(&t->mu);
  free(t->v);
  free(t);
}

/* The context's table, made on first use (NULL: no context, no memory). */
static struct mesh__h2_ka_table *table(mesh_t *m) {
  if (!m || !m->http)
    return NULL;
  struct mesh__h2_ka_table *t = atomic_load(&m->http->ka);
  if (t)
    return t;
  struct mesh__h2_ka_table *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  pthread_mutex_init(&n->mu, NULL);
  if (atomic_compare_exchange_strong(&m->http->ka, &t, n))
    return n;
  mesh__h2_ka_free(n); /* another thread made it first: t is it */
  return t;
}

/* "ip:port" ("[ip6]:port", "unix:path") of the peer, "" when unknown. */
static void peer_key(int fd, char *out, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char ip[INET6_ADDRSTRLEN];
  memset(&ss, 0, sizeof ss);
  out[0] = '\0';
  if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
    return;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    if (inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip))
      snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    if (inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip))
      snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else if (ss.ss_family == AF_UNIX &&
             sl > offsetof(struct sockaddr_un, sun_path) + 1) {
    /* a named socket (a socketpair has no name: no target) */
    const struct sockaddr_un *a = (const struct sockaddr_un *)&ss;
    size_t n = sl - offsetof(struct sockaddr_un, sun_path);
    n = strnlen(a->sun_path, n < sizeof a->sun_path ? n : sizeof a->sun_path);
    if (a->sun_path[0]) /* not the abstract namespace */
      snprintf(out, len, "unix:%.*s", (int)n, a->sun_path);
  }
}

static ka_ent_t *find(struct mesh__h2_ka_table *t, const char *key) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->v[i].key, key) == 0)
      return &t->v[i];
  return NULL;
}

void mesh__h2_ka_apply(mesh__h2_session_t *s) {
  if (s->server || s->set.keepalive_ms <= 0)
    return;
  peer_key(s->fd, s->ka_key, sizeof s->ka_key);
  struct mesh__h2_ka_table *t = s->ka_key[0] ? table(s->m) : NULL;
  if (!t)
    return;
  pthread_mutex_lock(&t->mu);
  const ka_ent_t *e = find(t, s->ka_key);
  if (e && e->ms > s->set.keepalive_ms)
    s->set.keepalive_ms = e->ms;
  pthread_mutex_unlock(&t->mu);
}

/* Record ms for key if it is longer than what is kept.  @return true
 * when it was (the caller logs that once). */
static bool raise_to(struct mesh__h2_ka_table *t, const char *key,
                     int64_t ms) {
  pthread_mutex_lock(&t->mu);
  ka_ent_t *e = find(t, key);
  bool raised = false;
  if (!e && t->n == t->cap && t->n < KA_TARGETS_MAX) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    ka_ent_t *v = realloc(t->v, cap * sizeof *v);
    if (v) {
      t->v = v;
      t->cap = cap;
    }
  }
  if (!e && t->n < t->cap) {
    e = &t->v[t->n++];
    mesh__strlcpy(e->key, key, sizeof e->key);
    e->ms = 0;
  }
  if (e && ms > e->ms) {
    e->ms = ms;
    raised = true;
  }
  pthread_mutex_unlock(&t->mu);
  return raised;
}

void mesh__h2_ka_calm(mesh__h2_session_t *s, const uint8_t *data,
                      size_t len) {
  static const char why[] = "too_many_pings";
  if (s->server || s->set.keepalive_ms <= 0 || !s->ka_key[0] ||
      len != sizeof why - 1 || memcmp(data, why, len) != 0)
    return;
  struct mesh__h2_ka_table *t = table(s->m);
  /* grpc-core: min(2 x keepalive_time, INT_MAX) */
  int64_t ms = s->set.keepalive_ms > INT_MAX / 2 ? INT_MAX
                                                 : 2 * s->set.keepalive_ms;
  if (t && raise_to(t, s->ka_key, ms))
    mesh__log(s->m, MESH_LOG_WARN, "h2_keepalive_backoff",
              "target=%s keepalive_time_ms=%lld (the server sent GOAWAY "
              "too_many_pings: doubled for new connections, as gRPC does)",
              s->ka_key, (long long)ms);
}
