/* SPDX-License-Identifier: Apache-2.0 */
/* Sockets: address parsing and formatting, non-blocking connect, waiting
 * with deadlines, errno mapping. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Split "host:port" / "[v6]:port" into host and port (0 allowed: listen on
 * any port); no I/O.  The syntax is core's (core/addr.c). */
static bool split(const char *target, char *host, size_t hlen, long *port) {
  uint16_t p;
  if (mesh__hostport_split(target, host, hlen, 0, &p) != MESH__HP_OK)
    return false;
  *port = p;
  return true;
}

bool mesh__sock_addr_syntax(const char *target) {
  char host[256];
  long port;
  return split(target, host, sizeof host, &port);
}

int mesh__sock_resolve(const char *target, bool passive,
                       struct sockaddr_storage *ss, socklen_t *len,
                       mesh_status_t *st) {
  char host[256], ports[8];
  long port;
  if (!split(target, host, sizeof host, &port))
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "\"%s\" is not \"host:port\" or \"[v6]:port\"",
                      target ? target : "(null)");
  snprintf(ports, sizeof ports, "%ld", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV |
                                       (passive ? AI_PASSIVE : 0)};
  struct addrinfo *res = NULL;
  /* Numeric first: no resolver round trip for the common case. */
  hints.ai_flags |= AI_NUMERICHOST;
  int e = getaddrinfo(host, ports, &hints, &res);
  if (e == EAI_NONAME && mesh__is_localhost(host)) {
    /* RFC 6761: loopback even without /etc/hosts, never asked of DNS */
    mesh__localhost_addrs(AF_INET, (int)port, ss, 1);
    *len = sizeof(struct sockaddr_in);
    return MESH_OK;
  }
  if (e == EAI_NONAME) {
    hints.ai_flags &= ~AI_NUMERICHOST;
    e = getaddrinfo(host, ports, &hints, &res);
  }
  if (e != 0 || !res)
    return mesh__fail(st, MESH_ERR_CONNECT, "cannot resolve \"%s\": %s", host,
                      gai_strerror(e));
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return MESH_OK;
}

void mesh__sock_format(const struct sockaddr *sa, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    port = ntohs(s6->sin6_port);
    snprintf(buf, len, "[%s]:%u", ip, port);
    return;
  }
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    port = ntohs(s4->sin_port);
  }
  snprintf(buf, len, "%s:%u", ip, port);
}

int mesh__sock_errno_code(int e, int fallback) {
  if (e == EMFILE || e == ENFILE)
    return MESH_ERR_FD_LIMIT;
  if (e == ENOMEM || e == ENOBUFS)
    return MESH_ERR_NOMEM;
  return fallback;
}

int mesh__sock_connect(const struct sockaddr *sa, socklen_t len, int *fd_out,
                       bool *in_progress, mesh_status_t *st) {
  char addr[MESH__ADDR_MAX];
  mesh__sock_format(sa, addr, sizeof addr);
  *fd_out = -1;
  *in_progress = false;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fd < 0) {
    int e = errno;
    return mesh__fail(st, mesh__sock_errno_code(e, MESH_ERR_IO),
                      "socket for %s: %s", addr, strerror(e));
  }
  int one = 1;
  /* Small request/response messages: do not wait for Nagle. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r;
  do {
    r = connect(fd, sa, len);
  } while (r != 0 && errno == EINTR);
  if (r != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return mesh__fail(st, mesh__sock_errno_code(e, MESH_ERR_CONNECT),
                      "connect to %s: %s", addr, strerror(e));
  }
  *in_progress = r != 0;
  *fd_out = fd;
  return MESH_OK;
}

int64_t mesh__deadline(int64_t timeout_ms) {
  if (timeout_ms < 0)
    return 0;
  return mesh__now_ms() + timeout_ms;
}

int mesh__sock_wait(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int wait = -1;
    if (deadline_ms > 0) {
      int64_t left = deadline_ms - mesh__now_ms();
      if (left <= 0)
        return 0;
      wait = left > 3600000 ? 3600000 : (int)left;
    }
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, wait);
    if (r > 0)
      return 1;
    if (r == 0 && deadline_ms > 0 && mesh__now_ms() >= deadline_ms)
      return 0;
    if (r < 0 && errno != EINTR)
      return MESH_ERR_IO;
  }
}
