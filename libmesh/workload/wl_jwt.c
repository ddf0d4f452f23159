/* SPDX-License-Identifier: Apache-2.0 */
/* FetchJWTSVID: a JWT-SVID for an audience, for outbound calls
 * ("Authorization: Bearer <token>").  Cached per audience until it nears
 * its expiry (30 s, or a fifth of its lifetime when shorter), so that a
 * call path does not go to the agent every time.  Each fetch is a unary
 * call on a fresh h2c connection (rare: once per token lifetime). */
#include "workload/workload.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX 32

typedef struct jwt_entry {
  char *aud, *token;
  int64_t exp, iat; /* Unix seconds from the token's claims */
} jwt_entry_t;

typedef struct jwt_cache {
  jwt_entry_t e[CACHE_MAX];
  size_t n;
} jwt_cache_t;


/* exp and iat of a compact JWS (payload not verified: it is our own token
 * from our own agent; the callee verifies).  @return MESH_OK or PARSE. */
static int claims_times(const char *tok, int64_t *exp, int64_t *iat) {
  const char *a = strchr(tok, '.');
  const char *b = a ? strchr(a + 1, '.') : NULL;
  if (!b)
    return MESH_ERR_PARSE;
  uint8_t *raw;
  size_t n;
  if (mesh__grpc_b64_decode(a + 1, (size_t)(b - a - 1), &raw, &n) != MESH_OK)
    return MESH_ERR_PARSE;
  cJSON *j = cJSON_ParseWithLength((const char *)raw, n);
  free(raw);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "exp");
  const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "iat");
  int rc = cJSON_IsNumber(e) ? MESH_OK : MESH_ERR_PARSE;
  if (rc == MESH_OK) {
    *exp = (int64_t)e->valuedouble;
    *iat = cJSON_IsNumber(i) ? (int64_t)i->valuedouble : *exp;
  }
  cJSON_Delete(j);
  return rc;
}

static bool fresh(const jwt_entry_t *x, int64_t now) {
  int64_t margin = (x->exp - x->iat) / 5;
  if (margin > 30 || margin <= 0)
    margin = 30;
  return x->exp - margin > now;
}

/* One unary call on a fresh h2c connection: the response message in *msg
 * (malloc'd).  A status that is not OK: MESH_ERR_GRPC_STATUS with it in st
 * and *code. */
static int unary(mesh_t *m, const char *method, const uint8_t *req,
                 size_t rlen, uint8_t **msg, size_t *len, int *code,
                 mesh_status_t *st) {
  mesh__h2_session_t *s = NULL;
  int64_t dl = mesh__now_ms() + mesh__wl_timeout_ms(m);
  int rc = mesh__wl_dial(m, mesh__wl_endpoint(m), mesh__wl_timeout_ms(m), &s,
                         st);
  static mesh__wl_call_t zero;
  mesh__wl_call_t c = zero;
  *msg = NULL;
  *code = -1;
  if (rc == MESH_OK)
    rc = mesh__wl_call_start(&c, s, method, req, rlen, true, dl, st);
  if (rc == MESH_OK) {
    int r = mesh__wl_call_recv(&c, dl, msg, len, st);
    if (r == 0) {
      *code = c.status;
      rc = mesh__fail(st, MESH_ERR_GRPC_STATUS,
                      "Workload API at %s: %s: %s: %s", mesh__wl_endpoint(m),
                      method, mesh__grpc_code_name(c.status), c.message);
    } else if (r < 0) {
      rc = r;
    }
  }
  if (c.x)
    mesh__wl_call_end(&c);
  mesh__h2_session_free(s);
  return rc;
}

static int fetch(mesh_t *m, const char *aud, char **token,
                 mesh_status_t *st) {
  uint8_t *req, *msg = NULL;
  size_t rlen, len = 0;
  int code;
  if (mesh__wl_jwt_request(aud, &req, &rlen) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int rc = unary(m, "FetchJWTSVID", req, rlen, &msg, &len, &code, st);
  free(req);
  if (rc == MESH_OK) {
    char id[MESH_SPIFFE_ID_MAX + 1];
    rc = mesh__wl_jwt_svid_decode(msg, len, mesh__wl_hint(m), token, id,
                                  sizeof id, st);
  }
  free(msg);
  return rc;
}

/* gRPC INVALID_ARGUMENT: what SPIRE answers for a token that does not
 * validate (and for a request without audience or token, refused above). */
#define GRPC_INVALID_ARGUMENT 3

int mesh_validate_jwt_svid(mesh_t *m, const char *token, const char *audience,
                           char *spiffe_id, size_t id_len, char *claims,
                           size_t claims_len, mesh_status_t *st) {
  mesh__ok(st);
  if (!m || !token || !*token || !audience || !*audience || !spiffe_id ||
      !id_len || (claims && !claims_len))
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_validate_jwt_svid: token, audience and spiffe_id "
                      "must be set");
  spiffe_id[0] = '\0';
  if (claims)
    claims[0] = '\0';
  if (!m->wl)
    return mesh__fail(st, MESH_ERR_NOT_FOUND,
                      "no Workload API source (identity.source)");
  uint8_t *req, *msg = NULL;
  size_t rlen, len = 0;
  int code;
  if (mesh__wl_validate_request(audience, token, &req, &rlen) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int rc = unary(m, "ValidateJWTSVID", req, rlen, &msg, &len, &code, st);
  free(req);
  if (rc == MESH_ERR_GRPC_STATUS && code == GRPC_INVALID_ARGUMENT) {
    rc = MESH_ERR_DENIED; /* the message (the agent's reason) stays */
    if (st)
      st->code = rc;
  }
  cJSON *cl = NULL;
  if (rc == MESH_OK)
    rc = mesh__wl_validate_decode(msg, len, spiffe_id, id_len,
                                  claims ? &cl : NULL, st);
  free(msg);
  char *txt = cl ? cJSON_PrintUnformatted(cl) : NULL;
  cJSON_Delete(cl);
  if (rc == MESH_OK && claims && !txt)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  else if (rc == MESH_OK && claims && strlen(txt) >= claims_len)
    rc = mesh__fail(st, MESH_ERR_BUFFER, "claims of %zu bytes do not fit in %zu",
                    strlen(txt), claims_len);
  else if (rc == MESH_OK && claims)
    memcpy(claims, txt, strlen(txt) + 1);
  free(txt);
  if (rc != MESH_OK)
    spiffe_id[0] = '\0';
  return rc;
}

int mesh__wl_jwt_svid(mesh_t *m, const char *audience, char **token,
                      mesh_status_t *st) {
  mesh__ok(st);
  *token = NULL;
  if (!audience || !*audience)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "audience must be set");
  if (!m || !m->wl)
    return mesh__fail(st, MESH_ERR_NOT_FOUND,
                      "no Workload API source (identity.source)");
  pthread_mutex_t *mu;
  void **slot;
  mesh__wl_jwt_access(m, &mu, &slot);
  int64_t now = mesh__wall_s();
  pthread_mutex_lock(mu);
  jwt_cache_t *jc = *slot;
  for (size_t i = 0; jc && i < jc->n; i++) {
    if (!strcmp(jc->e[i].aud, audience) && fresh(&jc->e[i], now)) {
      *token = mesh__strdup(jc->e[i].token);
      pthread_mutex_unlock(mu);
      return *token ? MESH_OK : mesh__fail(st, MESH_ERR_NOMEM, "no memory");
    }
  }
  pthread_mutex_unlock(mu);
  int rc = fetch(m, audience, token, st);
  jwt_entry_t e = {0};
  if (rc != MESH_OK || claims_times(*token, &e.exp, &e.iat) != MESH_OK)
    return rc; /* a token without exp is returned, never cached */
  e.aud = mesh__strdup(audience);
  e.token = mesh__strdup(*token);
  pthread_mutex_lock(mu);
  if (!*slot)
    *slot = calloc(1, sizeof(jwt_cache_t));
  jc = *slot;
  size_t k = 0;
  while (jc && k < jc->n && strcmp(jc->e[k].aud, audience))
    k++;
  if (jc && e.aud && e.token && k < CACHE_MAX) {
    if (k < jc->n) {
      free(jc->e[k].aud);
      free(jc->e[k].token);
    } else {
      jc->n++;
    }
    jc->e[k] = e;
    e.aud = e.token = NULL;
  }
  pthread_mutex_unlock(mu);
  free(e.aud);
  free(e.token);
  return MESH_OK;
}

void mesh__wl_jwt_cache_free(mesh_t *m) {
  pthread_mutex_t *mu;
  void **slot;
  mesh__wl_jwt_access(m, &mu, &slot);
  jwt_cache_t *jc = *slot;
  for (size_t i = 0; jc && i < jc->n; i++) {
    free(jc->e[i].aud);
    free(jc->e[i].token);
  }
  free(jc);
  *slot = NULL;
}

int mesh_jwt_svid(mesh_t *m, const char *audience, char *buf, size_t len,
                  mesh_status_t *st) {
  mesh__ok(st);
  if (!m || !buf || len == 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "mesh_jwt_svid: NULL");
  buf[0] = '\0';
  char *tok = NULL;
  int rc = mesh__wl_jwt_svid(m, audience, &tok, st);
  if (rc != MESH_OK)
    return rc;
  size_t n = strlen(tok);
  if (n >= len) {
    free(tok);
    return mesh__fail(st, MESH_ERR_BUFFER,
                      "JWT-SVID of %zu bytes does not fit in %zu", n, len);
  }
  memcpy(buf, tok, n + 1);
  free(tok);
  return MESH_OK;
}
