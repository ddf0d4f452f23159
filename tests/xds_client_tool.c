/* SPDX-License-Identifier: Apache-2.0 */
/* tests/xds_client_tool BOOTSTRAP SECONDS [ADMIN_PORT]: a libmesh context with one
 * service "web" taking its endpoints from xDS (cluster "web-cluster",
 * through the real ADS stream to the bootstrap's server); prints a JSON
 * line {"version": V, "ports": [...]} each time the endpoint set changes,
 * until SECONDS pass or stdin closes.  Driven by tests/xds/test_xds_e2e.py. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mesh/mesh.h"

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4)
    return 2;
  char cfg[4096], admin[128] = "", ident[2048] = "";
  const char *lvl = getenv("XDS_TOOL_LOG"); /* default: errors only */
  const char *id = getenv("XDS_TOOL_IDENTITY"); /* "CERT KEY BUNDLE" */
  char ic[3][600];
  if (id && sscanf(id, "%599s %599s %599s", ic[0], ic[1], ic[2]) == 3)
    snprintf(ident, sizeof ident, "\"identity\": {\"cert\": \"%s\", "
             "\"key\": \"%s\", \"bundle\": \"%s\"}, ", ic[0], ic[1],
             ic[2]);
  if (argc == 4) /* the admin endpoint, for meshctl xds */
    snprintf(admin, sizeof admin, "\"admin\": {\"listen\": \"127.0.0.1:%d\"}, ",
             atoi(argv[3]));
  snprintf(cfg, sizeof cfg, "{%s%s\"log\": {\"level\": \"%s\"}, \"xds\": {\"bootstrap\": \"%s\"}, "
           "\"services\": {\"web\": {\"discovery\": {\"type\": \"xds\", \"cluster\": "
           "\"web-cluster\"}}}}", admin, ident, lvl ? lvl : "error", argv[1]);
  mesh_t *m;
  mesh_status_t st;
  if (mesh_new(cfg, &m, &st)) {
    printf("{\"error\": \"%s\"}\n", st.message);
    return 1;
  }
  uint64_t last = 0;
  int64_t end = (int64_t)time(NULL) + atoi(argv[2]);
  while (time(NULL) < end) {
    struct pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, 20) > 0) {
      char b[64];
      if (read(0, b, sizeof b) <= 0)
        break; /* the driver closed stdin: done */
    }
    mesh_endpoints_t *e = NULL;
    if (mesh_endpoints_get(m, "web", &e, &st) != MESH_OK)
      continue;
    uint64_t v = mesh_endpoints_version(e);
    if (v != last) {
      last = v;
      printf("{\"version\": %llu, \"ports\": [", (unsigned long long)v);
      for (size_t i = 0; i < mesh_endpoints_count(e); i++)
        printf("%s%d", i ? ", " : "", mesh_endpoint_port(e, i));
      printf("]}\n");
      fflush(stdout);
    }
    mesh_endpoints_free(e);
  }
  mesh_free(m);
  return 0;
}
