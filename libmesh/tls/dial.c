/* SPDX-License-Identifier: Apache-2.0 */
/* Client side: tls dials an address and handshakes, nothing more.  The
 * call layer (resilience/dial.c, mesh_dial()) calls mesh__tls_dial_host for
 * "host:port" and mesh__tls_dial_addr for a picked endpoint. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

static int copy_peers(mesh_conn_t *c, const mesh_dial_opts_t *opts,
                      const cJSON *svc_peers) {
  size_t n = 0;
  if (opts && opts->npeers)
    n = opts->npeers;
  else if (cJSON_IsArray(svc_peers))
    n = (size_t)cJSON_GetArraySize(svc_peers);
  if (n == 0)
    return MESH_OK;
  c->peers = calloc(n, sizeof *c->peers);
  if (!c->peers)
    return MESH_ERR_NOMEM;
  if (opts && opts->npeers) {
    for (size_t i = 0; i < n; i++) {
      c->peers[i] = strdup(opts->peers[i]);
      if (!c->peers[i])
        return MESH_ERR_NOMEM;
      c->npeers++;
    }
    return MESH_OK;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, svc_peers) {
    if (!cJSON_IsString(it))
      continue;
    c->peers[c->npeers] = strdup(it->valuestring);
    if (!c->peers[c->npeers])
      return MESH_ERR_NOMEM;
    c->npeers++;
  }
  return MESH_OK;
}

/* A per-dial ALPN list: the backend applies it to this connection only
 * (mbedTLS builds its own config for it: cheap, no crypto, no seeding). */
static int own_alpn(mesh_conn_t *c, const char *alpn, mesh_status_t *st) {
  c->alpn_buf = strdup(alpn);
  if (!c->alpn_buf)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  size_t n = 0;
  char *p = c->alpn_buf;
  while (p && n < MESH__ALPN_MAX) {
    c->alpn_list[n++] = p;
    p = strchr(p, ',');
    if (p)
      *p++ = '\0';
  }
  c->alpn_list[n] = NULL;
  c->own_alpn = true;
  return MESH_OK;
}

static void set_budget(mesh_conn_t *c, const mesh_dial_opts_t *opts) {
  const mesh__tls_settings_t *s = &c->m->tls->set;
  if (opts && opts->timeout_ms > 0) {
    /* One budget for connect and handshake together. */
    c->phase_ms = opts->timeout_ms;
    c->hs_timeout_ms = 0;
  } else {
    c->phase_ms = s->connect_timeout_ms;
    c->hs_timeout_ms = s->handshake_timeout_ms;
  }
  c->deadline_ms = mesh__now_ms() + c->phase_ms;
}

/* own: a generation the caller chose (NULL: the service's own, set by
 * tls/svccreds.c, else the identity's).  Over 60 lines: one straight
 * sequence (credentials, socket, connection, options, handshake) whose
 * every failure must release what was taken so far, in order. */
static int dial_addr(mesh_t *m, const struct sockaddr *sa, socklen_t len,
                     const cJSON *svc_peers, const mesh_dial_opts_t *opts,
                     bool root_ok, mesh__tlsgen_t *own, mesh_conn_t **out,
                     mesh_status_t *st) {
  *out = NULL;
  mesh_status_t local;
  if (!st)
    st = &local; /* the failed span wants the message */
  mesh__tlsgen_t *gen = own;
  mesh__tls_san_t *san = NULL;
  size_t nsan = 0;
  int rc = MESH_OK;
  if (!own && opts && opts->service) {
    /* the service's own credentials (xds cluster, A29), if set */
    rc = mesh__tls_svc_creds_get(m, opts->service, &gen, &san, &nsan);
    if (rc != MESH_OK)
      return mesh__fail(st, rc, "out of memory");
  }
  if (gen == own && own)
    atomic_fetch_add(&own->refs, 1);
  else if (!gen)
    rc = mesh__tlsgen_acquire(m, &gen, st);
  if (rc != MESH_OK)
    mesh__tls_san_free(san, nsan);
  if (rc != MESH_OK) {
    mesh__tls_obs_dial_failed(m, sa, len, opts, root_ok, rc, st->message);
    return rc;
  }
  int fd;
  bool in_progress;
  rc = mesh__sock_connect(sa, len, &fd, &in_progress, st);
  if (rc != MESH_OK) {
    mesh__tlsgen_release(gen);
    mesh__tls_san_free(san, nsan);
    mesh__tls_obs_dial_failed(m, sa, len, opts, root_ok, rc, st->message);
    return rc;
  }
  bool nb = opts && opts->nonblocking;
  mesh_conn_t *c = mesh__conn_new(m, fd, false, nb);
  if (!c) {
    mesh__tlsgen_release(gen);
    mesh__tls_san_free(san, nsan);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  c->gen = gen;
  c->san = san;
  c->nsan = nsan;
  mesh__sock_format(sa, c->peer_addr, sizeof c->peer_addr);
  mesh__strlcpy(c->target, c->peer_addr, sizeof c->target);
  memcpy(&c->peer_sa, sa,
         len < sizeof c->peer_sa ? (size_t)len : sizeof c->peer_sa);
  c->state = MESH__CONN_CONNECTING;
  set_budget(c, opts);
  mesh__conn_obs_dial(c, opts, root_ok);
  rc = copy_peers(c, opts, svc_peers);
  if (rc != MESH_OK)
    mesh__fail(st, rc, "out of memory");
  if (rc == MESH_OK && opts && opts->alpn)
    rc = own_alpn(c, opts->alpn, st);
  if (rc == MESH_OK)
    rc = nb ? mesh__conn_step(c, st) : mesh__conn_finish(c, st);
  if (rc == MESH_OK || rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE) {
    *out = c;
    return rc;
  }
  if (c->state != MESH__CONN_FAILED) /* options failed before the dial */
    mesh__conn_fail(c, NULL, rc, "%s", st->message);
  mesh_conn_close(c);
  return rc;
}

int mesh__tls_dial_addr(mesh_t *m, const struct sockaddr *sa, socklen_t len,
                        const cJSON *svc_peers, const mesh_dial_opts_t *opts,
                        mesh_conn_t **out, mesh_status_t *st) {
  return dial_addr(m, sa, len, svc_peers, opts, false, NULL, out, st);
}

int mesh__tls_dial_host(mesh_t *m, const char *target,
                        const mesh_dial_opts_t *opts, mesh_conn_t **out,
                        mesh_status_t *st) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = mesh__sock_resolve(target, false, &ss, &len, st);
  if (rc != MESH_OK)
    return rc;
  return dial_addr(m, (struct sockaddr *)&ss, len, NULL, opts, true, NULL,
                   out, st);
}

int mesh__tls_dial_host_gen(mesh_t *m, const char *target,
                            mesh__tlsgen_t *gen, const mesh_dial_opts_t *opts,
                            mesh_conn_t **out, mesh_status_t *st) {
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = mesh__sock_resolve(target, false, &ss, &len, st);
  if (rc != MESH_OK)
    return rc;
  return dial_addr(m, (struct sockaddr *)&ss, len, NULL, opts, false, gen,
                   out, st);
}
