/* SPDX-License-Identifier: Apache-2.0 */
/* Benchmark echo server: fixed-size request in, same-size response out.
 *   echo_srv --mode tcp|tls|mesh --listen 127.0.0.1:PORT [--size 1024]
 *            [--ca F --cert F --key F] [--config mesh.json] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

int main(int argc, char **argv) {
  bt_opts_t o = {.mode = "tcp"};
  const char *listen_addr = "127.0.0.1:7000";
  size_t size = 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--mode"))
      o.mode = v;
    else if (!strcmp(k, "--listen"))
      listen_addr = v;
    else if (!strcmp(k, "--size"))
      size = (size_t)atol(v);
    else if (!strcmp(k, "--ca"))
      o.ca = v;
    else if (!strcmp(k, "--cert"))
      o.cert = v;
    else if (!strcmp(k, "--key"))
      o.key = v;
    else if (!strcmp(k, "--config"))
      o.config = v;
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  bt_ctx_t *c;
  if (bt_ctx_new(&o, &c) != 0)
    return 1;
  int rc = bt_serve(c, listen_addr, size);
  bt_ctx_free(c);
  return rc ? 1 : 0;
}
