/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, identity part only: the part's state, shared by
 * identity.c (files, rotation, accessors) and source.c (sources that push
 * credentials: the Workload API). */
#ifndef MESH_IDENTITY_IDENT_INT_H
#define MESH_IDENTITY_IDENT_INT_H

#include <sys/types.h>

#include "identity/identity.h"
#include "telemetry/telemetry.h"

#define RELOAD_INTERVAL_MS_DEF 1000
/* Unset: warn in the last third of the SVID's own lifetime (SPIRE rotates
 * at half), so that a freshly issued SVID of any lifetime never warns. */
#define EXPIRY_WARNING_S_DEF (-1)
#define WARN_EVERY_MS 300000 /* repeat expiry warnings at most every 5 min */
#define MAX_WATCHERS 16

/* What stat() says about a file: a change in any field means "re-read". */
typedef struct filesig {
  bool ok;
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns;
  int64_t ctime_ns;
} filesig_t;

/** stat() signature of path (ok false when it cannot be stat'ed). */
filesig_t mesh__filesig_of(const char *path);
bool mesh__filesig_eq(const filesig_t *a, const filesig_t *b);

typedef struct watcher {
  mesh__identity_change_fn fn;
  void *user;
} watcher_t;

struct mesh__identity {
  pthread_mutex_t mu; /* guards cur only: held for a pointer swap or read */
  mesh__creds_t *cur;
  _Atomic uint64_t generation;

  /* Everything below is guarded by reload_mu: one (re)load at a time. */
  pthread_mutex_t reload_mu;
  char *cert, *key, *bundle;
  char *bundle_map; /* SPIFFE trust bundle map (source "xds"), or NULL */
  char **tds, **paths;
  size_t nbundles;
  int64_t interval_ms, warn_s;
  filesig_t *sigs; /* cert, key, bundle (if any), bundles... */
  filesig_t *scratch; /* nsigs entries for the poll's fresh stat() */
  size_t nsigs;
  bool retry;      /* the last load failed: retried every poll */
  char last_err[sizeof(((mesh_status_t *)0)->message)];
  int64_t last_warn_ms;
  uint64_t warned_gen;
  bool warned_expired; /* the last report was svid_expired, not _expiring */
  watcher_t watchers[MAX_WATCHERS];
  size_t nwatchers;

  /* Pushing sources (source.c): "files" loads the PEM files above. */
  char source[16];
  mesh__jwt_bundles_t *jwt; /* guarded by mu */
  mesh__creds_t *trust;     /* guarded by mu: bundles only, no SVID */
  _Atomic(mesh__jwt_svid_fn) jwt_provider;
  /* The one consumer of JWT bundle sets (authn), told of every new set in
   * order: hook_mu serializes the pushes and the hook's calls. */
  pthread_mutex_t hook_mu;
  mesh__jwt_bundles_fn jwt_hook;
  void *jwt_hook_user;
  char source_state[300];   /* guarded by mu: the source's last word */
  pthread_cond_t cv;        /* signalled (with mu) on every publish */

  int64_t timer; /* loop thread only */
  /* mesh_svid_reloads_total{outcome="ok"|"error"} */
  mesh__metric_t *m_reload_ok, *m_reload_error;
};

/** Publish c (takes its reference): swap, log, watchers.  Caller holds
 *  reload_mu. */
void mesh__identity_publish(mesh_t *m, struct mesh__identity *id,
                            mesh__creds_t *c);
/** Config check of the source keys; *external: the source pushes (no files).
 *  @return true when the section is a pushing source's (files keys are
 *  then refused). */
bool mesh__identity_check_source(mesh__cfg_t *c, const cJSON *cfg,
                                 const char *path);

#endif /* MESH_IDENTITY_IDENT_INT_H */
