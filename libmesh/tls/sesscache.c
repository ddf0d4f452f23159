/* Client-side saved TLS sessions, one per target address, so that a second
 * dial to the same peer resumes (one round trip less, no certificate
 * exchange).  Entries are bound to the creds generation they were made
 * with: after our own rotation a full handshake presents the new SVID.
 * Small fixed-size table with LRU replacement; a mutex guards it (held only
 * for a lookup and an mbedTLS session copy). */
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
  for (size_t i = 0; i < n; i++)
    mbedtls_ssl_session_init(&sc->v[i].sess);
  return MESH_OK;
}

void mesh__sesscache_fini(mesh__sesscache_t *sc) {
  if (!sc->ready)
    return;
  for (size_t i = 0; i < sc->n; i++)
    mbedtls_ssl_session_free(&sc->v[i].sess);
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
  mbedtls_ssl_session_free(&e->sess);
  mbedtls_ssl_session_init(&e->sess);
  e->used = false;
  e->key[0] = '\0';
}

bool mesh__sesscache_load(mesh__sesscache_t *sc, const char *key,
                          uint64_t generation, mbedtls_ssl_context *ssl) {
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
  if (e && mbedtls_ssl_set_session(ssl, &e->sess) == 0) {
    e->lru = ++sc->tick;
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

void mesh__sesscache_save(mesh__sesscache_t *sc, const char *key,
                          uint64_t generation,
                          const mbedtls_ssl_context *ssl) {
  if (!sc->n || strlen(key) >= sizeof sc->v[0].key)
    return;
  /* Copy out of the connection before taking the lock: it allocates. */
  mbedtls_ssl_session s;
  mbedtls_ssl_session_init(&s);
  if (mbedtls_ssl_get_session(ssl, &s) != 0) {
    mbedtls_ssl_session_free(&s);
    return;
  }
  pthread_mutex_lock(&sc->mu);
  mesh__sess_entry_t *e = find(sc, key);
  if (!e)
    e = victim(sc);
  mbedtls_ssl_session old = e->sess;
  e->sess = s;
  mesh__strlcpy(e->key, key, sizeof e->key);
  e->generation = generation;
  e->saved_ms = mesh__now_ms();
  e->lru = ++sc->tick;
  e->used = true;
  pthread_mutex_unlock(&sc->mu);
  mbedtls_ssl_session_free(&old);
}

void mesh__sesscache_drop(mesh__sesscache_t *sc, const char *key) {
  if (!sc->n)
    return;
  pthread_mutex_lock(&sc->mu);
  mesh__sess_entry_t *e = find(sc, key);
  if (e)
    clear(e);
  pthread_mutex_unlock(&sc->mu);
}
