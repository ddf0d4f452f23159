/* SPDX-License-Identifier: Apache-2.0 */
/* "localhost" and names under ".localhost" (RFC 6761 §6.3): name
 * resolution "SHOULD always return the IP loopback address for address
 * queries and negative responses for all other query types" and "SHOULD
 * NOT send queries for localhost names" to DNS.  Every resolver of the
 * library (tls/sock.c for dial and listen addresses, discovery/resolve.c
 * for endpoint hostnames, discovery/src_dns.c for the DNS source) answers
 * these names here first, so that they work in a minimal container or a
 * chroot without /etc/hosts and never leak to a DNS server.
 *
 * The answer is 127.0.0.1, then ::1 when this host has IPv6 loopback (a
 * container with IPv6 disabled has none: an endpoint there would only
 * refuse connections).  The probe runs once. */
#include "core/core.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

bool mesh__is_localhost(const char *name) {
  if (!name)
    return false;
  size_t n = strlen(name);
  if (n > 0 && name[n - 1] == '.')
    n--; /* the root label: "localhost." is the same name */
  static const char lh[] = "localhost";
  const size_t k = sizeof lh - 1;
  if (n < k || strncasecmp(name + n - k, lh, k) != 0)
    return false;
  if (n == k)
    return true;
  /* "<label>.localhost": a dot before it, and a non-empty label before
   * the dot ("notlocalhost" and ".localhost" are not localhost names). */
  return name[n - k - 1] == '.' && n - k - 1 > 0 && name[n - k - 2] != '.';
}

static pthread_once_t v6_once = PTHREAD_ONCE_INIT;
static bool v6_ok;

static void probe_v6(void) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof sa);
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  v6_ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
}

size_t mesh__localhost_addrs(int family, int port,
                             struct sockaddr_storage *out, size_t max) {
  size_t n = 0;
  if ((family == AF_UNSPEC || family == AF_INET) && n < max) {
    struct sockaddr_in *a = (struct sockaddr_in *)&out[n++];
    memset(&out[n - 1], 0, sizeof out[n - 1]);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  if (family == AF_UNSPEC || family == AF_INET6) {
    pthread_once(&v6_once, probe_v6);
    if (v6_ok && n < max) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out[n++];
      memset(&out[n - 1], 0, sizeof out[n - 1]);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons((uint16_t)port);
      a->sin6_addr = in6addr_loopback;
    }
  }
  return n;
}
