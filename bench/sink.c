/* SPDX-License-Identifier: Apache-2.0 */
/* A trace collector that throws spans away: answers every HTTP/1.1 POST
 * with 200 "{}" (what an OTLP/HTTP collector answers), keep-alive, on
 * loopback.  Config C of the benchmarks exports every span to it, so the
 * client pays the whole cost of export (record, queue, JSON, libcurl, the
 * socket) while the collector's own cost stays out of the client's CPU.
 *   sink --listen 127.0.0.1:PORT [--stats FILE]
 * On SIGTERM/SIGINT it writes "requests,bytes" to FILE (or stderr). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

#define MAX_CLIENTS 64
#define BUF_CAP (1u << 20)

struct client {
  int fd;
  char *buf;
  size_t len;
};

static volatile sig_atomic_t stop;
static unsigned long long requests, body_bytes;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* Content-Length of a request head (0 when absent). */
static long content_length(const char *hdr, size_t hlen) {
  static const char name[] = "content-length:";
  size_t nl = sizeof name - 1;
  for (size_t i = 0; i + 1 + nl <= hlen; i++)
    if (hdr[i] == '\n' && strncasecmp(hdr + i + 1, name, nl) == 0)
      return strtol(hdr + i + 1 + nl, NULL, 10);
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Answer every complete request in c->buf; -1 closes the client. */
static int serve(struct client *c) {
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: "
                           "application/json\r\nContent-Length: 2\r\n\r\n{}";
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
      return c->len < BUF_CAP ? 0 : -1;
    size_t hlen = (size_t)(end - c->buf) + 4;
    long body = content_length(c->buf, hlen);
    if (body < 0 || (size_t)body > BUF_CAP - hlen)
      return -1;
    if (c->len < hlen + (size_t)body)
      return 0;
    requests++;
    body_bytes += (unsigned long long)body;
    if (write_all(c->fd, ok, sizeof ok - 1) != 0)
      return -1;
    size_t used = hlen + (size_t)body;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
  }
}

int main(int argc, char **argv) {
  const char *listen_addr = NULL, *stats = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--listen"))
      listen_addr = argv[i + 1];
    else if (!strcmp(argv[i], "--stats"))
      stats = argv[i + 1];
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!listen_addr) {
    fprintf(stderr, "usage: sink --listen HOST:PORT [--stats FILE]\n");
    return 2;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  int lfd = bt_tcp_listen(listen_addr);
  if (lfd < 0) {
    fprintf(stderr, "sink: cannot listen on %s\n", listen_addr);
    return 1;
  }
  struct client cl[MAX_CLIENTS];
  struct pollfd pf[MAX_CLIENTS + 1];
  size_t n = 0;
  while (!stop) {
    pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    for (size_t i = 0; i < n; i++)
      pf[i + 1] = (struct pollfd){.fd = cl[i].fd, .events = POLLIN};
    if (poll(pf, n + 1, 1000) < 0)
      continue;
    if ((pf[0].revents & POLLIN) && n < MAX_CLIENTS) {
      int fd = accept(lfd, NULL, NULL);
      if (fd >= 0) {
        cl[n] = (struct client){.fd = fd, .buf = malloc(BUF_CAP)};
        if (cl[n].buf)
          n++;
        else
          close(fd);
      }
    }
    for (size_t i = n; i-- > 0;) {
      if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      struct client *c = &cl[i];
      ssize_t r = read(c->fd, c->buf + c->len, BUF_CAP - c->len);
      if (r > 0) {
        c->len += (size_t)r;
        if (serve(c) == 0)
          continue;
      } else if (r < 0 && errno == EINTR) {
        continue;
      }
      close(c->fd);
      free(c->buf);
      cl[i] = cl[--n];
    }
  }
  FILE *f = stats ? fopen(stats, "w") : stderr;
  if (f) {
    fprintf(f, "%llu,%llu\n", requests, body_bytes);
    if (f != stderr)
      fclose(f);
  }
  for (size_t i = 0; i < n; i++) {
    close(cl[i].fd);
    free(cl[i].buf);
  }
  close(lfd);
  return 0;
}
