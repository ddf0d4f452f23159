/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl identity: the current X.509-SVID of a config (SPIFFE ID, serial,
 * not-after), its trust bundles and its source, from any source (PEM
 * files, the SPIFFE Workload API, an xDS certificate provider).  meshctl jwt: a JWT-SVID for an
 * audience from the Workload API. */
#include "meshctl.h"
#include "identity/identity.h"
#include "workload/workload.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char identity_help[] =
    "usage: meshctl identity --config FILE [--timeout DURATION]\n"
    "\n"
    "Load the config's identity and print the current X.509-SVID (SPIFFE ID,\n"
    "serial in hex, not-after), the trust domains of its bundles and the\n"
    "source (files, workload_api, or xds: the bootstrap's certificate\n"
    "provider instance, named on the provider line).  With the Workload\n"
    "API, wait at most --timeout (default 10s) for the agent's first SVID;\n"
    "without an agent\n"
    "it fails naming the socket.  With \"bundles_only\": true (FetchX509Bundles)\n"
    "it prints the trust domains of the bundles and no SVID.\n";

static const char jwt_help[] =
    "usage: meshctl jwt --config FILE --audience AUD [--timeout DURATION]\n"
    "\n"
    "Fetch a JWT-SVID for audience AUD from the SPIFFE Workload API of the\n"
    "config (identity.source \"workload_api\") and print it on one line.\n"
    "--timeout bounds the call (default: identity.timeout_ms, 10s).\n";

/* The config text with identity.wait_ms / timeout_ms set for a tool that
 * must answer within ms (only for the Workload API source).  Malloc'd. */
static char *with_timeout(const char *path, int64_t ms, bool wait) {
  size_t len;
  char *text = meshctl_read_config(path, &len);
  if (!text) {
    fprintf(stderr, "meshctl: cannot read %s\n", path);
    return NULL;
  }
  cJSON *root = cJSON_ParseWithLength(text, len);
  cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "identity");
  const cJSON *src = cJSON_GetObjectItemCaseSensitive(id, "source");
  if (!cJSON_IsString(src) || strcmp(src->valuestring, "workload_api")) {
    cJSON_Delete(root);
    return text; /* errors, if any, come from mesh_new with their path */
  }
  cJSON_DeleteItemFromObjectCaseSensitive(id, "timeout_ms");
  cJSON_AddNumberToObject(id, "timeout_ms", (double)ms);
  if (wait && !cJSON_GetObjectItemCaseSensitive(id, "wait_ms"))
    cJSON_AddNumberToObject(id, "wait_ms", (double)ms);
  char *out = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  free(text);
  return out;
}

static mesh_t *open_mesh(const char *config, const char *timeout, bool wait) {
  int64_t secs = 10;
  if (timeout && (!meshctl_parse_duration(timeout, &secs) || secs <= 0 ||
                  secs > 600)) {
    fprintf(stderr, "meshctl: --timeout: expected 1s..10m\n");
    return NULL;
  }
  char *text = with_timeout(config, secs * 1000, wait);
  if (!text)
    return NULL;
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(text, &m, &st);
  free(text);
  if (rc != MESH_OK) {
    meshctl_report(rc, &st);
    return NULL;
  }
  return m;
}

/* The source, and where it takes the SVID from. */
static void print_source(mesh_t *m) {
  printf("source:     %s\n", mesh__identity_source(m));
  if (mesh__wl_endpoint(m)[0])
    printf("endpoint:   %s\n", mesh__wl_endpoint(m));
  char prov[300];
  mesh__identity_source_state(m, prov, sizeof prov);
  if (!strcmp(mesh__identity_source(m), "xds") && prov[0])
    printf("provider:   %s\n", prov);
}

static void print_creds(mesh_t *m, const mesh__creds_t *c) {
  print_source(m);
  printf("spiffe_id:  %s\n", c->id);
  /* lower-case hex without separators, as `openssl x509 -serial` */
  char ser[128] = "";
  mesh__x509_serial_text(mesh__x509_chain_at(c->chain, 0), ser, sizeof ser);
  printf("serial:     ");
  for (const char *p = ser; *p; p++)
    if (*p != ':')
      putchar(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
  char na[32];
  time_t t = (time_t)c->not_after;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(na, sizeof na, "%Y-%m-%dT%H:%M:%SZ", &tm);
  printf("\nnot_after:  %s\n", na);
  printf("bundles:   ");
  for (size_t i = 0; i < c->nbundles; i++)
    printf(" %s", c->bundles[i].td);
  printf("\n");
}

int meshctl_identity(int argc, char **argv) {
  const char *config = NULL, *timeout = NULL;
  bool help = false;
  const meshctl_opt_t opts[] = {{"config", &config, NULL},
                                {"timeout", &timeout, NULL},
                                {NULL, NULL, NULL}};
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help) || (!help && !config)) {
    fputs(identity_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(identity_help, stdout);
    return MESHCTL_OK;
  }
  mesh_t *m = open_mesh(config, timeout, true);
  if (!m)
    return MESHCTL_FAIL;
  mesh__creds_t *c = mesh__creds_acquire(m);
  mesh__creds_t *t = c ? NULL : mesh__identity_trust_acquire(m);
  int rc = MESHCTL_OK;
  if (c) {
    print_creds(m, c);
    mesh__creds_release(c);
  } else if (t) { /* "bundles_only": trust bundles, no own SVID */
    printf("source:     %s\n", mesh__identity_source(m));
    if (mesh__wl_endpoint(m)[0])
      printf("endpoint:   %s\n", mesh__wl_endpoint(m));
    printf("spiffe_id:  (none: bundles only)\nbundles:   ");
    for (size_t i = 0; i < t->nbundles; i++)
      printf(" %s", t->bundles[i].td);
    printf("\n");
    mesh__creds_release(t);
  } else {
    fprintf(stderr, "meshctl identity: %s has no SVID (no identity "
                    "section, or the source sent none)\n", config);
    rc = MESHCTL_FAIL;
  }
  mesh_free(m);
  return rc;
}

int meshctl_jwt(int argc, char **argv) {
  const char *config = NULL, *timeout = NULL, *aud = NULL;
  bool help = false;
  const meshctl_opt_t opts[] = {{"config", &config, NULL},
                                {"audience", &aud, NULL},
                                {"timeout", &timeout, NULL},
                                {NULL, NULL, NULL}};
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help) ||
      (!help && (!config || !aud))) {
    fputs(jwt_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(jwt_help, stdout);
    return MESHCTL_OK;
  }
  mesh_t *m = open_mesh(config, timeout, false);
  if (!m)
    return MESHCTL_FAIL;
  char *tok = NULL;
  mesh_status_t st;
  int rc = mesh__wl_jwt_svid(m, aud, &tok, &st);
  if (rc == MESH_OK)
    printf("%s\n", tok);
  free(tok);
  mesh_free(m);
  return rc == MESH_OK ? MESHCTL_OK : meshctl_report(rc, &st);
}
