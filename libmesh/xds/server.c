/* SPDX-License-Identifier: Apache-2.0 */
/* An xDS-enabled server (gRFC A36) and its RBAC policy (A41): with
 * `"xds": {"server_address": "IP:PORT"}` and a bootstrap carrying
 * server_listener_resource_name_template, the context subscribes to the
 * Listener named by the template (its "%s" replaced by the address) and
 * hands the RBAC filter of the accepted Listener, mapped onto the authz
 * policy model (rbac.c), down to authz as its external set.  Until the
 * first Listener arrives every request is denied (A36: a server does not
 * serve before its Listener); a Listener without an RBAC filter places no
 * xDS restriction; a NACKed Listener never reaches here (the last good one
 * stays in force), nor does anything while the control plane is away.
 *
 * A36 filter chains: once a Listener whose address matches server_address
 * is in force, every accepted connection goes through its chains (the
 * tls part's inpick hook): the chosen chain's DownstreamTlsContext sets
 * mTLS / TLS with an optional client certificate / plaintext (PERMISSIVE),
 * and no matching chain (and no default chain) closes the connection
 * before anything is sent.  A Listener with another address is not used:
 * not serving (connections closed, requests denied) until one matches.
 * Before the first Listener, connections follow the inbound section and
 * authz denies every request (as before). */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "tls/tls.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

/* A Listener refused only because the files of instances it names did
 * not load: applied as soon as they do (provwatch.c retries them every
 * refresh_interval), unless a newer Listener came meanwhile. */
typedef struct want {
  mesh__xds_lds_t *lds; /* its chains (own copy), or NULL: none */
  cJSON *rbac;
  char *name;
} want_t;

struct mesh__xds_srv {
  pthread_mutex_t mu;      /* guards lds, state: the loop writes, accepts
                              read (once per connection) */
  char host[64];           /* server_address, brackets removed */
  uint32_t port;
  mesh__xds_lds_t *lds;    /* the chains in force (own copy), or NULL */
  mesh__tlsgen_t **gens;   /* per chain (default chain last): credentials
                              of its instances, NULL for plaintext */
  const mesh__xds_bootstrap_t *boot; /* the part's (outlives this) */
  int state;               /* SRV_* */
  uint64_t version;        /* bumped when lds/gens are replaced */
  char why[256];           /* not serving: the reason */
  want_t want;             /* guarded by mu */
};

#define SRV_PENDING 0      /* no Listener yet: the inbound section rules */
#define SRV_SERVING 1
#define SRV_NOT_SERVING 2

/* ALLOW with a policy that has no rules: matches nothing, so denies all. */
static const char pending_json[] =
    "{\"policies\":[{\"name\":\"xds-listener-pending\",\"action\":\"ALLOW\"}]}";

void mesh__xds_server_check(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                            const mesh__xds_bootstrap_t *b) {
  const char *addr = NULL;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "server_address");
  if (!mesh__cfg_string(c, cfg, path, "server_address", NULL, &addr) || !addr)
    return;
  const char *colon = strrchr(addr, ':');
  if (!*addr || !colon || colon == addr || !colon[1] ||
      strspn(colon + 1, "0123456789") != strlen(colon + 1))
    mesh__cfg_error(c, p, "\"%s\": want IP:PORT (the address the server "
                    "listens on, as gRFC A36 names its Listener)", addr);
  else if (b && !b->server_listener_template)
    mesh__cfg_error(c, p, "the bootstrap has no "
                    "server_listener_resource_name_template");
}

char *mesh__xds_server_name(const char *tmpl, const char *addr) {
  const char *pct = strstr(tmpl, "%s");
  size_t n = strlen(tmpl) + strlen(addr) + 1;
  char *out = malloc(n);
  if (!out)
    return NULL;
  if (!pct) {
    memcpy(out, tmpl, strlen(tmpl) + 1);
    return out;
  }
  snprintf(out, n, "%.*s%s%s", (int)(pct - tmpl), tmpl, addr, pct + 2);
  return out;
}

static int inpick(mesh_t *m, const struct sockaddr *local,
                  const struct sockaddr *peer, mesh__tlsgen_t **gen, char *why,
                  size_t cap) {
  mesh__xds_srv_t *s = mesh__xds_srv_of(m);
  if (!s)
    return MESH__INPICK_CONFIG;
  int pick = MESH__INPICK_CONFIG;
  pthread_mutex_lock(&s->mu);
  if (s->state == SRV_NOT_SERVING) {
    snprintf(why, cap, "%s", s->why);
    pick = MESH__INPICK_CLOSE;
  } else if (s->state == SRV_SERVING) {
    const mesh__xds_fchain_t *c = mesh__xds_fcm_pick(s->lds, local, peer);
    if (!c) {
      snprintf(why, cap, "no filter chain of listener \"%.100s\" matches "
               "(gRFC A36)", s->lds->name);
      pick = MESH__INPICK_CLOSE;
    } else {
      pick = c->tls == MESH__XDS_CHAIN_MTLS  ? MESH__INPICK_MTLS
             : c->tls == MESH__XDS_CHAIN_TLS ? MESH__INPICK_TLS
                                             : MESH__INPICK_PLAIN;
      size_t i = c == s->lds->defchain ? s->lds->nchains
                                       : (size_t)(c - s->lds->chains);
      *gen = s->gens[i];
      if (*gen)
        atomic_fetch_add(&(*gen)->refs, 1);
    }
  }
  pthread_mutex_unlock(&s->mu);
  return pick;
}

/* Does the Listener's address name server_address? (absent: yes) */
static bool same_address(const mesh__xds_srv_t *s, const mesh__xds_lds_t *l) {
  if (!l->address[0])
    return true;
  if (l->port != s->port)
    return false;
  uint8_t a[16], b[16];
  int fam = strchr(s->host, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(fam, s->host, a) == 1 && inet_pton(fam, l->address, b) == 1)
    return memcmp(a, b, fam == AF_INET ? 4 : 16) == 0;
  return strcmp(s->host, l->address) == 0;
}

static mesh__xds_lds_t *copy_chains(const mesh__xds_lds_t *l) {
  mesh__xds_lds_t *c = calloc(1, sizeof *c);
  if (!c || !(c->name = strdup(l->name)))
    goto fail;
  c->server = true;
  if (l->nchains && !(c->chains = calloc(l->nchains, sizeof *c->chains)))
    goto fail;
  for (; c->nchains < l->nchains; c->nchains++)
    if (mesh__xds_fchain_copy(&c->chains[c->nchains], &l->chains[c->nchains]))
      goto fail;
  if (l->defchain) {
    mesh__xds_fchain_t d;
    if (mesh__xds_fchain_copy(&d, l->defchain))
      goto fail;
    if (!(c->defchain = malloc(sizeof d))) {
      mesh__xds_fchain_fini(&d);
      goto fail;
    }
    *c->defchain = d;
  }
  return c;
fail:
  mesh__xds_lds_free(c);
  return NULL;
}

static void gens_free(mesh__tlsgen_t **g, size_t n) {
  for (size_t i = 0; g && i < n; i++)
    mesh__tlsgen_release(g[i]);
  free(g);
}

static size_t nall(const mesh__xds_lds_t *l) {
  return l ? l->nchains + 1 : 0;
}

static void want_free(want_t *w) {
  mesh__xds_lds_free(w->lds);
  cJSON_Delete(w->rbac);
  free(w->name);
  *w = (want_t){0};
}

/* *w (taken, zeroed after) becomes s's wanted Listener. */
static void want_put(mesh__xds_srv_t *s, want_t *w) {
  pthread_mutex_lock(&s->mu);
  want_t old = s->want;
  s->want = *w;
  pthread_mutex_unlock(&s->mu);
  *w = (want_t){0};
  want_free(&old);
}

/* Does any chain of l take credentials from instance inst? */
static bool lds_names(const mesh__xds_lds_t *l, const char *inst) {
  const char *x;
  for (size_t k = 0; (x = mesh__xds_lds_instance(l, k)); k++)
    if (!strcmp(x, inst))
      return true;
  return false;
}

void mesh__xds_server_free(mesh_t *m, mesh__xds_srv_t *s) {
  if (!s)
    return;
  mesh__tls_set_inpick(m, NULL);
  want_free(&s->want);
  pthread_mutex_destroy(&s->mu);
  gens_free(s->gens, nall(s->lds));
  mesh__xds_lds_free(s->lds);
  free(s);
}

/* Credentials of every TLS chain of l (A29: the instances it names),
 * gens[nchains] the default chain's.  MESH_OK or the first failure. */
static int chain_gens(mesh_t *m, const mesh__xds_srv_t *s,
                      const mesh__xds_lds_t *l, mesh__tlsgen_t ***out,
                      mesh_status_t *st) {
  mesh__tlsgen_t **g = calloc(nall(l), sizeof *g);
  if (!g)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < nall(l); i++) {
    const mesh__xds_fchain_t *c = i < l->nchains ? &l->chains[i] : l->defchain;
    if (!c || c->tls == MESH__XDS_CHAIN_PLAIN)
      continue;
    mesh_status_t why;
    int rc = mesh__xds_prov_gen(m, s->boot, c->cert_instance, c->ca_instance,
                                &g[i], &why);
    if (rc != MESH_OK) {
      gens_free(g, nall(l));
      return mesh__fail(st, rc, "filter chain \"%.60s\": %s", c->name,
                        why.message);
    }
  }
  *out = g;
  return MESH_OK;
}

static int srv_new(mesh_t *m, const char *addr,
                   const mesh__xds_bootstrap_t *b, mesh__xds_srv_t **out) {
  mesh__xds_srv_t *s = calloc(1, sizeof *s);
  if (!s)
    return MESH_ERR_NOMEM;
  pthread_mutex_init(&s->mu, NULL);
  s->boot = b;
  const char *colon = strrchr(addr, ':');
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  snprintf(s->host, sizeof s->host, "%.*s", (int)hl, h);
  s->port = (uint32_t)strtoul(colon + 1, NULL, 10);
  *out = s;
  mesh__tls_set_inpick(m, inpick);
  return MESH_OK;
}

int mesh__xds_server_start(mesh_t *m, mesh__xds_ads_t *ads,
                           const mesh__xds_bootstrap_t *b, const cJSON *cfg,
                           char **name, mesh__xds_srv_t **srv,
                           mesh_status_t *st) {
  *name = NULL;
  const char *addr = cJSON_GetStringValue(
      cJSON_GetObjectItemCaseSensitive(cfg, "server_address"));
  if (!addr || !b->server_listener_template)
    return MESH_OK;
  if (!(*name = mesh__xds_server_name(b->server_listener_template, addr)) ||
      srv_new(m, addr, b, srv) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  cJSON *doc = cJSON_Parse(pending_json);
  mesh_status_t ast;
  int rc = doc ? mesh__authz_set_external(m, doc, *name, &ast)
               : MESH_ERR_NOMEM;
  cJSON_Delete(doc);
  if (rc)
    return mesh__fail(st, rc, "xds: server listener \"%s\": %s", *name,
                      rc == MESH_ERR_NOMEM ? "out of memory" : ast.message);
  rc = mesh__xds_ads_watch(ads, MESH__XDS_T_LDS, *name);
  if (rc)
    return mesh__fail(st, rc, "xds: server listener \"%s\": %s", *name,
                      mesh_strerror(rc));
  mesh__log(m, MESH_LOG_INFO, "xds_server_listener",
            "listener=\"%s\" state=pending", *name);
  return MESH_OK;
}

/* A36: the Listener names another address: not serving. */
static void not_serving(mesh_t *m, mesh__xds_srv_t *s, const char *name,
                        const mesh__xds_lds_t *l) {
  pthread_mutex_lock(&s->mu);
  s->state = SRV_NOT_SERVING;
  snprintf(s->why, sizeof s->why, "listener \"%.40s\" has address %.40s:%u, "
           "not server_address %.40s:%u (gRFC A36: not serving)", name,
           l->address, l->port, s->host, s->port);
  pthread_mutex_unlock(&s->mu);
  want_t none = {0};
  want_put(s, &none); /* the newest Listener decides */
  cJSON *doc = cJSON_Parse(pending_json);
  mesh_status_t st;
  if (doc)
    mesh__authz_set_external(m, doc, name, &st);
  cJSON_Delete(doc);
  mesh__log(m, MESH_LOG_ERROR, "xds_server_listener",
            "listener=\"%s\" state=not_serving reason=\"%s\"", name, s->why);
}

/* c (taken on success) and its credentials in force for new connections,
 * rbac too.  Nothing changes when any of it cannot be built: MESH_OK or
 * the failure in st, *creds telling whether loading files was it. */
static int install(mesh_t *m, mesh__xds_srv_t *s, const char *name,
                   mesh__xds_lds_t *c, const cJSON *rbac, bool *creds,
                   mesh_status_t *st) {
  mesh__tlsgen_t **g = NULL;
  int rc = chain_gens(m, s, c, &g, st);
  /* CONFIG: the bootstrap's instance lacks a file: no load can heal it */
  *creds = rc != MESH_OK && rc != MESH_ERR_NOMEM && rc != MESH_ERR_CONFIG;
  if (rc == MESH_OK)
    rc = mesh__authz_set_external(m, rbac, name, st);
  if (rc != MESH_OK) {
    gens_free(g, nall(c));
    return rc;
  }
  pthread_mutex_lock(&s->mu);
  mesh__xds_lds_t *old = s->lds;
  mesh__tlsgen_t **oldg = s->gens;
  s->lds = c;
  s->gens = g;
  s->state = SRV_SERVING;
  s->version++;
  pthread_mutex_unlock(&s->mu);
  gens_free(oldg, nall(old));
  mesh__xds_lds_free(old);
  return MESH_OK;
}

static void applied(mesh_t *m, const char *name, const mesh__xds_lds_t *l,
                    bool rbac, const char *inst) {
  mesh__log(m, MESH_LOG_INFO, "xds_server_listener",
            "listener=\"%s\" state=applied rbac=%s chains=%zu "
            "default_chain=%s%s%s", name, rbac ? "yes" : "none", l->nchains,
            l->defchain ? "yes" : "no", inst ? " loaded_instance=" : "",
            inst ? inst : "");
}

/* l's chains and their credentials in force for new connections; the
 * RBAC too.  Nothing changes when any of it cannot be built; when only
 * an instance's files failed, l is applied once they load (want). */
static void serve(mesh_t *m, mesh__xds_srv_t *s, const char *name,
                  const mesh__xds_lds_t *l) {
  mesh__xds_lds_t *c = copy_chains(l);
  mesh_status_t st;
  bool creds = false;
  int rc = c ? install(m, s, name, c, l->rbac, &creds, &st)
             : mesh__fail(&st, MESH_ERR_NOMEM, "out of memory");
  want_t w = {0};
  if (rc == MESH_OK) {
    want_put(s, &w); /* the newest Listener decides */
    applied(m, name, l, l->rbac != NULL, NULL);
    return;
  }
  mesh__log(m, MESH_LOG_ERROR, "xds_server_listener",
            "listener=\"%s\" state=kept error=\"%s\"%s", name, st.message,
            creds ? " retry=every_refresh_interval" : "");
  if (creds) {
    w = (want_t){.lds = c, .name = strdup(name),
                 .rbac = l->rbac ? cJSON_Duplicate(l->rbac, true) : NULL};
    c = NULL;
    if (!w.name || (l->rbac && !w.rbac))
      want_free(&w);
  }
  mesh__xds_lds_free(c);
  bool wanted = w.lds != NULL;
  want_put(s, &w);
  const char *x;
  for (size_t k = 0; wanted && (x = mesh__xds_lds_instance(l, k)); k++)
    mesh__xds_provwatch_retry(m, x);
}

void mesh__xds_server_on_lds(mesh_t *m, mesh__xds_srv_t *s, const char *name,
                             const mesh__xds_lds_t *l) {
  if (!l->server) {
    /* an api_listener under the server's name: not a server Listener
     * (A36); the policy in force stays */
    mesh__log(m, MESH_LOG_WARN, "xds_server_listener",
              "listener=\"%s\" state=ignored reason=\"has an api_listener: "
              "not a server Listener; the policy in force stays\"", name);
    return;
  }
  if (!same_address(s, l)) {
    not_serving(m, s, name, l);
    return;
  }
  serve(m, s, name, l);
}

/* Does chain c take credentials from instance inst? */
static bool names(const mesh__xds_fchain_t *c, const char *inst) {
  return c && c->tls != MESH__XDS_CHAIN_PLAIN && c->cert_instance &&
         (!strcmp(c->cert_instance, inst) ||
          !strcmp(c->ca_instance ? c->ca_instance : c->cert_instance, inst));
}

/* The wanted Listener w (taken) again, its instance inst retried. */
static int retry_want(mesh_t *m, mesh__xds_srv_t *s, want_t *w,
                      const char *inst, bool loud, mesh_status_t *st) {
  bool creds;
  const mesh__xds_lds_t *l = w->lds;
  int rc = install(m, s, w->name, w->lds, w->rbac, &creds, st);
  if (rc == MESH_OK) {
    w->lds = NULL; /* in force now */
    applied(m, w->name, l, w->rbac != NULL, inst);
    want_free(w);
    return MESH_OK;
  }
  if (loud)
    mesh__log(m, MESH_LOG_ERROR, "xds_server_listener", "listener=\"%s\" "
              "instance=%s state=kept error=\"%s\"", w->name, inst,
              st->message);
  pthread_mutex_lock(&s->mu);
  if (!s->want.lds && creds) { /* no newer Listener meanwhile */
    s->want = *w;
    *w = (want_t){0};
  }
  pthread_mutex_unlock(&s->mu);
  want_free(w);
  return rc;
}

/* The files of instance inst changed, or failed last time: a Listener
 * waiting for them is applied; else new credentials for every chain in
 * force naming it, built outside the lock (file I/O) from a copy of the
 * chains; swapped in only if no Listener was applied meanwhile.  Any
 * chain that cannot be loaded keeps all chains' last good credentials;
 * connections that already took a generation keep it (reference). */
int mesh__xds_server_rotate(mesh_t *m, mesh__xds_srv_t *s, const char *inst,
                            bool loud, mesh_status_t *st) {
  mesh__ok(st);
  if (!s)
    return MESH_OK;
  pthread_mutex_lock(&s->mu);
  want_t w = {0};
  if (s->want.lds && lds_names(s->want.lds, inst)) {
    w = s->want;
    s->want = (want_t){0};
  }
  mesh__xds_lds_t *c = s->lds && !w.lds ? copy_chains(s->lds) : NULL;
  uint64_t ver = s->version;
  pthread_mutex_unlock(&s->mu);
  if (w.lds)
    return retry_want(m, s, &w, inst, loud, st);
  mesh__tlsgen_t **g = c ? calloc(nall(c), sizeof *g) : NULL;
  size_t k = 0;
  int rc = MESH_OK;
  for (size_t i = 0; g && i < nall(c) && rc == MESH_OK; i++) {
    const mesh__xds_fchain_t *f = i < c->nchains ? &c->chains[i] : c->defchain;
    if (!names(f, inst))
      continue;
    rc = mesh__xds_prov_gen(m, s->boot, f->cert_instance, f->ca_instance,
                            &g[i], st);
    k++;
  }
  if (g && k && rc == MESH_OK) {
    pthread_mutex_lock(&s->mu);
    bool same = s->version == ver;
    for (size_t i = 0; same && i < nall(c); i++)
      if (g[i]) { /* the old one is released below */
        mesh__tlsgen_t *old = s->gens[i];
        s->gens[i] = g[i];
        g[i] = old;
      }
    pthread_mutex_unlock(&s->mu);
    mesh__log(m, MESH_LOG_INFO, "xds_server_listener", "listener=\"%s\" "
              "instance=%s state=%s chains=%zu", c->name, inst,
              same ? "rotated" : "superseded", k);
  } else if (k && rc != MESH_OK && loud) {
    mesh__log(m, MESH_LOG_ERROR, "xds_server_listener", "listener=\"%s\" "
              "instance=%s state=kept error=\"%s\"", c->name, inst,
              st->message);
  }
  if (c && !g)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  gens_free(g, nall(c));
  mesh__xds_lds_free(c);
  return rc;
}
