/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl ca: the development CA.  Mints an ECDSA P-256 CA for a trust
 * domain and X.509-SVIDs signed by it, through the library's own
 * mesh_ca_init() / mesh_ca_issue(). */
#include "meshctl.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CA_TTL_DEFAULT "87600h" /* 10 years: MESH_CA_LIFETIME_DEFAULT_S */
#define SVID_TTL_DEFAULT "24h"  /* Istio's workload certificate TTL */

static const char ca_help[] =
    "usage: meshctl ca <init|issue> [options]\n"
    "\n"
    "A development CA for demos and tests (ECDSA P-256, SHA-256).\n"
    "  init   create a self-signed CA for a trust domain\n"
    "  issue  issue an X.509-SVID for a SPIFFE ID, signed by that CA\n"
    "\n"
    "meshctl ca <init|issue> --help shows the options of each.\n";

static const char init_help[] =
    "usage: meshctl ca init --td TRUST_DOMAIN [--out-cert FILE] "
    "[--out-key FILE]\n"
    "                       [--ttl DURATION] [--force]\n"
    "\n"
    "Create a self-signed CA whose certificate carries the URI SAN\n"
    "spiffe://TRUST_DOMAIN (basicConstraints CA:TRUE, keyCertSign, cRLSign).\n"
    "\n"
    "  --td TRUST_DOMAIN  trust domain, e.g. example.org (required)\n"
    "  --out-cert FILE    CA certificate, PEM (default ca.crt)\n"
    "  --out-key FILE     CA private key, PEM, mode 0600 (default ca.key)\n"
    "  --ttl DURATION     lifetime, e.g. 87600h, 365d, 90m (default "
    CA_TTL_DEFAULT ")\n"
    "  --force            overwrite an existing key file\n";

static const char issue_help[] =
    "usage: meshctl ca issue --id SPIFFE_ID --out-cert FILE --out-key FILE\n"
    "                        [--ca-cert FILE] [--ca-key FILE] "
    "[--ttl DURATION]\n"
    "                        [--dns NAME]... [--chain] [--force]\n"
    "\n"
    "Issue an X.509-SVID: exactly one URI SAN (the SPIFFE ID), CA:FALSE,\n"
    "keyUsage digitalSignature, extendedKeyUsage serverAuth + clientAuth,\n"
    "a fresh P-256 key, valid from one minute ago for DURATION.\n"
    "\n"
    "  --id SPIFFE_ID    e.g. spiffe://example.org/ns/default/sa/web "
    "(required)\n"
    "  --out-cert FILE   SVID certificate, PEM (required)\n"
    "  --out-key FILE    SVID private key, PEM, mode 0600 (required)\n"
    "  --ca-cert FILE    CA certificate (default ca.crt)\n"
    "  --ca-key FILE     CA private key (default ca.key)\n"
    "  --ttl DURATION    lifetime, e.g. 24h, 90m, 7d (default "
    SVID_TTL_DEFAULT ")\n"
    "  --dns NAME        add a DNS SAN beside the URI SAN (repeatable, at most\n"
    "                    16): for gRPC and HTTPS clients that check a host\n"
    "                    name, e.g. --dns localhost\n"
    "  --chain           append the CA certificate to --out-cert\n"
    "  --force           overwrite an existing key file\n";

static int usage_error(const char *msg, const char *help) {
  fprintf(stderr, "meshctl ca: %s\n\n%s", msg, help);
  return MESHCTL_USAGE;
}

static bool exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static bool ttl_arg(const char *s, int64_t *out) {
  if (meshctl_parse_duration(s, out) && *out > 0)
    return true;
  fprintf(stderr,
          "meshctl ca: invalid --ttl \"%s\" (expected e.g. 24h, 90m, 7d)\n",
          s);
  return false;
}

static void utc(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  if (strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    out[0] = '\0';
}

static int ca_init(int argc, char **argv) {
  const char *td = NULL, *cert = "ca.crt", *key = "ca.key";
  const char *ttl = CA_TTL_DEFAULT;
  bool force = false, help = false;
  const meshctl_opt_t opts[] = {
      {"td", &td, NULL},    {"out-cert", &cert, NULL}, {"out-key", &key, NULL},
      {"ttl", &ttl, NULL},  {"force", NULL, &force},   {NULL, NULL, NULL},
  };
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help))
    return usage_error("invalid arguments", init_help);
  if (help) {
    fputs(init_help, stdout);
    return MESHCTL_OK;
  }
  if (!td)
    return usage_error("--td is required", init_help);
  int64_t life;
  if (!ttl_arg(ttl, &life))
    return MESHCTL_USAGE;
  if (!force && exists(key)) {
    fprintf(stderr, "meshctl ca: %s exists (use --force to replace it)\n",
            key);
    return MESHCTL_FAIL;
  }
  mesh_status_t st;
  int rc = mesh_ca_init(td, life, cert, key, &st);
  if (rc != MESH_OK)
    return meshctl_report(rc, &st);
  char na[32];
  utc((int64_t)time(NULL) + life, na);
  printf("CA for spiffe://%s valid until %s: %s, %s\n", td, na, cert, key);
  return MESHCTL_OK;
}

/* Take every "--dns NAME" / "--dns=NAME" out of argv (the option parser
 * keeps one value per option).  @return the new argc, or -1 when a --dns
 * lacks its value or there are too many. */
static int take_dns(int argc, char **argv, const char **dns, size_t *ndns) {
  int out = 0;
  *ndns = 0;
  for (int i = 0; i < argc; i++) {
    const char *v = NULL;
    if (!strcmp(argv[i], "--dns")) {
      if (i + 1 >= argc)
        return -1;
      v = argv[++i];
    } else if (!strncmp(argv[i], "--dns=", 6)) {
      v = argv[i] + 6;
    }
    if (!v) {
      argv[out++] = argv[i];
      continue;
    }
    if (*ndns >= MESH_CA_DNS_MAX)
      return -1;
    dns[(*ndns)++] = v;
  }
  return out;
}

static int ca_issue(int argc, char **argv) {
  const char *id = NULL, *cert = NULL, *key = NULL;
  const char *ca_cert = "ca.crt", *ca_key = "ca.key", *ttl = SVID_TTL_DEFAULT;
  bool chain = false, force = false, help = false;
  const meshctl_opt_t opts[] = {
      {"id", &id, NULL},           {"out-cert", &cert, NULL},
      {"out-key", &key, NULL},     {"ca-cert", &ca_cert, NULL},
      {"ca-key", &ca_key, NULL},   {"ttl", &ttl, NULL},
      {"chain", NULL, &chain},     {"force", NULL, &force},
      {NULL, NULL, NULL},
  };
  const char *dns[MESH_CA_DNS_MAX];
  size_t ndns = 0;
  argc = take_dns(argc, argv, dns, &ndns);
  if (argc < 0)
    return usage_error("--dns needs a value (at most 16 of them)",
                       issue_help);
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help))
    return usage_error("invalid arguments", issue_help);
  if (help) {
    fputs(issue_help, stdout);
    return MESHCTL_OK;
  }
  if (!id || !cert || !key)
    return usage_error("--id, --out-cert and --out-key are required",
                       issue_help);
  int64_t life;
  if (!ttl_arg(ttl, &life))
    return MESHCTL_USAGE;
  if (!force && exists(key)) {
    fprintf(stderr, "meshctl ca: %s exists (use --force to replace it)\n",
            key);
    return MESHCTL_FAIL;
  }
  int64_t now = (int64_t)time(NULL);
  mesh_status_t st;
  int rc = mesh_ca_issue_dns(
      ca_cert, ca_key, id, dns, ndns, now - 60, now + life,
      chain ? MESH_CA_ISSUE_CHAIN : MESH_CA_ISSUE_DEFAULT, cert, key, &st);
  if (rc != MESH_OK)
    return meshctl_report(rc, &st);
  char na[32];
  utc(now + life, na);
  printf("SVID %s valid until %s: %s, %s\n", id, na, cert, key);
  for (size_t i = 0; i < ndns; i++)
    printf("  DNS SAN %s\n", dns[i]);
  return MESHCTL_OK;
}

int meshctl_ca(int argc, char **argv) {
  if (argc < 2) {
    fputs(ca_help, stderr);
    return MESHCTL_USAGE;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
    fputs(ca_help, stdout);
    return MESHCTL_OK;
  }
  if (!strcmp(sub, "init"))
    return ca_init(argc - 1, argv + 1);
  if (!strcmp(sub, "issue"))
    return ca_issue(argc - 1, argv + 1);
  fprintf(stderr, "meshctl ca: unknown subcommand \"%s\"\n\n%s", sub, ca_help);
  return MESHCTL_USAGE;
}
