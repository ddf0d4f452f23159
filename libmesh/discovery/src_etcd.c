/* SPDX-License-Identifier: Apache-2.0 */
/* etcd source: list "<prefix>/", then watch from the next revision (one
 * /v3/watch stream), applying puts and deletes to a local map and publishing
 * the set; a compaction, a dropped stream or an error re-lists after a
 * backoff.  Values as etcd's Go naming package (client/v3/naming/endpoints):
 * key "<service>/<addr>", value {"Op":0,"Addr":"host:port","Metadata":...};
 * a malformed value keeps that key's last good endpoint. */
#include "discovery/discovery.h"
#include "discovery/etcd.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ETCD_BACKOFF_BASE_DEFAULT_MS 1000   /* gRPC connection backoff */
#define ETCD_BACKOFF_MAX_DEFAULT_MS 120000
#define ETCD_MAX_VALUE (1u << 20)

/* One key.  Sized to its host (a fixed 254-byte buffer and the parsed
 * value kept for every key made an etcd endpoint ~1 KB, five times the
 * host it describes). */
typedef struct kv {
  char *key;
  cJSON *doc; /* the parsed value when ep borrows from it (Metadata), or NULL */
  mesh__ep_t ep;
  uint64_t gen; /* list generation that last saw the key */
  struct kv *next;
  size_t hostcap;
  char host[]; /* ep.address */
} kv_t;

typedef struct etcd_src {
  mesh__disc_svc_t *d;
  mesh__etcd_t *cli;
  char *prefix; /* with the trailing '/' */
  char *b64_key, *b64_end;
  int64_t base_ms, max_ms;

  kv_t **tab;
  size_t tabsz, nkv;
  uint64_t gen;

  int64_t rev; /* revision the local map reflects */
  mesh__etcd_req_t *req;
  mesh__etcd_waiter_t lw; /* its place among the context's lists */
  bool lists_ref;
  int64_t retry_timer, pub_timer;
  unsigned failures;
  bool relist_now;
  char stream_err[256];
  /* malformed values seen while handling one answer or message */
  unsigned bad;
  char bad_first[256], bad_last[256];
} etcd_src_t;

/* ---- config ---------------------------------------------------------------- */

void mesh__disc_check_etcd(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {
      "type",     "endpoints", "prefix",          "ca",
      "cert",     "key",       "username",        "password",
      "timeout_ms", "backoff_base_ms", "backoff_max_ms", "resolver", NULL};
  mesh__cfg_object(c, v, path, keys);
  mesh__disc_check_resolver(c, v, path);
  mesh__etcd_check(c, v, path);
  const char *prefix;
  if (mesh__cfg_string(c, v, path, "prefix", NULL, &prefix)) {
    size_t l = strlen(prefix);
    if (l == 0 || l > 512) {
      char p[MESH__PATH_MAX];
      mesh__cfg_path(p, path, "prefix");
      mesh__cfg_error(c, p, "must be 1-512 bytes");
    }
  }
  int64_t b, mx;
  mesh__cfg_int(c, v, path, "backoff_base_ms", 1, 3600000,
                ETCD_BACKOFF_BASE_DEFAULT_MS, &b);
  mesh__cfg_int(c, v, path, "backoff_max_ms", 1, 3600000,
                ETCD_BACKOFF_MAX_DEFAULT_MS, &mx);
  if (b > mx) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "backoff_base_ms");
    mesh__cfg_error(c, p, "greater than backoff_max_ms");
  }
}

/* ---- values ------------------------------------------------------------------ */

int mesh__etcd_parse_endpoint(const char *val, size_t len, cJSON **doc,
                              mesh__ep_t *ep, char *host, size_t hostlen,
                              bool *deleted, char *err, size_t errlen) {
  *doc = NULL;
  *deleted = false;
  memset(ep, 0, sizeof *ep);
  if (len > ETCD_MAX_VALUE) {
    snprintf(err, errlen, "value larger than %u bytes", ETCD_MAX_VALUE);
    return MESH_ERR_PARSE;
  }
  mesh__json_err_t je;
  cJSON *v = mesh__json_parse(val, len, &je);
  if (!v && je.kind == MESH__JSON_DUPLICATE) {
    snprintf(err, errlen, "value: %s", je.message);
    return MESH_ERR_PARSE;
  }
  if (!cJSON_IsObject(v)) {
    snprintf(err, errlen, "value is not a JSON object");
    cJSON_Delete(v);
    return MESH_ERR_PARSE;
  }
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  int64_t op;
  mesh__cfg_int(&c, v, "", "Op", 0, 1, 0, &op);
  const char *addr = NULL;
  if (!cJSON_GetObjectItemCaseSensitive(v, "Addr")) {
    if (op == 0)
      mesh__cfg_error(&c, "Addr", "required (\"host:port\")");
  } else {
    mesh__cfg_string(&c, v, "", "Addr", NULL, &addr);
  }
  if (c.nerr == 0 && op == 0) {
    char why[128];
    if (mesh__disc_split_hostport(addr, host, hostlen, &ep->port, why,
                                  sizeof why) != MESH_OK)
      mesh__cfg_error(&c, "Addr", "%s", why);
    ep->address = host;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(v, "Metadata");
    mesh__ep_t attrs = {0};
    if (cJSON_IsObject(md) && mesh__ep_parse_attrs(&c, md, "Metadata", &attrs)) {
      ep->weight = attrs.weight;
      ep->priority = attrs.priority;
      ep->health = attrs.health;
      ep->region = attrs.region;
      ep->zone = attrs.zone;
      ep->subzone = attrs.subzone;
      ep->labels = attrs.labels;
    }
    if (!ep->weight)
      ep->weight = 1;
  }
  if (c.nerr > 0) {
    mesh__strlcpy(err, st.message, errlen);
    cJSON_Delete(v);
    return MESH_ERR_PARSE;
  }
  /* Op 1 (Delete) in a stored value: the old gRPC naming API's removal. */
  *deleted = op == 1;
  *doc = v;
  return MESH_OK;
}

/* ---- the key map ------------------------------------------------------------- */

static uint64_t hash_str(const char *s) {
  uint64_t x = 1469598103934665603ull;
  for (; *s; s++) {
    x ^= (unsigned char)*s;
    x *= 1099511628211ull;
  }
  return x;
}

static kv_t **find_slot(etcd_src_t *s, const char *key) {
  kv_t **pp = &s->tab[hash_str(key) & (s->tabsz - 1)];
  while (*pp && strcmp((*pp)->key, key) != 0)
    pp = &(*pp)->next;
  return pp;
}

static void kv_free(kv_t *k) {
  cJSON_Delete(k->doc);
  free(k->key);
  free(k);
}

static bool grow(etcd_src_t *s) {
  if (s->nkv < s->tabsz)
    return true;
  size_t nsz = s->tabsz ? s->tabsz * 2 : 64;
  kv_t **nt = calloc(nsz, sizeof *nt);
  if (!nt)
    return false;
  for (size_t i = 0; i < s->tabsz; i++) {
    while (s->tab[i]) {
      kv_t *k = s->tab[i];
      s->tab[i] = k->next;
      size_t h = hash_str(k->key) & (nsz - 1);
      k->next = nt[h];
      nt[h] = k;
    }
  }
  free(s->tab);
  s->tab = nt;
  s->tabsz = nsz;
  return true;
}

static void note_bad(etcd_src_t *s, const char *key, const char *why) {
  snprintf(s->bad++ ? s->bad_last : s->bad_first, sizeof s->bad_first,
           "%.120s: %.120s", key, why);
}

static void del_key(etcd_src_t *s, const char *key) {
  if (!s->tab)
    return;
  kv_t **pp = find_slot(s, key);
  if (*pp) {
    kv_t *k = *pp;
    *pp = k->next;
    kv_free(k);
    s->nkv--;
  }
}

/* k, or k moved to hold a host of hl bytes (*pp updated), or NULL when out
 * of memory (k unchanged). */
static kv_t *kv_fit(kv_t **pp, kv_t *k, size_t hl) {
  if (k && k->hostcap >= hl)
    return k;
  kv_t *nk = realloc(k, sizeof *k + hl);
  if (!nk)
    return NULL;
  if (!k)
    memset(nk, 0, sizeof *nk);
  nk->hostcap = hl;
  *pp = nk;
  return nk;
}

/* Apply one put of key=value.  Returns true when the map changed. */
static bool put_key(etcd_src_t *s, const char *key, const char *val,
                    size_t vlen) {
  char err[256], host[MESH__DISC_MAX_HOSTNAME + 1];
  cJSON *doc;
  mesh__ep_t ep;
  bool deleted;
  if (mesh__etcd_parse_endpoint(val, vlen, &doc, &ep, host, sizeof host,
                                &deleted, err, sizeof err) != MESH_OK) {
    note_bad(s, key, err);
    kv_t **pp = s->tab ? find_slot(s, key) : NULL;
    if (pp && *pp)
      (*pp)->gen = s->gen; /* keep the last good value through a re-list */
    return false;
  }
  if (deleted || !grow(s)) {
    cJSON_Delete(doc);
    if (deleted)
      del_key(s, key);
    else
      note_bad(s, key, "out of memory");
    return deleted;
  }
  /* ep borrows from the value only for Metadata's strings and labels */
  if (!ep.region && !ep.zone && !ep.subzone && !ep.labels) {
    cJSON_Delete(doc);
    doc = NULL;
  }
  kv_t **pp = find_slot(s, key);
  bool fresh = *pp == NULL;
  char *kc = fresh ? strdup(key) : NULL;
  kv_t *k = fresh && !kc ? NULL : kv_fit(pp, *pp, strlen(host) + 1);
  if (!k) {
    free(kc);
    cJSON_Delete(doc);
    note_bad(s, key, "out of memory");
    return false;
  }
  if (fresh) {
    k->key = kc;
    s->nkv++;
  }
  cJSON_Delete(k->doc);
  k->doc = doc;
  memcpy(k->host, host, strlen(host) + 1);
  k->ep = ep;
  k->ep.address = k->host;
  k->gen = s->gen;
  return true;
}

static void sweep(etcd_src_t *s) {
  for (size_t i = 0; i < s->tabsz; i++) {
    for (kv_t **pp = &s->tab[i]; *pp;) {
      kv_t *k = *pp;
      if (k->gen != s->gen) {
        *pp = k->next;
        kv_free(k);
        s->nkv--;
      } else {
        pp = &k->next;
      }
    }
  }
}

/* One report per answer or watch message (which may carry several events),
 * naming the first and the last bad key. */
static void report_bad(etcd_src_t *s) {
  bool more = s->bad > 1;
  if (s->bad)
    mesh__disc_error(s->d, "%u malformed value%s under %s (first: %s%s%s)",
                     s->bad, more ? "s" : "", s->prefix, s->bad_first,
                     more ? "; last: " : "", more ? s->bad_last : "");
  s->bad = 0;
}

static void publish(etcd_src_t *s) {
  mesh__ep_t *eps = calloc(s->nkv ? s->nkv : 1, sizeof *eps);
  if (!eps) {
    mesh__disc_error(s->d, "out of memory");
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < s->tabsz; i++)
    for (kv_t *k = s->tab[i]; k && n < MESH__DISC_MAX_ENDPOINTS; k = k->next)
      eps[n++] = k->ep;
  mesh__disc_apply(s->d, eps, n);
  free(eps);
}

static void pub_cb(void *user) {
  etcd_src_t *s = user;
  s->pub_timer = 0;
  publish(s);
  report_bad(s);
}

/* Decode one gateway kv ({"key","value"} base64); true if under prefix. */
static bool decode_kv(etcd_src_t *s, const cJSON *kv, char **key, char **val,
                      size_t *vlen) {
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
  size_t klen;
  *key = *val = NULL;
  *vlen = 0;
  if (!cJSON_IsString(k) || mesh__b64_decode(k->valuestring, key, &klen))
    return false;
  if (strlen(*key) != klen || strncmp(*key, s->prefix, strlen(s->prefix))) {
    free(*key);
    *key = NULL;
    return false;
  }
  /* A delete event carries no value; a put with an empty value has none
   * either (the gateway omits empty fields). */
  if (cJSON_IsString(v) && mesh__b64_decode(v->valuestring, val, vlen)) {
    free(*key);
    *key = NULL;
    return false;
  }
  return true;
}

/* ---- list, watch, retry --------------------------------------------------------- */

static void do_list(etcd_src_t *s);

static void retry_cb(void *user) {
  etcd_src_t *s = user;
  s->retry_timer = 0;
  do_list(s);
}

static void schedule_retry(etcd_src_t *s) {
  /* Full jitter (Envoy's JitteredExponentialBackOffStrategy): services
   * that failed together (a restart, timeouts) do not retry together. */
  int64_t cap = mesh__backoff_cap(s->base_ms, s->max_ms, s->failures++);
  int64_t delay = 1 + (int64_t)(mesh__rand64() % (uint64_t)cap);
  int64_t t = mesh__loop_timer(s->d->m->loop, delay, retry_cb, s);
  s->retry_timer = t > 0 ? t : 0;
}

static bool watch_msg(const cJSON *msg, void *user) {
  etcd_src_t *s = user;
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(msg, "result");
  if (err || !cJSON_IsObject(res)) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    snprintf(s->stream_err, sizeof s->stream_err, "watch: %s",
             cJSON_IsString(m) ? m->valuestring : "unexpected message");
    return false;
  }
  int64_t compact = 0;
  mesh__etcd_int(res, "compact_revision", &compact);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled")) ||
      compact > 0) {
    s->relist_now = compact > 0;
    snprintf(s->stream_err, sizeof s->stream_err,
             "watch canceled by etcd (compact_revision %lld)",
             (long long)compact);
    return false;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created")))
    s->failures = 0; /* connected and watching: backoff starts over */
  const cJSON *events = cJSON_GetObjectItemCaseSensitive(res, "events");
  bool changed = false;
  const cJSON *ev;
  cJSON_ArrayForEach(ev, events) {
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
    char *key, *val;
    size_t vlen;
    if (!decode_kv(s, kv, &key, &val, &vlen))
      continue;
    int64_t mod;
    if (mesh__etcd_int(kv, "mod_revision", &mod) && mod > s->rev)
      s->rev = mod;
    if (cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0) {
      del_key(s, key);
      changed = true;
    } else {
      changed |= put_key(s, key, val ? val : "", vlen);
    }
    free(key);
    free(val);
  }
  int64_t rev;
  const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(res, "header");
  if (mesh__etcd_int(hdr, "revision", &rev) && rev > s->rev)
    s->rev = rev;
  /* Publish from the loop, not from inside libcurl's write callback; a
   * burst of events becomes one snapshot. */
  if ((changed || s->bad) && s->pub_timer == 0) {
    int64_t t = mesh__loop_timer(s->d->m->loop, 0, pub_cb, s);
    s->pub_timer = t > 0 ? t : 0;
  }
  return true;
}

static void watch_done(int rc, const cJSON *body, const char *err, void *user) {
  (void)body;
  etcd_src_t *s = user;
  s->req = NULL;
  if (s->relist_now) {
    s->relist_now = false;
    mesh__log(s->d->m, MESH_LOG_INFO, "discovery_relist",
              "service=%s source=etcd reason=compaction", s->d->svc->name);
    do_list(s);
    return;
  }
  const char *why = rc == MESH_ERR_CLOSED && s->stream_err[0] ? s->stream_err
                                                               : err;
  mesh__disc_error(s->d, "%s", why ? why : "watch ended");
  s->stream_err[0] = '\0';
  schedule_retry(s);
}

static void do_watch(etcd_src_t *s) {
  cJSON *b = cJSON_CreateObject();
  cJSON *cr = cJSON_AddObjectToObject(b, "create_request");
  cJSON_AddStringToObject(cr, "key", s->b64_key);
  cJSON_AddStringToObject(cr, "range_end", s->b64_end);
  char rev[32];
  snprintf(rev, sizeof rev, "%lld", (long long)(s->rev + 1));
  cJSON_AddStringToObject(cr, "start_revision", rev);
  char *body = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  s->stream_err[0] = '\0';
  if (!body || mesh__etcd_stream(s->cli, "/v3/watch", body, watch_msg,
                                 watch_done, s, &s->req) != MESH_OK) {
    mesh__disc_error(s->d, "out of memory");
    schedule_retry(s);
  }
  free(body);
}

static void list_done(int rc, const cJSON *body, const char *err, void *user) {
  etcd_src_t *s = user;
  s->req = NULL;
  mesh__etcd_lists_release(s->d->m, &s->lw);
  int64_t rev = 0;
  const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(body, "header");
  if (rc == MESH_OK && !mesh__etcd_int(hdr, "revision", &rev)) {
    rc = MESH_ERR_PARSE;
    err = "range answer without header.revision";
  }
  const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(body, "kvs");
  if (rc == MESH_OK && kvs && !cJSON_IsArray(kvs)) {
    rc = MESH_ERR_PARSE;
    err = "range answer: kvs is not an array";
  }
  if (rc != MESH_OK) {
    mesh__disc_error(s->d, "list %s: %s", s->prefix, err ? err : "failed");
    schedule_retry(s);
    return;
  }
  s->gen++;
  const cJSON *kv;
  cJSON_ArrayForEach(kv, kvs) {
    char *key, *val;
    size_t vlen;
    if (!decode_kv(s, kv, &key, &val, &vlen))
      continue;
    put_key(s, key, val ? val : "", vlen);
    free(key);
    free(val);
  }
  sweep(s);
  s->rev = rev;
  publish(s);
  report_bad(s);
  do_watch(s);
}

/* Holding one of the context's list slots (etcd_lists.c): send the range. */
static void list_start(mesh__etcd_waiter_t *w) {
  etcd_src_t *s = (etcd_src_t *)(void *)((char *)w - offsetof(etcd_src_t, lw));
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "key", s->b64_key);
  cJSON_AddStringToObject(b, "range_end", s->b64_end);
  char *body = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  if (!body || mesh__etcd_call(s->cli, "/v3/kv/range", body, list_done, s,
                               &s->req) != MESH_OK) {
    mesh__etcd_lists_release(s->d->m, &s->lw);
    mesh__disc_error(s->d, "out of memory");
    schedule_retry(s);
  }
  free(body);
}

static void do_list(etcd_src_t *s) {
  mesh__etcd_lists_acquire(s->d->m, &s->lw);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int etcd_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  etcd_src_t *s = calloc(1, sizeof *s);
  if (!s)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->d = d;
  d->src = s;
  s->lw.start = list_start;
  if (mesh__etcd_lists_ref(d->m) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->lists_ref = true;
  mesh__cfg_t c = {0};
  const char *prefix;
  mesh__cfg_string(&c, d->cfg, "", "prefix", d->svc->name, &prefix);
  mesh__cfg_int(&c, d->cfg, "", "backoff_base_ms", 1, 3600000,
                ETCD_BACKOFF_BASE_DEFAULT_MS, &s->base_ms);
  mesh__cfg_int(&c, d->cfg, "", "backoff_max_ms", 1, 3600000,
                ETCD_BACKOFF_MAX_DEFAULT_MS, &s->max_ms);
  /* The naming package's target has no trailing '/': add exactly one. */
  size_t pl = strlen(prefix);
  while (pl > 0 && prefix[pl - 1] == '/')
    pl--;
  s->prefix = malloc(pl + 2);
  if (!s->prefix)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  memcpy(s->prefix, prefix, pl);
  s->prefix[pl] = '/';
  s->prefix[pl + 1] = '\0';
  /* range_end = prefix with its last byte ('/') incremented ('0'). */
  char *end = strdup(s->prefix);
  if (end)
    end[pl] = '0';
  s->b64_key = mesh__b64_encode(s->prefix, pl + 1);
  s->b64_end = end ? mesh__b64_encode(end, pl + 1) : NULL;
  free(end);
  if (!s->b64_key || !s->b64_end)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int rc = mesh__etcd_new(d->m, d->cfg, &s->cli, st);
  if (rc != MESH_OK)
    return rc;
  int64_t t = mesh__loop_timer(d->m->loop, 0, retry_cb, s);
  if (t < 0)
    return mesh__fail(st, (int)t, "cannot arm the etcd timer");
  s->retry_timer = t;
  return MESH_OK;
}

static void etcd_stop(mesh__disc_svc_t *d) {
  etcd_src_t *s = d->src;
  if (!s)
    return;
  if (s->retry_timer > 0)
    mesh__loop_timer_cancel(d->m->loop, s->retry_timer);
  if (s->pub_timer > 0)
    mesh__loop_timer_cancel(d->m->loop, s->pub_timer);
  mesh__etcd_free(s->cli); /* cancels s->req without callbacks */
  if (s->lists_ref)
    mesh__etcd_lists_unref(d->m, &s->lw);
  for (size_t i = 0; i < s->tabsz; i++) {
    while (s->tab[i]) {
      kv_t *k = s->tab[i];
      s->tab[i] = k->next;
      kv_free(k);
    }
  }
  free(s->tab);
  free(s->prefix);
  free(s->b64_key);
  free(s->b64_end);
  free(s);
  d->src = NULL;
}

const mesh__disc_source_t mesh__disc_etcd = {"etcd", etcd_start, etcd_stop};
