/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery parsers (no I/O): addresses, endpoint JSON, DNS answer TTLs,
 * etcd values, base64, the streamed-JSON splitter, backoff. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"
#include "discovery/dnsmsg.h"
#include "discovery/etcd.h"

/* ---- addresses -------------------------------------------------------------- */

struct addr_case {
  const char *s;
  bool ok;
};

static const struct addr_case addr_cases[] = {
  {"127.10.0.1", true},        {"::1", true},
  {"fe80::1", true},         {"payments", true},
  {"a.b-c.d_e", true},       {"127.10.0.256", false},
  {"1.2.3", false},          {"", false},
  {"a..b", false},           {".a", false},
  {"a b", false},            {"x:80", false},
  {"[::1]", false},          {"a/b", false},
};

static void test_mesh__disc_valid_address(void) {
  for (size_t i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
    if (mesh__disc_valid_address(addr_cases[i].s) != addr_cases[i].ok)
      fprintf(stderr, "address case %zu (%s)\n", i, addr_cases[i].s);
    CU_ASSERT_EQUAL(mesh__disc_valid_address(addr_cases[i].s),
                    addr_cases[i].ok);
  }
  char longname[300];
  memset(longname, 'a', sizeof longname);
  longname[254] = '\0'; /* 254 > 253 */
  for (int i = 60; i < 254; i += 61)
    longname[i] = '.';
  CU_ASSERT_FALSE(mesh__disc_valid_address(longname));
  longname[253] = '\0';
  CU_ASSERT_TRUE(mesh__disc_valid_address(longname));
  char label64[70];
  memset(label64, 'b', 64);
  label64[64] = '\0';
  CU_ASSERT_FALSE(mesh__disc_valid_address(label64));
  CU_ASSERT_FALSE(mesh__disc_valid_address(NULL));
}

struct hp_case {
  const char *s;
  int rc;
  const char *host;
  uint16_t port;
  const char *err;
};

static const struct hp_case hp_cases[] = {
  {"127.10.0.1:80", MESH_OK, "127.10.0.1", 80, NULL},
  {"[::1]:8443", MESH_OK, "::1", 8443, NULL},
  {"svc.local:65535", MESH_OK, "svc.local", 65535, NULL},
  {"127.10.0.1", MESH_ERR_PARSE, NULL, 0, "expected host:port"},
  {"::1:80", MESH_ERR_PARSE, NULL, 0, "IPv6 in brackets"},
  {"[::1]80", MESH_ERR_PARSE, NULL, 0, "expected [ipv6]:port"},
  {"[x]:80", MESH_ERR_PARSE, NULL, 0, "not an IPv6 address"},
  {"h:0", MESH_ERR_PARSE, NULL, 0, "port must be 1-65535"},
  {"h:65536", MESH_ERR_PARSE, NULL, 0, "port must be 1-65535"},
  {"h:8o", MESH_ERR_PARSE, NULL, 0, "port must be 1-65535"},
  {"h:", MESH_ERR_PARSE, NULL, 0, "port must be 1-65535"},
  {":80", MESH_ERR_PARSE, NULL, 0, "host empty"},
  {"bad host:80", MESH_ERR_PARSE, NULL, 0, "not an IP address or hostname"},
  {"", MESH_ERR_PARSE, NULL, 0, "empty address"},
};

static void test_mesh__disc_split_hostport(void) {
  for (size_t i = 0; i < sizeof hp_cases / sizeof hp_cases[0]; i++) {
    const struct hp_case *tc = &hp_cases[i];
    char host[64] = "", err[128] = "";
    uint16_t port = 0;
    int rc = mesh__disc_split_hostport(tc->s, host, sizeof host, &port, err,
                                       sizeof err);
    if (rc != tc->rc || (tc->err && !strstr(err, tc->err)))
      fprintf(stderr, "hostport case %zu: rc=%d err=%s\n", i, rc, err);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (tc->rc == MESH_OK) {
      CU_ASSERT_STRING_EQUAL(host, tc->host);
      CU_ASSERT_EQUAL(port, tc->port);
    } else {
      CU_ASSERT_PTR_NOT_NULL(strstr(err, tc->err));
    }
  }
  char host[4], err[128];
  uint16_t port;
  CU_ASSERT_EQUAL(mesh__disc_split_hostport("abcd:1", host, sizeof host,
                                            &port, err, sizeof err),
                  MESH_ERR_PARSE);
}

/* ---- endpoint JSON --------------------------------------------------------- */

struct ep_case {
  const char *json;
  bool ok;
  const char *err; /* substring of the first error */
};

static const struct ep_case ep_cases[] = {
  {"{\"address\":\"127.10.0.1\",\"port\":80}", true, NULL},
  {"{\"address\":\"::1\",\"port\":1,\"weight\":1000000,\"priority\":65535,"
   "\"locality\":{\"region\":\"eu\",\"zone\":\"eu-1\",\"subzone\":\"r1\"},"
   "\"labels\":{\"version\":\"v2\"},\"health\":\"draining\"}",
   true, NULL},
  {"{\"port\":80}", false, "e.address: required"},
  {"{\"address\":\"x\"}", false, "e.port: required"},
  {"{\"address\":5,\"port\":80}", false, "e.address: expected a string"},
  {"{\"address\":\"127.10.0.256\",\"port\":80}", false,
   "e.address: not an IP address or hostname"},
  {"{\"address\":\"a\",\"port\":0}", false, "e.port: 0 is out of range"},
  {"{\"address\":\"a\",\"port\":65536}", false, "e.port: 65536 is out of"},
  {"{\"address\":\"a\",\"port\":80.5}", false, "e.port: expected an integer"},
  {"{\"address\":\"a\",\"port\":\"80\"}", false, "e.port: expected an integer"},
  {"{\"address\":\"a\",\"port\":80,\"weight\":0}", false,
   "e.weight: 0 is out of range [1, 1000000]"},
  {"{\"address\":\"a\",\"port\":80,\"weight\":-3}", false, "e.weight"},
  {"{\"address\":\"a\",\"port\":80,\"priority\":70000}", false, "e.priority"},
  {"{\"address\":\"a\",\"port\":80,\"health\":\"sick\"}", false,
   "e.health: unknown value \"sick\""},
  {"{\"address\":\"a\",\"port\":80,\"locality\":\"eu\"}", false,
   "e.locality: expected an object"},
  {"{\"address\":\"a\",\"port\":80,\"locality\":{\"planet\":\"x\"}}", false,
   "e.locality.planet: unknown key"},
  {"{\"address\":\"a\",\"port\":80,\"locality\":{\"zone\":7}}", false,
   "e.locality.zone: expected a string"},
  {"{\"address\":\"a\",\"port\":80,\"labels\":[]}", false,
   "e.labels: expected an object"},
  {"{\"address\":\"a\",\"port\":80,\"labels\":{\"k\":1}}", false,
   "e.labels.k: expected a string"},
  {"{\"address\":\"a\",\"port\":80,\"labels\":{\"k\":\"a\",\"k\":\"b\"}}",
   false, "e.labels.k: duplicate label"},
  {"{\"address\":\"a\",\"port\":80,\"labels\":{\"\":\"a\"}}", false,
   "label key must be"},
  {"{\"address\":\"a\",\"port\":80,\"labels\":{\"k\":\"a\\nb\"}}", false,
   "control character"},
  {"{\"address\":\"a\",\"port\":80,\"colour\":\"red\"}", false,
   "e.colour: unknown key"},
  {"[]", false, "e: expected an object"},
  {"null", false, "e: expected an object"},
};

static void test_mesh__ep_parse(void) {
  for (size_t i = 0; i < sizeof ep_cases / sizeof ep_cases[0]; i++) {
    const struct ep_case *tc = &ep_cases[i];
    cJSON *v = cJSON_Parse(tc->json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    mesh_status_t st = {0};
    mesh__cfg_t c = {.first = &st};
    mesh__ep_t e;
    bool ok = mesh__ep_parse(&c, v, "e", &e);
    if (ok != tc->ok || (tc->err && !strstr(st.message, tc->err)))
      fprintf(stderr, "ep case %zu: ok=%d msg=%s\n", i, ok, st.message);
    CU_ASSERT_EQUAL(ok, tc->ok);
    if (tc->err)
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->err));
    if (i == 1) {
      CU_ASSERT_STRING_EQUAL(e.address, "::1");
      CU_ASSERT_EQUAL(e.weight, 1000000);
      CU_ASSERT_EQUAL(e.priority, 65535);
      CU_ASSERT_STRING_EQUAL(e.subzone, "r1");
      CU_ASSERT_EQUAL(e.health, MESH__HEALTH_DRAINING);
      CU_ASSERT_PTR_NOT_NULL(e.labels);
    }
    if (i == 0) {
      CU_ASSERT_EQUAL(e.weight, 1);
      CU_ASSERT_EQUAL(e.health, MESH__HEALTH_UNKNOWN);
    }
    cJSON_Delete(v);
  }
}

static void test_mesh__ep_parse_list(void) {
  mesh__cfg_t c = {0};
  mesh__ep_t *eps;
  size_t n;
  cJSON *v = cJSON_Parse("[{\"address\":\"a\",\"port\":1},"
                         "{\"address\":\"b\",\"port\":2}]");
  CU_ASSERT_EQUAL(mesh__ep_parse_list(&c, v, "x", &eps, &n), MESH_OK);
  CU_ASSERT_EQUAL(n, 2);
  CU_ASSERT_STRING_EQUAL(eps[1].address, "b");
  free(eps);
  cJSON_Delete(v);

  /* errors are bounded: garbage does not make 100,000 messages */
  cJSON *bad = cJSON_CreateArray();
  for (int i = 0; i < 500; i++)
    cJSON_AddItemToArray(bad, cJSON_CreateNumber(i));
  int errors = 0;
  mesh__cfg_t c2 = {0};
  CU_ASSERT_EQUAL(mesh__ep_parse_list(&c2, bad, "x", &eps, &n),
                  MESH_ERR_PARSE);
  errors = c2.nerr;
  CU_ASSERT(errors >= 1 && errors <= 20);
  CU_ASSERT_PTR_NULL(eps);
  cJSON_Delete(bad);

  /* over the endpoint limit */
  cJSON *big = cJSON_CreateArray();
  for (int i = 0; i <= MESH__DISC_MAX_ENDPOINTS; i++)
    cJSON_AddItemToArray(big, cJSON_CreateNull());
  mesh_status_t st = {0};
  mesh__cfg_t c3 = {.first = &st};
  CU_ASSERT_EQUAL(mesh__ep_parse_list(&c3, big, "x", &eps, &n),
                  MESH_ERR_PARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "more than the limit"));
  cJSON_Delete(big);

  mesh__cfg_t c4 = {0};
  cJSON *obj = cJSON_CreateObject();
  CU_ASSERT_EQUAL(mesh__ep_parse_list(&c4, obj, "x", &eps, &n),
                  MESH_ERR_PARSE);
  cJSON_Delete(obj);
}

/* ---- DNS answers ------------------------------------------------------------ */

/* Builds a response: question "svc.test" type qtype, then answers. */
typedef struct msg {
  unsigned char b[512];
  size_t n;
} msg_t;

static void put16(msg_t *m, unsigned v) {
  m->b[m->n++] = (unsigned char)(v >> 8);
  m->b[m->n++] = (unsigned char)v;
}

static void put32(msg_t *m, uint32_t v) {
  put16(m, v >> 16);
  put16(m, v & 0xffff);
}

static void msg_start(msg_t *m, unsigned qtype, unsigned ancount) {
  memset(m, 0, sizeof *m);
  put16(m, 0x1234);
  put16(m, 0x8180);
  put16(m, 1);
  put16(m, ancount);
  put16(m, 0);
  put16(m, 0);
  static const unsigned char qname[] = {3, 's', 'v', 'c', 4, 't', 'e', 's', 't',
                                        0};
  memcpy(m->b + m->n, qname, sizeof qname);
  m->n += sizeof qname;
  put16(m, qtype);
  put16(m, 1);
}

static void msg_rr(msg_t *m, unsigned type, uint32_t ttl, unsigned rdlen) {
  put16(m, 0xc00c); /* pointer to the question name */
  put16(m, type);
  put16(m, 1);
  put32(m, ttl);
  put16(m, rdlen);
  for (unsigned i = 0; i < rdlen; i++)
    m->b[m->n++] = (unsigned char)i;
}

static void test_mesh__dns_answer_ttl(void) {
  msg_t m;
  uint32_t ttl;
  size_t count;
  msg_start(&m, 1, 3);
  msg_rr(&m, 1, 300, 4);
  msg_rr(&m, 1, 30, 4);
  msg_rr(&m, 28, 5, 16); /* other type: ignored */
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 1, &ttl, &count), MESH_OK);
  CU_ASSERT_EQUAL(ttl, 30);
  CU_ASSERT_EQUAL(count, 2);
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 28, &ttl, &count), MESH_OK);
  CU_ASSERT_EQUAL(ttl, 5);
  CU_ASSERT_EQUAL(count, 1);
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 33, &ttl, &count), MESH_OK);
  CU_ASSERT_EQUAL(ttl, UINT32_MAX);
  CU_ASSERT_EQUAL(count, 0);

  /* a CNAME with a shorter TTL bounds the answer; top-bit TTL counts as 0 */
  msg_start(&m, 33, 2);
  msg_rr(&m, 5, 7, 2);
  msg_rr(&m, 33, 60, 8);
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 33, &ttl, &count), MESH_OK);
  CU_ASSERT_EQUAL(ttl, 7);
  msg_start(&m, 1, 1);
  msg_rr(&m, 1, 0x80000001u, 4);
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 1, &ttl, &count), MESH_OK);
  CU_ASSERT_EQUAL(ttl, 0);

  /* every truncation of a valid message is an error, never a crash */
  msg_start(&m, 1, 2);
  msg_rr(&m, 1, 300, 4);
  msg_rr(&m, 1, 30, 4);
  for (size_t cut = 0; cut < m.n; cut++) {
    unsigned char *copy = malloc(cut ? cut : 1);
    memcpy(copy, m.b, cut);
    CU_ASSERT_EQUAL(mesh__dns_answer_ttl(copy, cut, 1, &ttl, &count),
                    MESH_ERR_PARSE);
    free(copy);
  }
  /* reserved label type, rdlength past the end, endless labels */
  msg_start(&m, 1, 1);
  m.b[12] = 0x80;
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 1, &ttl, &count),
                  MESH_ERR_PARSE);
  msg_start(&m, 1, 1);
  msg_rr(&m, 1, 30, 4);
  m.b[m.n - 5] = 200; /* rdlength low byte */
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(m.b, m.n, 1, &ttl, &count),
                  MESH_ERR_PARSE);
  unsigned char ones[300];
  memset(ones, 1, sizeof ones);
  ones[4] = 0;
  ones[5] = 1; /* qdcount 1, name of 1-byte labels forever */
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(ones, sizeof ones, 1, &ttl, &count),
                  MESH_ERR_PARSE);
  CU_ASSERT_EQUAL(mesh__dns_answer_ttl(NULL, 0, 1, &ttl, &count),
                  MESH_ERR_PARSE);
}

/* ---- etcd values ------------------------------------------------------------- */

struct etcd_case {
  const char *value;
  int rc;
  const char *host;
  uint16_t port;
  uint32_t weight;
  bool deleted;
  const char *err;
};

static const struct etcd_case etcd_cases[] = {
  {"{\"Op\":0,\"Addr\":\"127.10.0.1:80\",\"Metadata\":null}", MESH_OK,
   "127.10.0.1", 80, 1, false, NULL},
  {"{\"Addr\":\"[::1]:443\"}", MESH_OK, "::1", 443, 1, false, NULL},
  {"{\"Addr\":\"a:1\",\"Metadata\":\"some string from a Go client\"}", MESH_OK,
   "a", 1, 1, false, NULL},
  {"{\"Addr\":\"a:1\",\"Metadata\":{\"weight\":5,\"team\":\"x\","
   "\"labels\":{\"v\":\"2\"}}}",
   MESH_OK, "a", 1, 5, false, NULL},
  {"{\"Op\":1,\"Addr\":\"a:1\"}", MESH_OK, NULL, 0, 0, true, NULL},
  {"{\"Op\":2,\"Addr\":\"a:1\"}", MESH_ERR_PARSE, NULL, 0, 0, false,
   "Op: 2 is out of range"},
  {"{\"Addr\":\"a\"}", MESH_ERR_PARSE, NULL, 0, 0, false, "Addr: expected host:port"},
  {"{\"Addr\":7}", MESH_ERR_PARSE, NULL, 0, 0, false, "Addr: expected a string"},
  {"{\"Metadata\":{}}", MESH_ERR_PARSE, NULL, 0, 0, false, "Addr: required"},
  {"{\"Addr\":\"a:1\",\"Metadata\":{\"weight\":0}}", MESH_ERR_PARSE, NULL, 0,
   0, false, "Metadata.weight"},
  {"[1,2]", MESH_ERR_PARSE, NULL, 0, 0, false, "not a JSON object"},
  {"{\"Addr\":", MESH_ERR_PARSE, NULL, 0, 0, false, "not a JSON object"},
  {"", MESH_ERR_PARSE, NULL, 0, 0, false, "not a JSON object"},
};

static void test_mesh__etcd_parse_endpoint(void) {
  for (size_t i = 0; i < sizeof etcd_cases / sizeof etcd_cases[0]; i++) {
    const struct etcd_case *tc = &etcd_cases[i];
    cJSON *doc = NULL;
    mesh__ep_t ep;
    char host[256], err[256] = "";
    bool deleted = false;
    int rc = mesh__etcd_parse_endpoint(tc->value, strlen(tc->value), &doc, &ep,
                                       host, sizeof host, &deleted, err,
                                       sizeof err);
    if (rc != tc->rc || (tc->err && !strstr(err, tc->err)))
      fprintf(stderr, "etcd case %zu: rc=%d err=%s\n", i, rc, err);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (rc == MESH_OK) {
      CU_ASSERT_EQUAL(deleted, tc->deleted);
      if (tc->host) {
        CU_ASSERT_STRING_EQUAL(ep.address, tc->host);
        CU_ASSERT_EQUAL(ep.port, tc->port);
        CU_ASSERT_EQUAL(ep.weight, tc->weight);
      }
      CU_ASSERT_PTR_NOT_NULL(doc);
    } else {
      CU_ASSERT_PTR_NOT_NULL(strstr(err, tc->err));
      CU_ASSERT_PTR_NULL(doc);
    }
    cJSON_Delete(doc);
  }
}

static void test_mesh__b64(void) {
  const char *in = "services/payments/127.10.0.1:80";
  char *enc = mesh__b64_encode(in, strlen(in));
  CU_ASSERT_STRING_EQUAL(enc, "c2VydmljZXMvcGF5bWVudHMvMTI3LjEwLjAuMTo4MA==");
  char *dec;
  size_t len;
  CU_ASSERT_EQUAL(mesh__b64_decode(enc, &dec, &len), MESH_OK);
  CU_ASSERT_EQUAL(len, strlen(in));
  CU_ASSERT_STRING_EQUAL(dec, in);
  free(dec);
  free(enc);
  CU_ASSERT_EQUAL(mesh__b64_decode("%%%", &dec, &len), MESH_ERR_PARSE);
  CU_ASSERT_PTR_NULL(dec);
  CU_ASSERT_EQUAL(mesh__b64_decode(NULL, &dec, &len), MESH_ERR_PARSE);
  CU_ASSERT_EQUAL(mesh__b64_decode("", &dec, &len), MESH_OK);
  CU_ASSERT_EQUAL(len, 0);
  free(dec);
}

static void test_mesh__etcd_int(void) {
  cJSON *v = cJSON_Parse("{\"a\":\"123\",\"b\":45,\"c\":\"12x\",\"d\":\"\","
                         "\"e\":\"99999999999999999999\",\"f\":true}");
  int64_t x = 0;
  CU_ASSERT_TRUE(mesh__etcd_int(v, "a", &x));
  CU_ASSERT_EQUAL(x, 123);
  CU_ASSERT_TRUE(mesh__etcd_int(v, "b", &x));
  CU_ASSERT_EQUAL(x, 45);
  CU_ASSERT_FALSE(mesh__etcd_int(v, "c", &x));
  CU_ASSERT_FALSE(mesh__etcd_int(v, "d", &x));
  CU_ASSERT_FALSE(mesh__etcd_int(v, "e", &x));
  CU_ASSERT_FALSE(mesh__etcd_int(v, "f", &x));
  CU_ASSERT_FALSE(mesh__etcd_int(v, "zz", &x));
  CU_ASSERT_FALSE(mesh__etcd_int(NULL, "a", &x));
  cJSON_Delete(v);
}

/* ---- streamed JSON ------------------------------------------------------------ */

struct collect {
  char got[8][128];
  int n;
  int stop_after;
};

static bool collect(const char *msg, size_t len, void *user) {
  struct collect *c = user;
  if (c->n < 8)
    snprintf(c->got[c->n], sizeof c->got[0], "%.*s", (int)len, msg);
  c->n++;
  return c->stop_after == 0 || c->n < c->stop_after;
}

static void test_mesh__jsplit_feed(void) {
  const char *stream = "{\"result\":{\"a\":\"}{\\\"\"}}\n"
                       "  {\"b\":[1,{\"c\":2}]}\r\n[3]{}";
  const char *want[] = {"{\"result\":{\"a\":\"}{\\\"\"}}",
                        "{\"b\":[1,{\"c\":2}]}", "[3]", "{}"};
  /* any chunking gives the same messages */
  size_t len = strlen(stream);
  for (size_t chunk = 1; chunk <= len; chunk++) {
    mesh__jsplit_t j;
    mesh__jsplit_init(&j, 1024);
    struct collect c = {0};
    int rc = MESH_OK;
    for (size_t off = 0; off < len && rc == MESH_OK; off += chunk) {
      size_t n = len - off < chunk ? len - off : chunk;
      rc = mesh__jsplit_feed(&j, stream + off, n, collect, &c);
    }
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_EQUAL(c.n, 4);
    for (int i = 0; i < 4 && i < c.n; i++)
      CU_ASSERT_STRING_EQUAL(c.got[i], want[i]);
    mesh__jsplit_free(&j);
  }
  /* garbage between messages, oversize messages, stop requests */
  mesh__jsplit_t j;
  struct collect c = {0};
  mesh__jsplit_init(&j, 1024);
  CU_ASSERT_EQUAL(mesh__jsplit_feed(&j, "{} x", 4, collect, &c),
                  MESH_ERR_PARSE);
  mesh__jsplit_free(&j);
  mesh__jsplit_init(&j, 16);
  CU_ASSERT_EQUAL(mesh__jsplit_feed(&j, "{\"aaaaaaaaaaaaaaaaaaaaaa", 24, collect,
                                    &c),
                  MESH_ERR_PARSE);
  mesh__jsplit_free(&j);
  mesh__jsplit_init(&j, 1024);
  struct collect s = {.stop_after = 1};
  CU_ASSERT_EQUAL(mesh__jsplit_feed(&j, "{}{}", 4, collect, &s),
                  MESH_ERR_CLOSED);
  CU_ASSERT_EQUAL(s.n, 1);
  mesh__jsplit_free(&j);
  /* nesting bomb */
  char deep[2000];
  memset(deep, '[', sizeof deep);
  mesh__jsplit_init(&j, 4096);
  CU_ASSERT_EQUAL(mesh__jsplit_feed(&j, deep, sizeof deep, collect, &c),
                  MESH_ERR_PARSE);
  mesh__jsplit_free(&j);
}

static void test_mesh__disc_backoff(void) {
  for (unsigned a = 0; a < 40; a++) {
    int64_t d = mesh__disc_backoff(1000, 120000, a);
    int64_t ideal = a >= 7 ? 120000 : (int64_t)1000 << a;
    if (ideal > 120000)
      ideal = 120000;
    CU_ASSERT(d >= ideal * 8 / 10 && d <= ideal * 12 / 10);
  }
  CU_ASSERT(mesh__disc_backoff(0, 0, 3) >= 1);
}

static void test_mesh__disc_quote(void) {
  char out[32];
  mesh__disc_quote(out, sizeof out, "a \"b\"\\c\nd");
  CU_ASSERT_STRING_EQUAL(out, "\"a \\\"b\\\"\\\\c?d\"");
  mesh__disc_quote(out, 8, "0123456789");
  CU_ASSERT_EQUAL(strlen(out), 7);
  CU_ASSERT_EQUAL(out[6], '"');
}

/* ---- mutations ------------------------------------------------------------------
 * A bounded, seeded mutation run over every parser: no crash, no leak
 * (ASan), and every accepted input satisfies the parser's contract.
 * tests/fuzz holds the coverage-guided harnesses; this runs on each
 * `make check`. */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)rng_state;
}

static size_t mutate(unsigned char *buf, size_t len, size_t cap) {
  int edits = 1 + (int)(rnd() % 4);
  for (int i = 0; i < edits; i++) {
    uint32_t op = rnd() % 4, pos = len ? rnd() % (uint32_t)len : 0;
    static const char tokens[] = "{}[]\":,0-9eE\\ u\n";
    if (op == 0 && len)
      buf[pos] = (unsigned char)rnd();
    else if (op == 1 && len)
      buf[pos] = (unsigned char)tokens[rnd() % (sizeof tokens - 1)];
    else if (op == 2 && len) {
      memmove(buf + pos, buf + pos + 1, len - pos - 1);
      len--;
    } else if (len < cap) {
      memmove(buf + pos + 1, buf + pos, len - pos);
      buf[pos] = (unsigned char)tokens[rnd() % (sizeof tokens - 1)];
      len++;
    }
  }
  return len;
}

static const char *const json_seeds[] = {
  "{\"Op\":0,\"Addr\":\"127.10.0.1:80\",\"Metadata\":{\"weight\":3,"
  "\"locality\":{\"zone\":\"z\"},\"labels\":{\"a\":\"b\"},"
  "\"health\":\"healthy\"}}",
  "[{\"address\":\"::1\",\"port\":80,\"priority\":2,"
  "\"labels\":{\"k\":\"v\"}},{\"address\":\"h.test\",\"port\":1}]",
  "{\"result\":{\"header\":{\"revision\":\"5\"},\"events\":[{\"kv\":"
  "{\"key\":\"cC94\",\"value\":\"e30=\"}}]}}\n{\"result\":{}}",
};

static void test_mutations(void) {
  unsigned char buf[1024];
  for (int round = 0; round < 6000; round++) {
    const char *seed = json_seeds[round % 3];
    size_t len = strlen(seed);
    memcpy(buf, seed, len);
    len = mutate(buf, len, sizeof buf - 1);
    buf[len] = '\0';

    /* etcd values */
    cJSON *doc;
    mesh__ep_t ep;
    char host[256], err[256];
    bool del;
    if (mesh__etcd_parse_endpoint((char *)buf, len, &doc, &ep, host,
                                  sizeof host, &del, err, sizeof err) ==
        MESH_OK) {
      CU_ASSERT(del || (ep.port >= 1 && ep.weight >= 1 &&
                        mesh__disc_valid_address(ep.address)));
      cJSON_Delete(doc);
    }
    /* endpoint lists */
    cJSON *v = mesh__json_parse_exact((char *)buf, len, NULL);
    if (v) {
      mesh__cfg_t c = {0};
      mesh__ep_t *eps;
      size_t n;
      if (mesh__ep_parse_list(&c, v, "e", &eps, &n) == MESH_OK) {
        for (size_t i = 0; i < n; i++)
          CU_ASSERT(eps[i].port >= 1 && eps[i].weight >= 1);
        mesh__snapshot_t *snap = NULL;
        CU_ASSERT_EQUAL(mesh__snap_build(NULL, eps, n, &snap), MESH_OK);
        mesh__snap_release(snap);
        free(eps);
      }
      cJSON_Delete(v);
    }
    /* streams, in two chunks */
    mesh__jsplit_t j;
    mesh__jsplit_init(&j, 512);
    struct collect col = {0};
    size_t cut = len ? rnd() % len : 0;
    if (mesh__jsplit_feed(&j, (char *)buf, cut, collect, &col) == MESH_OK)
      mesh__jsplit_feed(&j, (char *)buf + cut, len - cut, collect, &col);
    mesh__jsplit_free(&j);
    /* host:port and base64 on the same bytes */
    char h[64];
    uint16_t port;
    if (mesh__disc_split_hostport((char *)buf, h, sizeof h, &port, err,
                                  sizeof err) == MESH_OK)
      CU_ASSERT(port >= 1);
    char *dec;
    size_t dlen;
    if (mesh__b64_decode((char *)buf, &dec, &dlen) == MESH_OK)
      free(dec);
  }
  /* DNS messages: mutate a valid response */
  msg_t m;
  for (int round = 0; round < 6000; round++) {
    msg_start(&m, 1, 2);
    msg_rr(&m, 1, 30, 4);
    msg_rr(&m, 5, 10, 6);
    size_t len = mutate(m.b, m.n, sizeof m.b);
    unsigned char *exact = malloc(len ? len : 1);
    memcpy(exact, m.b, len);
    uint32_t ttl;
    size_t count;
    if (mesh__dns_answer_ttl(exact, len, 1, &ttl, &count) == MESH_OK)
      CU_ASSERT(count <= len / 11);
    free(exact);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("discovery_parse", NULL, NULL);
  CU_add_test(s, "mesh__disc_valid_address", test_mesh__disc_valid_address);
  CU_add_test(s, "mesh__disc_split_hostport", test_mesh__disc_split_hostport);
  CU_add_test(s, "mesh__ep_parse", test_mesh__ep_parse);
  CU_add_test(s, "mesh__ep_parse_list", test_mesh__ep_parse_list);
  CU_add_test(s, "mesh__dns_answer_ttl", test_mesh__dns_answer_ttl);
  CU_add_test(s, "mesh__etcd_parse_endpoint", test_mesh__etcd_parse_endpoint);
  CU_add_test(s, "mesh__b64", test_mesh__b64);
  CU_add_test(s, "mesh__etcd_int", test_mesh__etcd_int);
  CU_add_test(s, "mesh__jsplit_feed", test_mesh__jsplit_feed);
  CU_add_test(s, "mesh__disc_backoff", test_mesh__disc_backoff);
  CU_add_test(s, "mesh__disc_quote", test_mesh__disc_quote);
  CU_add_test(s, "mutations", test_mutations);
}

int main(void) { return th_run_suites("test_discovery_parse", add); }
