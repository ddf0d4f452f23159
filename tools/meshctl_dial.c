/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl dial: open an mTLS connection with a config's identity, print
 * who answered (SPIFFE ID, TLS version, cipher), then send standard input
 * (or --send TEXT) and print the reply until the peer closes.  A debugging
 * aid in the spirit of `openssl s_client`, on the library's own dial. */
#include "meshctl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char dial_help[] =
    "usage: meshctl dial --config FILE --to HOST:PORT|SERVICE\n"
    "                    [--peer PATTERN] [--alpn LIST] [--timeout DURATION]\n"
    "                    [--send TEXT] [--show-cert] [--count N]\n"
    "\n"
    "Dial with mutual TLS using the identity in the config, print the peer's\n"
    "SPIFFE ID, then send --send TEXT (or standard input until EOF), close\n"
    "our side, and print what the peer sends until it closes.\n"
    "\n"
    "  --config FILE      libmesh JSON config with an identity section\n"
    "  --to TARGET        \"host:port\", \"[v6]:port\" or a configured service\n"
    "  --peer PATTERN     accept only this peer (e.g. spiffe://example.org/x,\n"
    "                     example.org/ns/default/sa/*); default: any ID that\n"
    "                     verifies against a bundle in the config\n"
    "  --alpn LIST        ALPN protocols, e.g. h2,http/1.1\n"
    "  --timeout DURATION dial budget, e.g. 2s (default: the config's)\n"
    "  --send TEXT        send TEXT instead of standard input\n"
    "  --show-cert        print the peer's certificate chain (PEM)\n"
    "  --count N          dial N times in a row with --send TEXT (the later\n"
    "                     dials resume the first one's TLS session)\n";

#define READ_TIMEOUT_MS 10000

/* Read all of fd (standard input) into a malloc'd buffer; NULL on error. */
static char *slurp_fd(int fd, size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf)
      return NULL;
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      free(buf);
      return NULL;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (n == cap) {
      if (cap > (64u << 20)) {
        free(buf);
        return NULL;
      }
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb)
        free(buf);
      buf = nb;
    }
  }
  *len = n;
  return buf;
}

static void print_peer(mesh_conn_t *c, const char *to, bool show_cert) {
  printf("connected to %s at %s\n", mesh_conn_peer_id(c),
         mesh_conn_peer_addr(c)[0] ? mesh_conn_peer_addr(c) : to);
  printf("  %s %s%s%s%s\n", mesh_conn_tls_version(c), mesh_conn_cipher(c),
         mesh_conn_alpn(c)[0] ? " alpn=" : "", mesh_conn_alpn(c),
         mesh_conn_resumed(c) ? " (resumed)" : "");
  if (show_cert) {
    char pem[16384];
    if (mesh_conn_peer_chain_pem(c, pem, sizeof pem) > 0)
      fputs(pem, stdout);
  }
  fflush(stdout);
}

static int exchange(mesh_conn_t *c, const char *data, size_t len) {
  if (len && mesh_conn_write_all(c, data, len) != MESH_OK) {
    fprintf(stderr, "meshctl dial: write: %s\n", mesh_conn_errmsg(c));
    return MESHCTL_FAIL;
  }
  mesh_conn_shutdown(c);
  mesh_conn_set_timeouts(c, READ_TIMEOUT_MS, READ_TIMEOUT_MS);
  char buf[4096];
  for (;;) {
    long n = mesh_conn_read(c, buf, sizeof buf);
    if (n == 0)
      return MESHCTL_OK;
    if (n < 0) {
      fprintf(stderr, "meshctl dial: read: %s\n", mesh_conn_errmsg(c));
      return MESHCTL_FAIL;
    }
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
  }
}

int meshctl_dial(int argc, char **argv) {
  const char *config = NULL, *to = NULL, *peer = NULL, *alpn = NULL;
  const char *timeout = NULL, *send = NULL, *count_s = NULL;
  bool show_cert = false, help = false;
  const meshctl_opt_t opts[] = {
      {"config", &config, NULL}, {"to", &to, NULL},
      {"peer", &peer, NULL},     {"alpn", &alpn, NULL},
      {"timeout", &timeout, NULL}, {"send", &send, NULL},
      {"count", &count_s, NULL},
      {"show-cert", NULL, &show_cert}, {NULL, NULL, NULL}};
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help)) {
    fputs(dial_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(dial_help, stdout);
    return MESHCTL_OK;
  }
  if (!config || !to) {
    fprintf(stderr, "meshctl dial: --config and --to are required\n\n%s",
            dial_help);
    return MESHCTL_USAGE;
  }
  long count = 1;
  if (count_s) {
    char *end;
    count = strtol(count_s, &end, 10);
    if (*end || count <= 0 || count > 1000 || !send) {
      fprintf(stderr, "meshctl dial: --count needs 1-1000 and --send\n");
      return MESHCTL_USAGE;
    }
  }
  int64_t secs = 0;
  if (timeout && (!meshctl_parse_duration(timeout, &secs) || secs <= 0 ||
                  secs > 3600)) {
    fprintf(stderr, "meshctl dial: invalid --timeout \"%s\"\n", timeout);
    return MESHCTL_USAGE;
  }
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  if (!o || (peer && mesh_dial_opts_add_peer(o, peer) != MESH_OK) ||
      (alpn && mesh_dial_opts_set_alpn(o, alpn) != MESH_OK) ||
      (secs && mesh_dial_opts_set_timeout(o, (int)secs * 1000) != MESH_OK)) {
    fprintf(stderr, "meshctl dial: invalid --peer or --alpn\n");
    mesh_dial_opts_free(o);
    return MESHCTL_USAGE;
  }
  mesh_status_t st;
  mesh_t *m;
  int rc = mesh_new_from_file(config, &m, &st);
  if (rc != MESH_OK) {
    mesh_dial_opts_free(o);
    return meshctl_report(rc, &st);
  }
  int ret = MESHCTL_OK;
  for (long i = 0; i < count && ret == MESHCTL_OK; i++) {
    mesh_conn_t *c;
    rc = mesh_dial(m, to, o, &c, &st);
    if (rc != MESH_OK) {
      ret = meshctl_report(rc, &st);
      break;
    }
    print_peer(c, to, show_cert);
    size_t len = send ? strlen(send) : 0;
    char *in = send ? NULL : slurp_fd(0, &len);
    ret = send || in ? exchange(c, send ? send : in, len) : MESHCTL_FAIL;
    if (send && count > 1)
      putchar('\n');
    free(in);
    mesh_conn_close(c);
  }
  mesh_dial_opts_free(o);
  mesh_free(m);
  return ret;
}
