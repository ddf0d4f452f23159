/* SPDX-License-Identifier: Apache-2.0 */
/* Active health checks on the worker loop against real endpoints: TCP
 * connect, mTLS handshake (a plain TCP listener fails it), HTTP GET over
 * mTLS expecting 2xx; thresholds in both directions; picks avoid unhealthy
 * endpoints; a passing check returns a host ejected by outlier detection. */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "resilience/resilience.h"
#include "test_call_backend.h"

#define SVC "echo"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static mesh_t *client(const int *ports, size_t n, const char *extra) {
  char eps[512] = "";
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(eps + off, sizeof eps - off,
                            "%s{\"address\":\"127.0.0.1\",\"port\":%d}",
                            i ? "," : "", ports[i]);
  char json[8192];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"" TCB_BACKEND_ID "\"],\"discovery\":{\"type\":"
           "\"static\",\"endpoints\":[%s]}%s}}}",
           tcb_client_identity(), eps, extra);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "client config: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

static mesh__host_t *host_of(mesh_t *m, int port) {
  mesh__snapshot_t *s = mesh__res_snapshot(mesh__service_find(m, SVC));
  mesh__host_t *h = NULL;
  for (size_t i = 0; s && i < s->n; i++)
    if (s->hosts[i]->port == port)
      h = s->hosts[i];
  mesh__snap_release(s);
  return h;
}

/* Wait until h's verdict is want; returns the ms it took or -1.  A verdict
 * takes some number of checks: the wait is bounded by that, not by a time
 * window (TSan and a loaded machine make checks slower); max_ms is the
 * generous cap of a broken run (TH_CAP_MS), reported loudly. */
static int wait_health(mesh__host_t *h, int want, int max_ms) {
  int64_t t0 = mesh__now_ms();
  while (mesh__now_ms() - t0 < max_ms) {
    if (atomic_load(&h->hc_health) == want)
      return (int)(mesh__now_ms() - t0);
    sleep_ms(10);
  }
  fprintf(stderr, "\n  TIME CAP: health verdict %d not reached after %d ms\n",
          want, max_ms);
  return -1;
}

static void test_health_tcp(void) {
  CU_ASSERT_FATAL(tcb_init());
  tcb_t up, later;
  CU_ASSERT_FATAL(tcb_start(&up, "up", "good", 0));
  int down = th_free_port();
  int ports[] = {up.port, down};
  mesh_t *m = client(ports, 2,
                     ",\"health_check\":{\"type\":\"tcp\",\"interval_ms\":100,"
                     "\"timeout_ms\":300,\"healthy_threshold\":2,"
                     "\"unhealthy_threshold\":2}");
  mesh__host_t *hu = host_of(m, up.port), *hd = host_of(m, down);
  /* the first check decides for a new endpoint */
  CU_ASSERT(wait_health(hu, MESH__HEALTH_HEALTHY, TH_CAP_MS) >= 0);
  CU_ASSERT(wait_health(hd, MESH__HEALTH_UNHEALTHY, TH_CAP_MS) >= 0);
  /* calls only reach the healthy one: no connect failure to retry */
  for (int i = 0; i < 6; i++) {
    tcb_reply_t r;
    CU_ASSERT_EQUAL(mesh_call_do(m, SVC, NULL, tcb_try, &r, NULL), MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.name, "up");
  }
  mesh__res_svc_t *rs = mesh__service_find(m, SVC)->res;
  CU_ASSERT_EQUAL(atomic_load(&rs->retries), 0);
  /* the down port comes up: healthy after 2 passing checks (>= 1 interval) */
  CU_ASSERT_FATAL(tcb_start(&later, "later", "good", down));
  int ms = wait_health(hd, MESH__HEALTH_HEALTHY, TH_CAP_MS);
  CU_ASSERT(ms >= 0);
  /* the up one dies: unhealthy after 2 failing checks */
  tcb_kill(&up);
  ms = wait_health(hu, MESH__HEALTH_UNHEALTHY, TH_CAP_MS);
  CU_ASSERT(ms >= 0);
  tcb_reply_t r;
  CU_ASSERT_EQUAL(mesh_call_do(m, SVC, NULL, tcb_try, &r, NULL), MESH_OK);
  CU_ASSERT_STRING_EQUAL(r.name, "later");
  mesh_free(m);
  tcb_stop(&later);
}

static void test_health_tls(void) {
  CU_ASSERT_FATAL(tcb_init());
  tcb_t good;
  CU_ASSERT_FATAL(tcb_start(&good, "good", "good", 0));
  /* a plain TCP listener: the connect succeeds, the handshake never does */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  CU_ASSERT_EQUAL_FATAL(listen(fd, 8), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  int plain = ntohs(sa.sin_port);
  int ports[] = {good.port, plain};
  mesh_t *m = client(ports, 2,
                     ",\"health_check\":{\"type\":\"tls\",\"interval_ms\":100,"
                     "\"timeout_ms\":200}");
  CU_ASSERT(wait_health(host_of(m, good.port), MESH__HEALTH_HEALTHY, TH_CAP_MS) >=
            0);
  CU_ASSERT(wait_health(host_of(m, plain), MESH__HEALTH_UNHEALTHY, TH_CAP_MS) >= 0);
  mesh_free(m);
  close(fd);

  /* the wrong identity fails the check as well */
  m = client(ports, 1,
             ",\"health_check\":{\"type\":\"tls\",\"interval_ms\":100}");
  CU_ASSERT(wait_health(host_of(m, good.port), MESH__HEALTH_HEALTHY, TH_CAP_MS) >=
            0);
  mesh_free(m);
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"spiffe://example.org/ns/t/sa/other\"],\"discovery\":"
           "{\"type\":\"static\",\"endpoints\":[{\"address\":\"127.0.0.1\","
           "\"port\":%d}]},\"health_check\":{\"type\":\"tls\","
           "\"interval_ms\":100}}}}",
           tcb_client_identity(), good.port);
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, NULL), MESH_OK);
  CU_ASSERT(wait_health(host_of(m, good.port), MESH__HEALTH_UNHEALTHY, TH_CAP_MS) >=
            0);
  mesh_free(m);

  /* without an SVID of our own the check cannot run: no verdict at all,
   * rather than every endpoint marked unhealthy */
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"services\":{\"" SVC "\":{"
           "\"discovery\":{\"type\":\"static\",\"endpoints\":[{\"address\":"
           "\"127.0.0.1\",\"port\":%d}]},\"health_check\":{\"type\":\"tls\","
           "\"interval_ms\":50}}}}",
           good.port);
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, NULL), MESH_OK);
  sleep_ms(300);
  CU_ASSERT_EQUAL(atomic_load(&host_of(m, good.port)->hc_health),
                  MESH__HEALTH_UNKNOWN);
  mesh_free(m);
  tcb_stop(&good);
}

static void test_health_http(void) {
  CU_ASSERT_FATAL(tcb_init());
  tcb_t a;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "good", 0));
  int ports[] = {a.port};
  mesh_t *m = client(ports, 1,
                     ",\"health_check\":{\"type\":\"http\",\"path\":"
                     "\"/healthz\",\"interval_ms\":100,\"timeout_ms\":500,"
                     "\"unhealthy_threshold\":2},\"lb\":{\"panic_threshold\":0}");
  mesh__host_t *h = host_of(m, a.port);
  CU_ASSERT(wait_health(h, MESH__HEALTH_HEALTHY, TH_CAP_MS) >= 0);
  /* 503 from the health endpoint: unhealthy after two checks */
  CU_ASSERT_FATAL(tcb_mode(m, &a, "error"));
  CU_ASSERT(wait_health(h, MESH__HEALTH_UNHEALTHY, TH_CAP_MS) >= 0);
  /* without panic routing nothing is left to pick */
  tcb_reply_t r;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_call_do(m, SVC, NULL, tcb_try, &r, &st),
                  MESH_ERR_NO_ENDPOINTS);
  /* and back */
  CU_ASSERT_FATAL(tcb_mode(m, &a, "good"));
  CU_ASSERT(wait_health(h, MESH__HEALTH_HEALTHY, TH_CAP_MS) >= 0);
  CU_ASSERT_EQUAL(mesh_call_do(m, SVC, NULL, tcb_try, &r, &st), MESH_OK);
  mesh_free(m);
  tcb_stop(&a);
}

static void test_health_unejects(void) {
  CU_ASSERT_FATAL(tcb_init());
  tcb_t a, b;
  CU_ASSERT_FATAL(tcb_start(&a, "a", "error", 0));
  CU_ASSERT_FATAL(tcb_start(&b, "b", "good", 0));
  int ports[] = {a.port, b.port};
  /* ejected for a minute by one error; a passing TCP check returns it */
  mesh_t *m = client(ports, 2,
                     ",\"outlier_detection\":{\"consecutive_5xx\":1,"
                     "\"base_ejection_time_ms\":60000},\"health_check\":{"
                     "\"type\":\"tcp\",\"interval_ms\":150},\"retry\":{"
                     "\"retry_on\":[]},\"lb\":{\"policy\":\"round_robin\"}");
  mesh__host_t *h = host_of(m, a.port);
  CU_ASSERT(wait_health(h, MESH__HEALTH_HEALTHY, TH_CAP_MS) >= 0);
  for (int i = 0; i < 4 && !mesh__od_ejected(h, mesh__now_ms()); i++) {
    tcb_reply_t r;
    mesh_call_do(m, SVC, NULL, tcb_try, &r, NULL);
  }
  CU_ASSERT_TRUE_FATAL(mesh__od_ejected(h, mesh__now_ms()));
  int64_t t0 = mesh__now_ms();
  while (mesh__od_ejected(h, mesh__now_ms()) && mesh__now_ms() - t0 < 2000)
    sleep_ms(10);
  CU_ASSERT_FALSE(mesh__od_ejected(h, mesh__now_ms()));
  CU_ASSERT(mesh__now_ms() - t0 < 1000);
  mesh_free(m);
  tcb_stop(&a);
  tcb_stop(&b);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("health", NULL, NULL);
  CU_add_test(s, "health_tcp", test_health_tcp);
  CU_add_test(s, "health_tls", test_health_tls);
  CU_add_test(s, "health_http", test_health_http);
  CU_add_test(s, "health_unejects", test_health_unejects);
}

int main(int argc, char **argv) {
  int rc = tcb_maybe_backend(argc, argv);
  if (rc >= 0)
    return rc;
  return th_run_suites("test_health", add);
}
