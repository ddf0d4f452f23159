/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the etcd discovery source, in three files.
 *   src_etcd.c    one service: config, list (bounded, etcd_lists.c),
 *                 events applied in revision order, lifecycle;
 *   etcd_keys.c   one service's key map (values as etcd's Go naming
 *                 package writes them) and its publication;
 *   etcd_watch.c  what the services of one etcd cluster share: one client
 *                 (libcurl multi, connections) and one watch stream over
 *                 the range spanning their prefixes, its events dispatched
 *                 by key to the services whose prefix they fall under. */
#ifndef MESH_DISCOVERY_ETCD_SRC_H
#define MESH_DISCOVERY_ETCD_SRC_H

#include "discovery/discovery.h"
#include "discovery/etcd.h"

#define MESH__ETCD_BACKOFF_BASE_MS 1000 /* gRPC connection backoff */
#define MESH__ETCD_BACKOFF_MAX_MS 120000

typedef struct mesh__etcd_cluster mesh__etcd_cluster_t;

/* One key.  Sized to its host (a fixed 254-byte buffer and the parsed
 * value kept for every key made an etcd endpoint ~1 KB, five times the
 * host it describes). */
typedef struct mesh__etcd_kv {
  cJSON *doc; /* the parsed value when ep borrows from it (Metadata), or NULL */
  mesh__ep_t ep;
  uint64_t gen; /* list generation that last saw the key */
  struct mesh__etcd_kv *next;
  uint32_t klen;    /* strlen(key) */
  uint32_t hostcap; /* bytes for the host after the key */
  /* the key, NUL, then ep.address (hostcap bytes): one allocation per
   * endpoint (100k endpoints: a strdup'd key cost a malloc chunk each) */
  char key[];
} mesh__etcd_kv_t;

/* A watch event kept while the service lists (applied after the answer
 * when newer than the listed revision). */
typedef struct mesh__etcd_ev {
  struct mesh__etcd_ev *next;
  int64_t rev;
  bool del;
  char *val; /* NULL for a delete or an empty value */
  size_t vlen;
  char key[];
} mesh__etcd_ev_t;

typedef struct mesh__etcd_src {
  mesh__disc_svc_t *d;
  mesh__etcd_cluster_t *cl;
  char *prefix; /* with the trailing '/' */
  size_t plen;
  char *b64_key, *b64_end;
  int64_t base_ms, max_ms;

  /* the key map (etcd_keys.c) */
  mesh__etcd_kv_t **tab;
  size_t tabsz, nkv;
  uint64_t gen;

  int64_t rev;  /* revision of the last list: older events are in it */
  int64_t seen; /* revision of the last event applied */
  bool ready;   /* listed: events apply now; else they queue in pend */
  bool relist_pending; /* an event could not be kept while listing */
  mesh__etcd_ev_t *pend, **pend_tail;
  mesh__etcd_req_t *req; /* its list in flight */
  mesh__etcd_waiter_t lw; /* its place among the context's lists */
  bool lists_ref;
  int64_t retry_timer, pub_timer;
  unsigned failures;
  /* malformed values seen while handling one answer or message */
  unsigned bad;
  char bad_first[256], bad_last[256];

  struct mesh__etcd_src *next; /* the cluster's members */
  struct mesh__etcd_src *hnext; /* the cluster's prefix index chain */
} mesh__etcd_src_t;

/* ---- etcd_keys.c ------------------------------------------------------- */
/** Apply a put of key=value; true when the map changed. */
bool mesh__etcd_put_key(mesh__etcd_src_t *s, const char *key, const char *val,
                        size_t vlen);
/** Remove key; true when it was there. */
bool mesh__etcd_del_key(mesh__etcd_src_t *s, const char *key);
/** Drop the keys a list (generation s->gen) did not see. */
void mesh__etcd_sweep(mesh__etcd_src_t *s);
void mesh__etcd_keys_free(mesh__etcd_src_t *s);
/** Hand the map to discovery (mesh__disc_apply). */
void mesh__etcd_publish(mesh__etcd_src_t *s);
/** One discovery error naming the first and last malformed values. */
void mesh__etcd_report_bad(mesh__etcd_src_t *s);
/** Decode a gateway kv ({"key","value"} base64): key (NUL-free) and value
 *  (NULL when absent), both malloc'd.  @return false when malformed. */
bool mesh__etcd_decode_kv(const cJSON *kv, char **key, size_t *klen,
                          char **val, size_t *vlen);

/* ---- src_etcd.c (called by etcd_watch.c, loop thread) ------------------- */
/** A watch event under s->prefix, in revision order.  Runs inside the
 *  stream's write callback: publishes through a 0 ms timer. */
void mesh__etcd_src_event(mesh__etcd_src_t *s, const char *key, bool del,
                          const char *val, size_t vlen, int64_t rev);
/** List again (compaction, or a list older than the watch). */
void mesh__etcd_src_relist(mesh__etcd_src_t *s);

/* ---- etcd_watch.c ------------------------------------------------------ */
/** Join (or create) the cluster of s's client config. */
int mesh__etcd_cluster_join(mesh__etcd_src_t *s, mesh_status_t *st);
/** Leave: cancels s->req; the last member frees the cluster. */
void mesh__etcd_cluster_leave(mesh__etcd_src_t *s);
/** The shared client. */
mesh__etcd_t *mesh__etcd_cluster_client(mesh__etcd_cluster_t *cl);
/** s's list answered at revision rev: makes sure the watch covers every
 *  revision after it.  @return false when it cannot (the watch restarted
 *  after a compaction past rev): list again. */
bool mesh__etcd_cluster_listed(mesh__etcd_src_t *s, int64_t rev);

#endif
