/* SPDX-License-Identifier: Apache-2.0 */
/* Client-side saved TLS sessions, one per target address, so that a second
 * dial to the same peer resumes (one round trip less, no certificate
 * exchange).  Entries are bound to the creds generation they were made
 * with: after our own rotation a full handshake presents the new SVID.
 * Each saved session has an id, so that a connection forgets only the
 * session it resumed or saved, never a newer one of the same target.
 * Small fixed-size table with LRU replacement; a mutex guards it (held only
 * for a lookup and a backend session copy). */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

int mesh__sesscache_init(mesh__sesscache_t *sc, size_t n, int64_t max_age_ms) {
  memset(sc, 0, sizeof *sc);
  pthread_mutex_init(&sc->mu, NULL);
  sc->ready = true;
  sc->max_age_ms = max_age_ms;
  if (n == 0)
    return MESH_OK;
  sc->v = calloc(n, sizeof *sc->v);
  if (!sc->v)
    return MESH_ERR_NOMEM;
  sc->n = n;
  return MESH_OK;
}

void mesh__sesscache_fini(mesh__sesscache_t *sc) {
  if (!sc->ready)
    return;
  for (size_t i = 0; i < sc->n; i++)
    mesh__tls_be.sess_free(sc->v[i].sess);
  free(sc->v);
  pthread_mutex_destroy(&sc->mu);
  memset(sc, 0, sizeof *sc);
}

static mesh__sess_entry_t *find(mesh__sesscache_t *sc, const char *key) {
  for (size_t i = 0; i < sc->n; i++)
    if (sc->v[i].used && strcmp(sc->v[i].key, key) == 0)
      return &sc->v[i];
  return NULL;
}

static void clear(mesh__sess_entry_t *e) {
  mesh__tls_be.sess_free(e->sess);
  e->sess = NULL;
  e->id = 0;
  e->used = false;
  e->key[0] = '\0';
}

bool mesh__sesscache_load(mesh__sesscache_t *sc, mesh_conn_t *c) {
  const char *key = c->target;
  uint64_t generation = c->gen->generation;
  if (!sc->n)
    return false;
  bool ok = false;
  pthread_mutex_lock(&sc->mu);
  mesh__sess_entry_t *e = find(sc, key);
  if (e && (e->generation != generation ||
            mesh__now_ms() - e->saved_ms > sc->max_age_ms)) {
    clear(e);
    e = NULL;
  }
  if (e && e->sess && mesh__tls_be.sess_set(c, e->sess)) {
    e->lru = ++sc->tick;
    c->offered_id = e->id;
    ok = true;
  }
  pthread_mutex_unlock(&sc->mu);
  return ok;
}

static mesh__sess_entry_t *victim(mesh__sesscache_t *sc) {
  mesh__sess_entry_t *best = &sc->v[0];
  for (size_t i = 0; i < sc->n; i++) {
    if (!sc->v[i].used)
      return &sc->v[i];
    if (sc->v[i].lru < best->lru)
      best = &sc->v[i];
  }
  return best;
}

void mesh__sesscache_put(mesh__sesscache_t *sc, mesh_conn_t *c,
                         mesh__be_sess_t *s) {
  const char *key = c->target;
  if (!sc->n || strlen(key) >= sizeof sc->v[0].key) {
    mesh__tls_be.sess_free(s);
    return;
  }
  /* A TLS 1.2 resumption continues the session it resumed (the same
   * master secret; a renewed ticket is that session again), so it keeps
   * its id: an unclean end of any connection of it forgets it, as OpenSSL
   * does with its one SSL_SESSION.  Anything else (a full handshake, a TLS
   * 1.3 ticket: a new PSK) is a new session. */
  bool same = c->resumed && c->sess_id != 0 &&
              strcmp(mesh__tls_be.version(c), "TLSv1.2") == 0;
  pthread_mutex_lock(&sc->mu);
  mesh__sess_entry_t *e = find(sc, key);
  if (!e)
    e = victim(sc);
  mesh__be_sess_t *old = e->sess;
  e->sess = s;
  mesh__strlcpy(e->key, key, sizeof e->key);
  e->generation = c->gen->generation;
  e->id = same ? c->sess_id : ++sc->ids;
  c->sess_id = e->id;
  e->saved_ms = mesh__now_ms();
  e->lru = ++sc->tick;
  e->used = true;
  pthread_mutex_unlock(&sc->mu);
  mesh__tls_be.sess_free(old);
}

void mesh__sesscache_save(mesh__sesscache_t *sc, mesh_conn_t *c) {
  if (!sc->n || strlen(c->target) >= sizeof sc->v[0].key)
    return;
  /* Copy out of the connection before taking the lock: it allocates. */
  mesh__be_sess_t *s = mesh__tls_be.sess_get(c);
  if (s)
    mesh__sesscache_put(sc, c, s);
}

void mesh__sesscache_drop(mesh__sesscache_t *sc, const char *key,
                          uint64_t id) {
  if (!sc->n || id == 0)
    return;
  pthread_mutex_lock(&sc->mu);
  mesh__sess_entry_t *e = find(sc, key);
  if (e && e->id == id)
    clear(e);
  pthread_mutex_unlock(&sc->mu);
}
