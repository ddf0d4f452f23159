/* SPDX-License-Identifier: Apache-2.0 */
/* etcd source, one service: list "<prefix>/" (bounded per context,
 * etcd_lists.c), then take the events of the cluster's shared watch
 * (etcd_watch.c) newer than the list, applying puts and deletes to the key
 * map (etcd_keys.c) and publishing the set; a failed list retries after a
 * full-jitter backoff, a compaction re-lists.  Values as etcd's Go naming
 * package (client/v3/naming/endpoints): key "<service>/<addr>", value
 * {"Op":0,"Addr":"host:port","Metadata":...}. */
#include "discovery/etcd_src.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ETCD_MAX_VALUE (1u << 20)

typedef mesh__etcd_src_t etcd_src_t;

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
                MESH__ETCD_BACKOFF_BASE_MS, &b);
  mesh__cfg_int(c, v, path, "backoff_max_ms", 1, 3600000,
                MESH__ETCD_BACKOFF_MAX_MS, &mx);
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

/* ---- list, events, retry ------------------------------------------------------- */

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

static void pub_cb(void *user) {
  etcd_src_t *s = user;
  s->pub_timer = 0;
  mesh__etcd_publish(s);
  mesh__etcd_report_bad(s);
}

static void drop_pending(etcd_src_t *s) {
  while (s->pend) {
    mesh__etcd_ev_t *e = s->pend;
    s->pend = e->next;
    free(e->val);
    free(e);
  }
  s->pend_tail = &s->pend;
}

/* Apply one event newer than the list; true when the map changed.  Events
 * of one transaction share a revision, hence >= seen (a replay after the
 * watch widened its range repeats some: puts and deletes are idempotent). */
static bool apply(etcd_src_t *s, const char *key, bool del, const char *val,
                  size_t vlen, int64_t rev) {
  if (rev <= s->rev || rev < s->seen)
    return false;
  s->seen = rev;
  if (del)
    return mesh__etcd_del_key(s, key);
  return mesh__etcd_put_key(s, key, val ? val : "", vlen);
}

void mesh__etcd_src_event(etcd_src_t *s, const char *key, bool del,
                          const char *val, size_t vlen, int64_t rev) {
  if (!s->ready) {
    /* listing: the answer's revision decides whether this one is news */
    size_t kl = strlen(key) + 1;
    mesh__etcd_ev_t *e = calloc(1, sizeof *e + kl);
    char *v = e && val ? malloc(vlen + 1) : NULL;
    if (!e || (val && !v)) {
      free(e);
      /* cannot keep it: the list must be taken again once it is back */
      s->relist_pending = true;
      return;
    }
    memcpy(e->key, key, kl);
    if (v) {
      memcpy(v, val, vlen);
      v[vlen] = '\0';
    }
    e->val = v;
    e->vlen = vlen;
    e->del = del;
    e->rev = rev;
    *s->pend_tail = e;
    s->pend_tail = &e->next;
    return;
  }
  /* Publish from the loop, not from inside libcurl's write callback; a
   * burst of events becomes one snapshot. */
  if ((apply(s, key, del, val, vlen, rev) || s->bad) && s->pub_timer == 0) {
    int64_t t = mesh__loop_timer(s->d->m->loop, 0, pub_cb, s);
    s->pub_timer = t > 0 ? t : 0;
  }
}

void mesh__etcd_src_relist(etcd_src_t *s) {
  s->ready = false;
  if (s->retry_timer > 0)
    return; /* a retry is due: it lists */
  mesh__log(s->d->m, MESH_LOG_INFO, "discovery_relist",
            "service=%s source=etcd reason=compaction", s->d->svc->name);
  do_list(s);
}

/* Take the answer: the map at rev, then the events seen since the list
 * went out that are newer. */
static void take_list(etcd_src_t *s, const cJSON *kvs, int64_t rev) {
  s->gen++;
  const cJSON *kv;
  cJSON_ArrayForEach(kv, kvs) {
    char *key, *val;
    size_t klen, vlen;
    if (!mesh__etcd_decode_kv(kv, &key, &klen, &val, &vlen))
      continue;
    if (klen >= s->plen && memcmp(key, s->prefix, s->plen) == 0)
      mesh__etcd_put_key(s, key, val ? val : "", vlen);
    free(key);
    free(val);
  }
  mesh__etcd_sweep(s);
  s->rev = rev;
  s->seen = 0;
  for (mesh__etcd_ev_t *e = s->pend; e; e = e->next)
    apply(s, e->key, e->del, e->val, e->vlen, e->rev);
  drop_pending(s);
  s->ready = true;
  s->failures = 0;
  mesh__etcd_publish(s);
  mesh__etcd_report_bad(s);
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
  if (s->relist_pending || !mesh__etcd_cluster_listed(s, rev)) {
    /* an event was lost while listing, or the watch restarted (after a
     * compaction) past this answer: it cannot be continued */
    s->relist_pending = false;
    do_list(s);
    return;
  }
  take_list(s, kvs, rev);
}

/* Holding one of the context's list slots (etcd_lists.c): send the range. */
static void list_start(mesh__etcd_waiter_t *w) {
  etcd_src_t *s = (etcd_src_t *)(void *)((char *)w - offsetof(etcd_src_t, lw));
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "key", s->b64_key);
  cJSON_AddStringToObject(b, "range_end", s->b64_end);
  char *body = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  /* the events the watch delivers from now on may be newer than the
   * answer: kept until it comes (older ones are in it) */
  s->ready = false;
  drop_pending(s);
  if (!body || mesh__etcd_call(mesh__etcd_cluster_client(s->cl),
                               "/v3/kv/range", body, list_done, s,
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

static int set_prefix(etcd_src_t *s, const char *prefix) {
  /* The naming package's target has no trailing '/': add exactly one. */
  size_t pl = strlen(prefix);
  while (pl > 0 && prefix[pl - 1] == '/')
    pl--;
  s->prefix = malloc(pl + 2);
  if (!s->prefix)
    return MESH_ERR_NOMEM;
  memcpy(s->prefix, prefix, pl);
  s->prefix[pl] = '/';
  s->prefix[pl + 1] = '\0';
  s->plen = pl + 1;
  /* range_end = prefix with its last byte ('/') incremented ('0'). */
  char *end = strdup(s->prefix);
  if (end)
    end[pl] = '0';
  s->b64_key = mesh__b64_encode(s->prefix, pl + 1);
  s->b64_end = end ? mesh__b64_encode(end, pl + 1) : NULL;
  free(end);
  return s->b64_key && s->b64_end ? MESH_OK : MESH_ERR_NOMEM;
}

static int etcd_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  etcd_src_t *s = calloc(1, sizeof *s);
  if (!s)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->d = d;
  d->src = s;
  s->lw.start = list_start;
  s->pend_tail = &s->pend;
  if (mesh__etcd_lists_ref(d->m) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->lists_ref = true;
  mesh__cfg_t c = {0};
  const char *prefix;
  mesh__cfg_string(&c, d->cfg, "", "prefix", d->svc->name, &prefix);
  mesh__cfg_int(&c, d->cfg, "", "backoff_base_ms", 1, 3600000,
                MESH__ETCD_BACKOFF_BASE_MS, &s->base_ms);
  mesh__cfg_int(&c, d->cfg, "", "backoff_max_ms", 1, 3600000,
                MESH__ETCD_BACKOFF_MAX_MS, &s->max_ms);
  if (set_prefix(s, prefix) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int rc = mesh__etcd_cluster_join(s, st);
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
  if (s->cl)
    mesh__etcd_cluster_leave(s); /* cancels s->req without callbacks */
  if (s->lists_ref)
    mesh__etcd_lists_unref(d->m, &s->lw);
  mesh__etcd_keys_free(s);
  drop_pending(s);
  free(s->prefix);
  free(s->b64_key);
  free(s->b64_end);
  free(s);
  d->src = NULL;
}

const mesh__disc_source_t mesh__disc_etcd = {"etcd", etcd_start, etcd_stop};
