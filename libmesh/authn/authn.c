/* SPDX-License-Identifier: Apache-2.0 */
/* The authn part: the "authn" section, the key sources of its rules and the
 * per-request check.
 *
 * Keys: inline sets are built with the config; a jwks_uri is fetched with
 * libcurl on the worker loop (core/curl_loop.c) at start, every
 * jwks_refresh_s, and once more (at most every jwks_refetch_min_s) when a
 * token names a kid the set lacks.  A failed fetch keeps the last good set;
 * with none, tokens of that issuer are refused (fail closed: 401).  JWT
 * bundles from the Workload API arrive through identity, which hands every
 * new set to on_bundles() (registered at init: the Workload API part sits
 * above this one and cannot call it); mesh__authn_set_jwt_bundle() is the
 * same door for one trust domain.
 *
 * Request threads take no lock in the steady state: a rule's key set and
 * the bundle set are immutable, refcounted and published through
 * mesh__pub_t (a lock-free acquire of the current one); writers (the
 * worker's JWKS fetches, the Workload API stream thread) build a new set and
 * swap it in whole, so a reader sees the old set or the new one, never a
 * mix.  A request thread takes the rule's mutex only to ask for a fetch and
 * wait for it (bounded by jwks_fetch_timeout_ms): when the issuer has no
 * keys yet, or its token named a kid the set lacks.  Verified signatures
 * are remembered per key set in a bounded cache (cache.c). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authn/authn.h"
#include "identity/identity.h"
#include "telemetry/telemetry.h"

#define BODY_CAP MESH__JWKS_MAX_BYTES
#define HELD_MAX 16
#define BUNDLES_MAX 64 /* trust domains */

typedef struct slot {
  struct mesh__authn *a;
  const mesh__authn_rule_t *rule;
  mesh__pub_t keys;       /* last good set (mesh__jwks_t), NULL: none yet */
  pthread_mutex_t mu;     /* the fetch state below; never held to read keys */
  pthread_cond_t cv;
  uint64_t done_gen;      /* fetches finished */
  bool fetching;
  int64_t last_start_ms;  /* of the last fetch (rate limit of refetches) */
  /* loop thread only: */
  CURL *easy;
  char *body;
  size_t blen;
  bool too_big;
  int64_t timer;
} slot_t;

/* The JWT bundles: trust domain -> parsed keys, one immutable set. */
typedef struct bset {
  _Atomic uint32_t refs;
  uint64_t generation; /* identity's, 0: pushed by mesh__authn_set_jwt_bundle */
  size_t n;
  struct {
    char *td;
    mesh__jwks_t *keys;
  } v[];
} bset_t;

struct mesh__authn {
  mesh_t *m;
  mesh__authn_cfg_t *cfg;
  slot_t *slots; /* one per rule */
  mesh__curlm_t *cm;
  mesh__pub_t bundles; /* bset_t, NULL: none */
  pthread_mutex_t bmu; /* bundle writers: read, modify, swap as one step */
  bool hooked;         /* on_bundles registered with identity */
  mesh__jwt_cache_t *cache;
  /* mesh_authn_requests_total{result}: index MESH__JWT_* for refusals
   * (0, "ok", is a verified token), then "no_token" */
  mesh__metric_t *m_result[MESH__JWT_ERR_COUNT + 1];
};

/* ---- fetching (loop thread) --------------------------------------------------- */

static void fetch_start(void *user);

static size_t on_body(char *p, size_t sz, size_t n, void *user) {
  slot_t *s = user;
  size_t add = sz * n;
  if (s->blen + add > BODY_CAP) {
    s->too_big = true;
    return 0;
  }
  char *nb = realloc(s->body, s->blen + add + 1);
  if (!nb)
    return 0;
  memcpy(nb + s->blen, p, add);
  s->body = nb;
  s->blen += add;
  return add;
}

static void log_skip(size_t i, const char *why, void *user) {
  slot_t *s = user;
  mesh__log(s->a->m, MESH_LOG_WARN, "authn_jwks_key_skipped",
            "issuer=\"%s\" index=%zu reason=\"%s\"", s->rule->issuer, i, why);
}

static void arm(slot_t *s, int64_t delay) {
  int64_t id = mesh__loop_timer(s->a->m->loop, delay, fetch_start, s);
  s->timer = id > 0 ? id : 0;
}

static void on_done(CURL *easy, CURLcode res, void *user) {
  slot_t *s = user;
  long code = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
  mesh__jwks_t *ks = NULL;
  const char *why = s->too_big ? "JWKS larger than 1 MiB" : curl_easy_strerror(res);
  if (res == CURLE_OK && code != 200)
    why = "HTTP status other than 200";
  else if (res == CURLE_OK &&
           mesh__jwks_parse(s->body ? s->body : "", s->blen, &ks, log_skip, s,
                            &why) == MESH_OK)
    why = NULL;
  curl_easy_cleanup(easy);
  s->easy = NULL;
  free(s->body);
  s->body = NULL;
  s->blen = 0;
  if (why)
    mesh__log(s->a->m, MESH_LOG_WARN, "authn_jwks_fetch_failed",
              "issuer=\"%s\" uri=\"%s\" status=%ld reason=\"%s\"",
              s->rule->issuer, s->rule->jwks_uri, code, why);
  pthread_mutex_lock(&s->mu);
  mesh__jwks_t *old = ks ? mesh__pub_swap(&s->keys, ks) : NULL;
  s->fetching = false;
  s->done_gen++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  mesh__jwks_unref(old);
  if (ks)
    mesh__log(s->a->m, MESH_LOG_INFO, "authn_jwks_loaded",
              "issuer=\"%s\" keys=%zu", s->rule->issuer, ks->n);
  /* failures retry sooner than the refresh period */
  int64_t next = s->a->cfg->refresh_ms;
  arm(s, why && next > 5000 ? 5000 : next);
}

/* Start a fetch unless one runs.  Loop thread. */
static void fetch_start(void *user) {
  slot_t *s = user;
  if (s->timer) {
    mesh__loop_timer_cancel(s->a->m->loop, s->timer);
    s->timer = 0;
  }
  if (s->easy)
    return;
  CURL *c = curl_easy_init();
  pthread_mutex_lock(&s->mu);
  s->fetching = c != NULL;
  s->last_start_ms = mesh__now_ms();
  pthread_mutex_unlock(&s->mu);
  if (!c)
    return arm(s, 1000);
  s->too_big = false;
  curl_easy_setopt(c, CURLOPT_URL, s->rule->jwks_uri);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->a->cfg->fetch_timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  s->easy = c;
  if (mesh__curlm_add(s->a->cm, c, on_done, s) != MESH_OK)
    on_done(c, CURLE_FAILED_INIT, s);
}

/* ---- key lookup (request threads) --------------------------------------------- */

typedef struct lookup {
  struct mesh__authn *a;
  mesh__jwks_t *held[HELD_MAX];
  size_t nheld;
} lookup_t;

static const mesh__jwks_t *hold(lookup_t *l, mesh__jwks_t *k) {
  if (!k)
    return NULL;
  if (l->nheld == HELD_MAX) {
    mesh__jwks_unref(k);
    return NULL;
  }
  l->held[l->nheld++] = k;
  return k;
}

static void jwks_ref(void *k) { mesh__jwks_ref(k); }

static void bset_ref(void *p) {
  atomic_fetch_add_explicit(&((bset_t *)p)->refs, 1, memory_order_relaxed);
}

static void bset_unref(bset_t *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < b->n; i++) {
    free(b->v[i].td);
    mesh__jwks_unref(b->v[i].keys);
  }
  free(b);
}

static bset_t *bset_new(size_t cap) {
  bset_t *b = calloc(1, sizeof *b + (cap ? cap : 1) * sizeof b->v[0]);
  if (b)
    atomic_init(&b->refs, 1);
  return b;
}

/* Append td -> k (k's reference moves in; td copied).  false: no memory
 * (k released). */
static bool bset_add(bset_t *b, const char *td, mesh__jwks_t *k) {
  char *t = strdup(td);
  if (!t) {
    mesh__jwks_unref(k);
    return false;
  }
  b->v[b->n].td = t;
  b->v[b->n++].keys = k;
  return true;
}

static mesh__jwks_t *bset_find(const bset_t *b, const char *td) {
  for (size_t i = 0; b && i < b->n; i++)
    if (strcmp(b->v[i].td, td) == 0)
      return b->v[i].keys;
  return NULL;
}

static const mesh__jwks_t *bundle_keys(lookup_t *l, const char *td) {
  bset_t *b = mesh__pub_acquire(&l->a->bundles, bset_ref);
  mesh__jwks_t *k = bset_find(b, td);
  mesh__jwks_ref(k);
  bset_unref(b);
  return hold(l, k);
}

static void timed_wait(slot_t *s, int64_t deadline_ms) {
  mesh__cond_wait_until(&s->cv, &s->mu, CLOCK_REALTIME, deadline_ms);
}

static const mesh__jwks_t *uri_keys(lookup_t *l, slot_t *s, bool refetch) {
  if (!refetch) { /* the steady state: no lock */
    mesh__jwks_t *k = mesh__pub_acquire(&s->keys, jwks_ref);
    if (k)
      return hold(l, k);
  }
  const mesh__authn_cfg_t *cfg = l->a->cfg;
  int64_t now = mesh__now_ms(), deadline = now + cfg->fetch_timeout_ms + 500;
  pthread_mutex_lock(&s->mu);
  bool want = (refetch && now - s->last_start_ms >= cfg->refetch_min_ms) ||
              (!mesh__pub_peek(&s->keys) && !s->fetching && s->done_gen == 0);
  if (want && !s->fetching) {
    s->fetching = true;
    s->last_start_ms = now;
    mesh__loop_post(l->a->m->loop, fetch_start, s);
  }
  uint64_t gen = s->done_gen;
  /* wait for the fetch we asked for, or for the first one */
  while ((want || !mesh__pub_peek(&s->keys)) && s->fetching && s->done_gen == gen &&
         mesh__now_ms() < deadline)
    timed_wait(s, deadline);
  pthread_mutex_unlock(&s->mu);
  mesh__jwks_t *k = mesh__pub_acquire(&s->keys, jwks_ref);
  return hold(l, k);
}

static const mesh__jwks_t *keys_for(const mesh__authn_rule_t *r, bool refetch,
                                    void *user) {
  lookup_t *l = user;
  switch (r->keysrc) {
  case MESH__AUTHN_KEYS_INLINE:
    return refetch ? NULL : r->inline_keys;
  case MESH__AUTHN_KEYS_SPIFFE:
    return bundle_keys(l, r->trust_domain);
  default:
    return uri_keys(l, &l->a->slots[r - l->a->cfg->rules], refetch);
  }
}

/* ---- the request check ------------------------------------------------------ */

bool mesh__authn_active(mesh_t *m) {
  return m && m->authn && m->authn->cfg && m->authn->cfg->n > 0;
}

int mesh__authn_check_request(mesh_t *m, const mesh__authn_input_t *in,
                              mesh__authn_result_t *out, mesh_status_t *st) {
  memset(out, 0, sizeof *out);
  if (!mesh__authn_active(m))
    return MESH_OK;
  struct mesh__authn *a = m->authn;
  lookup_t l = {.a = a};
  int rc = mesh__authn_decide_cached(a->cfg, in, (int64_t)time(NULL),
                                     keys_for, &l, a->cache, out);
  for (size_t i = 0; i < l.nheld; i++)
    mesh__jwks_unref(l.held[i]);
  mesh__counter_add(a->m_result[rc != MESH_OK          ? out->err
                                : out->authenticated ? MESH__JWT_OK
                                                     : MESH__JWT_ERR_COUNT],
                    1);
  if (rc != MESH_OK) {
    mesh__log(m, MESH_LOG_DEBUG, "authn_refused", "reason=%s",
              mesh__jwt_err_name(out->err));
    return mesh__fail(st, MESH_ERR_DENIED, "Jwt verification fails: %s",
                      mesh__jwt_err_name(out->err));
  }
  return MESH_OK;
}

/* ---- JWT bundles (the Workload API seam) -------------------------------------- */

/* Publish b (the caller's reference) as the bundle set.  Caller holds bmu. */
static void bundles_publish(struct mesh__authn *a, bset_t *b) {
  bset_unref(mesh__pub_swap(&a->bundles, b));
}

int mesh__authn_set_jwt_bundle(mesh_t *m, const char *td, const char *jwks,
                               size_t len) {
  if (!m || !td)
    return MESH_ERR_INVALID_ARG;
  if (!m->authn)
    return MESH_OK; /* no authn section: nothing verifies with bundles */
  struct mesh__authn *a = m->authn;
  mesh__jwks_t *k = NULL;
  const char *why = NULL;
  if (jwks && mesh__jwks_parse(jwks, len, &k, NULL, NULL, &why) != MESH_OK) {
    mesh__log(m, MESH_LOG_WARN, "authn_bundle_refused",
              "trust_domain=\"%s\" reason=\"%s\"", td, why ? why : "");
    return MESH_ERR_PARSE;
  }
  pthread_mutex_lock(&a->bmu);
  bset_t *old = mesh__pub_peek(&a->bundles); /* writers hold bmu: stable */
  size_t n = old ? old->n : 0;
  bset_t *b = n < BUNDLES_MAX || bset_find(old, td) ? bset_new(n + 1) : NULL;
  bool ok = b != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    if (strcmp(old->v[i].td, td) == 0)
      continue;
    mesh__jwks_ref(old->v[i].keys);
    ok = bset_add(b, old->v[i].td, old->v[i].keys);
  }
  if (ok && k) {
    ok = bset_add(b, td, k);
    k = NULL;
  }
  if (ok)
    bundles_publish(a, b);
  else
    bset_unref(b);
  pthread_mutex_unlock(&a->bmu);
  mesh__jwks_unref(k);
  return ok ? MESH_OK : MESH_ERR_NOMEM;
}

/* identity's hook: a new complete set from the Workload API (its stream
 * thread).  Every trust domain is parsed here, off the request path; one
 * whose JWKS does not parse keeps its previous keys (as a failed JWKS fetch
 * keeps the last good set) and is logged; a trust domain missing from the
 * set is gone, with its keys. */
static void on_bundles(mesh__jwt_bundles_t *in, void *user) {
  struct mesh__authn *a = user;
  pthread_mutex_lock(&a->bmu);
  bset_t *old = mesh__pub_peek(&a->bundles);
  if (old && old->generation == in->generation) {
    pthread_mutex_unlock(&a->bmu); /* seen (delivered at registration) */
    return;
  }
  size_t n = in->n < BUNDLES_MAX ? in->n : BUNDLES_MAX;
  bset_t *b = bset_new(n);
  for (size_t i = 0; b && i < n; i++) {
    mesh__jwks_t *k = NULL;
    const char *why = "";
    if (mesh__jwks_parse(in->v[i].jwks, in->v[i].jwks_len, &k, NULL, NULL,
                         &why) != MESH_OK) {
      mesh__log(a->m, MESH_LOG_WARN, "authn_bundle_refused",
                "trust_domain=\"%s\" reason=\"%s\" kept=%s", in->v[i].td,
                why, bset_find(old, in->v[i].td) ? "previous" : "none");
      k = bset_find(old, in->v[i].td);
      mesh__jwks_ref(k);
    }
    if (k && !bset_add(b, in->v[i].td, k)) {
      bset_unref(b);
      b = NULL;
    }
  }
  if (b) {
    b->generation = in->generation;
    bundles_publish(a, b);
    mesh__log(a->m, MESH_LOG_INFO, "authn_bundles_updated",
              "generation=%llu trust_domains=%zu",
              (unsigned long long)in->generation, b->n);
  } else {
    mesh__log(a->m, MESH_LOG_ERROR, "authn_bundles_refused",
              "reason=\"out of memory\" kept=previous");
  }
  pthread_mutex_unlock(&a->bmu);
}

/* ---- the part ------------------------------------------------------------------- */

static void authn_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  mesh__authn_cfg_build(c, cfg, path, NULL);
}

static void authn_fini(mesh_t *m) {
  struct mesh__authn *a = m->authn;
  if (!a)
    return;
  if (a->hooked) /* after this no bundle set arrives */
    mesh__identity_on_jwt_bundles(m, NULL, NULL);
  /* the loop has stopped: its timers and transfers are ours to drop */
  for (size_t i = 0; a->slots && i < a->cfg->n; i++) {
    slot_t *s = &a->slots[i];
    if (s->timer)
      mesh__loop_timer_cancel(m->loop, s->timer);
    if (s->easy) {
      mesh__curlm_remove(a->cm, s->easy);
      curl_easy_cleanup(s->easy);
    }
    free(s->body);
    mesh__jwks_unref(mesh__pub_swap(&s->keys, NULL));
    mesh__pub_fini(&s->keys);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
  }
  mesh__curlm_free(a->cm);
  free(a->slots);
  bset_unref(mesh__pub_swap(&a->bundles, NULL));
  mesh__pub_fini(&a->bundles);
  pthread_mutex_destroy(&a->bmu);
  mesh__jwt_cache_free(a->cache);
  mesh__authn_cfg_free(a->cfg);
  free(a);
  m->authn = NULL;
}

static int authn_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  struct mesh__authn *a = calloc(1, sizeof *a);
  if (!a)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  a->m = m;
  pthread_mutex_init(&a->bmu, NULL);
  mesh__pub_init(&a->bundles);
  m->authn = a;
  mesh__cfg_t c = {.first = st};
  int rc = mesh__authn_cfg_build(&c, cfg, "authn", &a->cfg);
  if (rc != MESH_OK)
    return rc == MESH_ERR_NOMEM ? mesh__fail(st, rc, "out of memory") : rc;
  if (!a->cfg)
    return MESH_OK;
  for (int i = 0; i <= MESH__JWT_ERR_COUNT; i++) {
    char labels[64];
    snprintf(labels, sizeof labels, "result=%s",
             i == MESH__JWT_ERR_COUNT ? "no_token" : mesh__jwt_err_name(i));
    a->m_result[i] = mesh__counter(m, "mesh_authn_requests_total",
                                   "Requests by request-authentication outcome "
                                   "(a verified token, none, or why one was "
                                   "refused).",
                                   labels);
  }
  a->slots = calloc(a->cfg->n ? a->cfg->n : 1, sizeof *a->slots);
  a->cm = mesh__curlm_new(m);
  a->cache = a->cfg->cache_slots ? mesh__jwt_cache_new(a->cfg->cache_slots)
                                 : NULL;
  if (!a->slots || !a->cm || (a->cfg->cache_slots && !a->cache))
    return mesh__fail(st, MESH_ERR_NOMEM, "authn: out of memory");
  mesh__jwt_cache_metrics(a->cache, m);
  for (size_t i = 0; i < a->cfg->n; i++) {
    slot_t *s = &a->slots[i];
    s->a = a;
    s->rule = &a->cfg->rules[i];
    mesh__pub_init(&s->keys);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    /* init runs before the worker starts: arming a timer is allowed */
    if (s->rule->keysrc == MESH__AUTHN_KEYS_URI) {
      s->fetching = true;
      s->last_start_ms = mesh__now_ms();
      arm(s, 0);
    }
  }
  /* the Workload API's JWT bundles, through identity (none: no source) */
  a->hooked = mesh__identity_on_jwt_bundles(m, on_bundles, a) == MESH_OK;
  mesh__log(m, MESH_LOG_INFO, "authn_loaded", "jwt_rules=%zu", a->cfg->n);
  return MESH_OK;
}

const mesh__part_t mesh__authn_part = {
    .key = "authn",
    .check = authn_check,
    .init = authn_init,
    .fini = authn_fini,
};
