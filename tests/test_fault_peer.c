/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the fault and soak tests; see test_fault_peer.h. */
#include "test_fault_peer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ---- echo server -------------------------------------------------------------- */

static void *serve(void *arg) {
  fp_conn_t *slot = arg;
  mesh_conn_t *c = slot->c;
  char buf[8192];
  /* Bounded: a connection lives at most this many reads (far more than
   * any test sends on one). */
  for (int i = 0; i < 1000000; i++) {
    long n = mesh_conn_read(c, buf, sizeof buf);
    if (n <= 0 || mesh_conn_write_all(c, buf, (size_t)n) != MESH_OK)
      break;
  }
  mesh_conn_close(c);
  atomic_store(&slot->done, true);
  return NULL;
}

/* A slot whose thread has ended (joined here) or was never used. */
static fp_conn_t *free_slot(fp_server_t *s) {
  for (int i = 0; i < FP_MAX_CONNS; i++) {
    fp_conn_t *k = &s->conns[i];
    if (k->used && atomic_load(&k->done)) {
      pthread_join(k->th, NULL);
      k->used = false;
    }
    if (!k->used)
      return k;
  }
  return NULL;
}

static void *accept_main(void *arg) {
  fp_server_t *s = arg;
  while (!atomic_load(&s->stop)) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_accept(s->l, 50, &c, &st);
    if (rc == MESH_ERR_TIMEOUT)
      continue;
    if (rc != MESH_OK) {
      /* the message first: a reader that sees the count sees it too */
      pthread_mutex_lock(&s->mu);
      snprintf(s->last_error, sizeof s->last_error, "%s", st.message);
      pthread_mutex_unlock(&s->mu);
      atomic_fetch_add(&s->refused, 1);
      if (rc == MESH_ERR_FD_LIMIT)
        fp_sleep_ms(5); /* the pending socket stays queued: do not spin */
      continue;
    }
    atomic_fetch_add(&s->accepted, 1);
    fp_conn_t *k = free_slot(s);
    if (k) {
      k->c = c;
      atomic_store(&k->done, false);
      k->used = pthread_create(&k->th, NULL, serve, k) == 0;
    }
    if (!k || !k->used) {
      atomic_fetch_add(&s->busy, 1);
      mesh_conn_close(c);
    }
  }
  return NULL;
}

bool fp_server_start(fp_server_t *s, mesh_t *m, int port) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->m = m;
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  mesh_status_t st;
  if (mesh_listen(m, addr, &s->l, &st) != MESH_OK) {
    fprintf(stderr, "fp_server_start: %s\n", st.message);
    pthread_mutex_destroy(&s->mu);
    return false;
  }
  s->port = mesh_listener_port(s->l);
  if (pthread_create(&s->th, NULL, accept_main, s) != 0) {
    mesh_listener_close(s->l);
    s->l = NULL;
    pthread_mutex_destroy(&s->mu);
    return false;
  }
  return true;
}

void fp_server_stop(fp_server_t *s) {
  if (!s->l)
    return;
  atomic_store(&s->stop, true);
  pthread_join(s->th, NULL);
  mesh_listener_close(s->l);
  s->l = NULL;
  for (int i = 0; i < FP_MAX_CONNS; i++)
    if (s->conns[i].used)
      pthread_join(s->conns[i].th, NULL);
  pthread_mutex_destroy(&s->mu);
}

/* ---- log capture ------------------------------------------------------------ */

void fp_log_init(fp_log_t *l) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
}

void fp_log_fini(fp_log_t *l) { pthread_mutex_destroy(&l->mu); }

void fp_log_fn(int level, const char *line, void *user) {
  fp_log_t *l = user;
  (void)level;
  pthread_mutex_lock(&l->mu);
  if (l->n < FP_LOG_LINES) {
    snprintf(l->lines[l->n], sizeof l->lines[0], "%s", line);
    l->at_ms[l->n] = fp_wall_ms();
    l->n++;
  }
  l->total++;
  pthread_mutex_unlock(&l->mu);
}

int fp_log_find(fp_log_t *l, const char *a, const char *b, char *out,
                size_t len, int64_t *at_ms) {
  int found = -1;
  pthread_mutex_lock(&l->mu);
  for (int i = 0; i < l->n && found < 0; i++) {
    if ((a && !strstr(l->lines[i], a)) || (b && !strstr(l->lines[i], b)))
      continue;
    found = i;
    if (out)
      snprintf(out, len, "%s", l->lines[i]);
    if (at_ms)
      *at_ms = l->at_ms[i];
  }
  pthread_mutex_unlock(&l->mu);
  return found;
}

/* ---- process state ----------------------------------------------------------- */

int fp_count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int n = 0;
  for (struct dirent *e = readdir(d); e; e = readdir(d))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

long fp_rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  long size = 0, rss = 0;
  int ok = fscanf(f, "%ld %ld", &size, &rss) == 2;
  fclose(f);
  return ok ? rss * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

int fp_slow(void) {
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload"))
    return 20;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 3;
#else
  return 1;
#endif
}

int64_t fp_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fp_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- sockets ---------------------------------------------------------------- */

const char *fp_addr(int port) {
  static char ring[8][32];
  static _Atomic int k;
  char *b = ring[atomic_fetch_add(&k, 1) % 8];
  snprintf(b, 32, "127.0.0.1:%d", port);
  return b;
}

int fp_raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -1;
}

/* ---- identities ------------------------------------------------------------- */

bool fp_certs(void) {
  static int done; /* 1 ok, -1 failed */
  if (done)
    return done > 0;
  done = th_svid(FP_TD, FP_SERVER_ID, "fserver", 0, 0, 0) &&
                 th_svid(FP_TD, FP_CLIENT_ID, "fclient", 0, 0, 0)
             ? 1
             : -1;
  return done > 0;
}

void fp_identity(char *buf, size_t len, const char *name, const char *extra) {
  char crt[300], key[300];
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  char c[512], k[512];
  snprintf(c, sizeof c, "%s", th_path(crt));
  snprintf(k, sizeof k, "%s", th_path(key));
  snprintf(buf, len,
           "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"%s}",
           c, k, th_ca(FP_TD), extra ? extra : "");
}
