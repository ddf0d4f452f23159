/* SPDX-License-Identifier: Apache-2.0 */
/* What the etcd-discovered services of one context share per etcd cluster
 * (same client settings): one client — one libcurl multi handle and its
 * connections — and one watch stream over the key range spanning their
 * prefixes.  Each service used to hold its own client, connection and
 * watch: ~62-67 KB of RSS per service, 180 MiB for 2,000 services.
 *
 * The watch starts after the first list, at its revision + 1, and from
 * then on covers every revision in order: a dropped stream resumes (full-
 * jitter backoff) at the revision after the last event it delivered, as
 * etcd's clientv3 does, so a member kill loses no update and re-lists
 * nothing.  A compaction past that revision cancels it: it restarts at the
 * compaction revision and every service lists again (bounded, as every
 * list, by etcd_lists.c).  Events are dispatched by key to the services
 * whose prefix the key falls under (a hash of prefixes looked up at each
 * '/' of the key); the range may hold other keys, which cost one lookup
 * per '/'.  Each service applies only events newer than its own list
 * (src_etcd.c) and queues those that arrive while it lists.
 *
 * Loop thread only (sources start on the init thread before the worker
 * thread exists and stop after it ended), so no lock. */
#include "discovery/etcd_src.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef mesh__etcd_src_t src_t;

struct mesh__etcd_cluster {
  mesh_t *m;
  char *id; /* the client settings, as JSON */
  mesh__etcd_t *cli;
  src_t *members;
  src_t **idx; /* by prefix (exact), chained through hnext */
  size_t idxsz, n;
  char *lo, *hi; /* the watched range [lo, hi) */
  mesh__etcd_req_t *watch;
  int64_t wstart;  /* first revision of the unbroken watch; 0: none yet */
  int64_t wrev;    /* revision of the last event it delivered */
  int64_t compact; /* etcd canceled it: compacted up to here */
  int64_t retry_timer, base_ms, max_ms;
  unsigned failures;
  char stream_err[256];
  struct mesh__etcd_cluster *next;
};

static uint64_t hash_mem(const char *s, size_t n) {
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    x ^= (unsigned char)s[i];
    x *= 1099511628211ull;
  }
  return x;
}

static void idx_put(mesh__etcd_cluster_t *cl, src_t *s) {
  size_t h = hash_mem(s->prefix, s->plen) & (cl->idxsz - 1);
  s->hnext = cl->idx[h];
  cl->idx[h] = s;
}

/* Room for one more member (the index at most half full). */
static bool idx_grow(mesh__etcd_cluster_t *cl) {
  if (2 * (cl->n + 1) <= cl->idxsz)
    return true;
  size_t nsz = cl->idxsz ? cl->idxsz * 2 : 16;
  src_t **nt = calloc(nsz, sizeof *nt);
  if (!nt)
    return false;
  free(cl->idx);
  cl->idx = nt;
  cl->idxsz = nsz;
  for (src_t *s = cl->members; s; s = s->next)
    idx_put(cl, s);
  return true;
}

static void idx_del(mesh__etcd_cluster_t *cl, src_t *s) {
  size_t h = hash_mem(s->prefix, s->plen) & (cl->idxsz - 1);
  for (src_t **pp = &cl->idx[h]; *pp; pp = &(*pp)->hnext) {
    if (*pp == s) {
      *pp = s->hnext;
      return;
    }
  }
}

/* Send key (klen bytes) to every member whose prefix it falls under. */
static void dispatch(mesh__etcd_cluster_t *cl, const char *key, size_t klen,
                     bool del, const char *val, size_t vlen, int64_t rev) {
  for (size_t i = 0; i < klen; i++) {
    if (key[i] != '/')
      continue;
    size_t h = hash_mem(key, i + 1) & (cl->idxsz - 1);
    for (src_t *s = cl->idx[h]; s; s = s->hnext)
      if (s->plen == i + 1 && memcmp(s->prefix, key, i + 1) == 0)
        mesh__etcd_src_event(s, key, del, val, vlen, rev);
  }
}

/* ---- the watch ------------------------------------------------------------- */

static void start_watch(mesh__etcd_cluster_t *cl);

static void retry_cb(void *user) {
  mesh__etcd_cluster_t *cl = user;
  cl->retry_timer = 0;
  start_watch(cl);
}

static void schedule_retry(mesh__etcd_cluster_t *cl) {
  int64_t cap = mesh__backoff_cap(cl->base_ms, cl->max_ms, cl->failures++);
  int64_t delay = 1 + (int64_t)(mesh__rand64() % (uint64_t)cap);
  int64_t t = mesh__loop_timer(cl->m->loop, delay, retry_cb, cl);
  cl->retry_timer = t > 0 ? t : 0;
}

static void take_events(mesh__etcd_cluster_t *cl, const cJSON *events) {
  const cJSON *ev;
  cJSON_ArrayForEach(ev, events) {
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
    char *key, *val;
    size_t klen, vlen;
    int64_t mod;
    if (!mesh__etcd_int(kv, "mod_revision", &mod) ||
        !mesh__etcd_decode_kv(kv, &key, &klen, &val, &vlen))
      continue;
    if (mod > cl->wrev)
      cl->wrev = mod;
    bool del = cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0;
    dispatch(cl, key, klen, del, val, vlen, mod);
    free(key);
    free(val);
  }
}

static bool watch_msg(const cJSON *msg, void *user) {
  mesh__etcd_cluster_t *cl = user;
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(msg, "result");
  if (err || !cJSON_IsObject(res)) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    snprintf(cl->stream_err, sizeof cl->stream_err, "watch: %s",
             cJSON_IsString(m) ? m->valuestring : "unexpected message");
    return false;
  }
  int64_t compact = 0;
  mesh__etcd_int(res, "compact_revision", &compact);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled")) ||
      compact > 0) {
    cl->compact = compact;
    snprintf(cl->stream_err, sizeof cl->stream_err,
             "watch canceled by etcd (compact_revision %lld)",
             (long long)compact);
    return false;
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"))) {
    cl->failures = 0; /* connected and watching: backoff starts over */
    for (src_t *s = cl->members; s; s = s->next)
      if (s->ready && atomic_load(&s->d->stale))
        mesh__disc_ok(s->d); /* the failure is over for what it listed */
  }
  /* header.revision is not used: on "created" it is the store's, while
   * older events may still be on their way */
  take_events(cl, cJSON_GetObjectItemCaseSensitive(res, "events"));
  return true;
}

static void watch_done(int rc, const cJSON *body, const char *err,
                       void *user) {
  (void)body;
  mesh__etcd_cluster_t *cl = user;
  cl->watch = NULL;
  if (cl->compact > 0) {
    /* revisions up to compact are gone: every member lists again, the
     * watch starts where the history does */
    cl->wstart = cl->compact;
    cl->wrev = cl->compact - 1;
    cl->compact = 0;
    for (src_t *s = cl->members; s; s = s->next)
      mesh__etcd_src_relist(s);
    start_watch(cl);
    return;
  }
  const char *why = rc == MESH_ERR_CLOSED && cl->stream_err[0] ? cl->stream_err
                                                                : err;
  for (src_t *s = cl->members; s; s = s->next)
    mesh__disc_error(s->d, "%s", why ? why : "watch ended");
  cl->stream_err[0] = '\0';
  schedule_retry(cl);
}

static void start_watch(mesh__etcd_cluster_t *cl) {
  char rev[32];
  snprintf(rev, sizeof rev, "%lld", (long long)(cl->wrev + 1));
  char *k = mesh__b64_encode(cl->lo, strlen(cl->lo));
  char *e = mesh__b64_encode(cl->hi, strlen(cl->hi));
  cJSON *b = cJSON_CreateObject();
  cJSON *cr = cJSON_AddObjectToObject(b, "create_request");
  cJSON_AddStringToObject(cr, "key", k ? k : "");
  cJSON_AddStringToObject(cr, "range_end", e ? e : "");
  cJSON_AddStringToObject(cr, "start_revision", rev);
  char *body = k && e ? cJSON_PrintUnformatted(b) : NULL;
  cJSON_Delete(b);
  free(k);
  free(e);
  cl->stream_err[0] = '\0';
  if (!body || mesh__etcd_stream(cl->cli, "/v3/watch", body, watch_msg,
                                 watch_done, cl, &cl->watch) != MESH_OK) {
    for (src_t *s = cl->members; s; s = s->next)
      mesh__disc_error(s->d, "out of memory");
    schedule_retry(cl);
  }
  free(body);
}

/* s's range lies inside [lo, hi). */
static bool inside(const mesh__etcd_cluster_t *cl, const src_t *s) {
  if (!cl->lo || !cl->hi || strcmp(s->prefix, cl->lo) < 0)
    return false;
  /* its end: the prefix with the final '/' as '0' */
  int c = strncmp(s->prefix, cl->hi, s->plen - 1);
  return c < 0 || (c == 0 && (unsigned char)cl->hi[s->plen - 1] >= '0');
}

/* Widen [lo, hi) to s's range; true when it grew. */
static bool cover(mesh__etcd_cluster_t *cl, src_t *s) {
  char *end = strdup(s->prefix);
  if (!end)
    return false; /* the watch keeps its range: s lists again (below) */
  end[s->plen - 1] = '0';
  bool grew = false;
  if (!cl->lo || strcmp(s->prefix, cl->lo) < 0) {
    char *p = strdup(s->prefix);
    if (p) {
      free(cl->lo);
      cl->lo = p;
      grew = true;
    }
  }
  if (!cl->hi || strcmp(end, cl->hi) > 0) {
    free(cl->hi);
    cl->hi = end;
    grew = true;
  } else {
    free(end);
  }
  return grew;
}

bool mesh__etcd_cluster_listed(src_t *s, int64_t rev) {
  mesh__etcd_cluster_t *cl = s->cl;
  if (cl->wstart == 0) {
    /* the first answer: the watch covers what comes after it */
    for (src_t *o = cl->members; o; o = o->next)
      cover(cl, o);
    if (!cl->lo || !cl->hi)
      return false; /* out of memory: no watch yet, s lists again */
    cl->wstart = rev + 1;
    cl->wrev = rev;
    start_watch(cl);
    return true;
  }
  if (rev + 1 < cl->wstart)
    return false; /* older than the watch's history */
  if (cover(cl, s)) {
    /* a member outside the range (joined later): watch again over the
     * wider one, from early enough for s too */
    if (rev < cl->wrev)
      cl->wrev = rev;
    if (cl->watch) {
      mesh__etcd_cancel(cl->cli, cl->watch);
      cl->watch = NULL;
      start_watch(cl);
    }
  }
  return inside(cl, s);
}

/* ---- membership ---------------------------------------------------------- */

/* The client settings of cfg (mesh__etcd_new reads these), as one string. */
static char *client_id(const cJSON *cfg) {
  static const char *const keys[] = {"endpoints", "ca",       "cert",
                                     "key",       "username", "password",
                                     "timeout_ms", NULL};
  cJSON *o = cJSON_CreateObject();
  for (size_t i = 0; o && keys[i]; i++) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[i]);
    if (v)
      cJSON_AddItemReferenceToObject(o, keys[i], v);
  }
  char *id = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return id;
}

static void cluster_free(mesh__etcd_cluster_t *cl) {
  if (cl->retry_timer > 0)
    mesh__loop_timer_cancel(cl->m->loop, cl->retry_timer);
  mesh__etcd_free(cl->cli); /* cancels the watch without callbacks */
  free(cl->idx);
  free(cl->lo);
  free(cl->hi);
  free(cl->id);
  free(cl);
}

static int cluster_new(src_t *s, char *id, mesh__etcd_cluster_t **out,
                       mesh_status_t *st) {
  mesh__etcd_cluster_t *cl = calloc(1, sizeof *cl);
  if (!cl) {
    free(id);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  cl->m = s->d->m;
  cl->id = id;
  cl->base_ms = s->base_ms; /* the first member's backoff for the watch */
  cl->max_ms = s->max_ms;
  int rc = mesh__etcd_new(cl->m, s->d->cfg, &cl->cli, st);
  if (rc != MESH_OK) {
    cluster_free(cl);
    return rc;
  }
  mesh__etcd_cluster_t **head = mesh__etcd_lists_clusters(cl->m);
  cl->next = *head;
  *head = cl;
  *out = cl;
  return MESH_OK;
}

int mesh__etcd_cluster_join(src_t *s, mesh_status_t *st) {
  mesh__etcd_cluster_t **head = mesh__etcd_lists_clusters(s->d->m);
  char *id = client_id(s->d->cfg);
  if (!head || !id) {
    free(id);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  mesh__etcd_cluster_t *cl = *head;
  while (cl && strcmp(cl->id, id) != 0)
    cl = cl->next;
  if (cl) {
    free(id);
  } else {
    int rc = cluster_new(s, id, &cl, st);
    if (rc != MESH_OK)
      return rc;
  }
  if (!idx_grow(cl)) {
    if (!cl->members) {
      *head = cl->next;
      cluster_free(cl);
    }
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  s->cl = cl;
  s->next = cl->members;
  cl->members = s;
  cl->n++;
  idx_put(cl, s);
  return MESH_OK;
}

void mesh__etcd_cluster_leave(src_t *s) {
  mesh__etcd_cluster_t *cl = s->cl;
  mesh__etcd_cancel(cl->cli, s->req);
  s->req = NULL;
  idx_del(cl, s);
  for (src_t **pp = &cl->members; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  }
  cl->n--;
  s->cl = NULL;
  if (cl->members)
    return;
  for (mesh__etcd_cluster_t **pp = mesh__etcd_lists_clusters(cl->m); *pp;
       pp = &(*pp)->next) {
    if (*pp == cl) {
      *pp = cl->next;
      break;
    }
  }
  cluster_free(cl);
}

mesh__etcd_t *mesh__etcd_cluster_client(mesh__etcd_cluster_t *cl) {
  return cl->cli;
}
