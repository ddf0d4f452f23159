/* SPDX-License-Identifier: Apache-2.0 */
/* etcd v3 client over the HTTP/JSON gateway.  One libcurl multi handle per
 * client, driven by the worker loop (core/curl_loop.c): no thread of its
 * own, nothing blocks the loop.  Requests fail over to the next endpoint after a
 * connection-level error.  With a username the client fetches a token from
 * /v3/auth/authenticate before its first request and again after etcd
 * rejects the token. */
#include "discovery/etcd.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

struct mesh__etcd_req {
  mesh__etcd_t *e;
  CURL *h;
  struct curl_slist *hdrs;
  char *api, *body;
  size_t url_index;
  bool stream, internal_auth, waiting_auth;
  mesh__etcd_msg_fn msg;
  mesh__etcd_done_fn done;
  void *user;
  char *resp; /* unary body, or a failed stream's error body */
  size_t rlen, rcap;
  bool too_big, stopped_by_msg, parse_err;
  mesh__jsplit_t split;
  char errbuf[CURL_ERROR_SIZE];
  struct mesh__etcd_req *next;
};

struct mesh__etcd {
  mesh_t *m;
  mesh__curlm_t *cm;
  char **urls;
  char **shown; /* urls[i] without userinfo: for messages, logs, views */
  size_t nurls, cur;
  char *ca, *cert, *key, *username, *password;
  int64_t timeout_ms;
  char *token;
  mesh__etcd_req_t *auth_req;
  mesh__etcd_req_t *reqs; /* every live request */
};

/* ---- requests --------------------------------------------------------------------- */

static void unlink_req(mesh__etcd_t *e, mesh__etcd_req_t *r) {
  for (mesh__etcd_req_t **pp = &e->reqs; *pp; pp = &(*pp)->next) {
    if (*pp == r) {
      *pp = r->next;
      return;
    }
  }
}

static void free_req(mesh__etcd_t *e, mesh__etcd_req_t *r) {
  unlink_req(e, r);
  if (r->h) {
    mesh__curlm_remove(e->cm, r->h);
    curl_easy_cleanup(r->h);
  }
  if (e->auth_req == r)
    e->auth_req = NULL;
  curl_slist_free_all(r->hdrs);
  mesh__jsplit_free(&r->split);
  free(r->resp);
  free(r->api);
  free(r->body);
  free(r);
}

/* Run r's done callback once, then free r. */
static void complete(mesh__etcd_t *e, mesh__etcd_req_t *r, int rc,
                     const cJSON *body, const char *err) {
  unlink_req(e, r);
  if (r->done)
    r->done(rc, body, err, r->user);
  free_req(e, r);
}

static bool keep_resp(mesh__etcd_req_t *r, const char *data, size_t n,
                      size_t max) {
  if (r->rlen + n > max) {
    r->too_big = true;
    return false;
  }
  if (r->rlen + n + 1 > r->rcap) {
    size_t cap = r->rcap ? r->rcap : 4096;
    while (cap < r->rlen + n + 1)
      cap *= 2;
    char *b = realloc(r->resp, cap);
    if (!b)
      return false;
    r->resp = b;
    r->rcap = cap;
  }
  memcpy(r->resp + r->rlen, data, n);
  r->rlen += n;
  r->resp[r->rlen] = '\0';
  return true;
}

static bool token_rejected(const cJSON *err) {
  int64_t code = 0, http = 0;
  mesh__etcd_int(err, "code", &code);
  if (!code)
    mesh__etcd_int(err, "grpc_code", &code);
  mesh__etcd_int(err, "http_code", &http);
  return code == 16 || http == 401;
}

static bool on_stream_msg(const char *msg, size_t len, void *user) {
  mesh__etcd_req_t *r = user;
  cJSON *v = mesh__json_parse_exact(msg, len, NULL);
  if (!v) {
    r->parse_err = true;
    return false;
  }
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(v, "error");
  if (err && token_rejected(err)) {
    free(r->e->token);
    r->e->token = NULL;
  }
  bool go = r->msg(v, r->user);
  cJSON_Delete(v);
  if (!go)
    r->stopped_by_msg = true;
  return go;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *user) {
  mesh__etcd_req_t *r = user;
  size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
  if (!r->stream || status != 200)
    return keep_resp(r, data, n, MESH__ETCD_MAX_BODY) ? n : 0;
  int rc = mesh__jsplit_feed(&r->split, data, n, on_stream_msg, r);
  if (rc == MESH_ERR_PARSE || rc == MESH_ERR_NOMEM)
    r->parse_err = true;
  return rc == MESH_OK ? n : 0;
}

static void dispatch(mesh__etcd_t *e, mesh__etcd_req_t *r);
static void on_done(CURL *easy, CURLcode cc, void *user);

static void auth_done(int rc, const cJSON *body, const char *err, void *user) {
  mesh__etcd_t *e = user;
  e->auth_req = NULL; /* finished: a new one may start from here on */
  const cJSON *tok = cJSON_GetObjectItemCaseSensitive(body, "token");
  char msg[300];
  if (rc == MESH_OK && cJSON_IsString(tok) && tok->valuestring[0]) {
    free(e->token);
    e->token = strdup(tok->valuestring);
  }
  if (!e->token)
    snprintf(msg, sizeof msg, "etcd authentication failed: %s",
             rc == MESH_OK ? "no token in the answer" : err);
  /* Release the requests that waited for the token. Completing one may
   * add new requests to the list, so restart the scan each time. */
  for (;;) {
    mesh__etcd_req_t *w = NULL;
    for (mesh__etcd_req_t *it = e->reqs; it; it = it->next)
      if (it->waiting_auth)
        w = it;
    if (!w)
      break;
    w->waiting_auth = false;
    if (e->token)
      dispatch(e, w);
    else
      complete(e, w, MESH_ERR_DISCOVERY, NULL, msg);
    if (e->token == NULL && e->auth_req)
      break; /* a completion started a new authentication */
  }
}

static mesh__etcd_req_t *new_req(mesh__etcd_t *e, const char *api,
                                 const char *body) {
  mesh__etcd_req_t *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->e = e;
  r->api = strdup(api);
  r->body = strdup(body ? body : "{}");
  if (!r->api || !r->body) {
    free(r->api);
    free(r->body);
    free(r);
    return NULL;
  }
  mesh__jsplit_init(&r->split, MESH__ETCD_MAX_MESSAGE);
  r->next = e->reqs;
  e->reqs = r;
  return r;
}

static void start_auth(mesh__etcd_t *e) {
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "name", e->username);
  cJSON_AddStringToObject(b, "password", e->password);
  char *body = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  mesh__etcd_req_t *r = body ? new_req(e, "/v3/auth/authenticate", body) : NULL;
  free(body);
  if (!r)
    return; /* the waiting requests time out through their owners */
  r->internal_auth = true;
  r->done = auth_done;
  r->user = e;
  e->auth_req = r;
  dispatch(e, r);
}

/* Apply the options shared by loop and blocking requests. */
static int setup_easy(mesh__etcd_t *e, CURL *h, mesh__etcd_req_t *r,
                      const char *api, const char *body, bool stream,
                      struct curl_slist **hdrs, char *errbuf) {
  char url[1024], auth[2048];
  snprintf(url, sizeof url, "%s%s", e->urls[e->cur], api);
  *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  *hdrs = curl_slist_append(*hdrs, "Expect:");
  if (e->token && !(r && r->internal_auth)) {
    snprintf(auth, sizeof auth, "Authorization: %s", e->token);
    *hdrs = curl_slist_append(*hdrs, auth);
  }
  if (!*hdrs)
    return MESH_ERR_NOMEM;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
  curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
  if (stream) {
    /* A watch is silent while nothing changes: keepalives notice a peer
     * that vanished without closing the connection. */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
  } else {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
  }
  /* libcurl opens these itself, blocking: a FIFO would hang the worker
   * thread.  Regular files only (core/file.c). */
  const char *const files[] = {e->ca, e->cert, e->key};
  for (size_t i = 0; i < 3; i++) {
    mesh_status_t fst;
    if (files[i] && mesh__file_check(files[i], &fst) != MESH_OK) {
      mesh__strlcpy(errbuf, fst.message, CURL_ERROR_SIZE);
      return MESH_ERR_IO;
    }
  }
  if (e->ca)
    curl_easy_setopt(h, CURLOPT_CAINFO, e->ca);
  if (e->cert) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, e->key);
  }
  return MESH_OK;
}

static void dispatch(mesh__etcd_t *e, mesh__etcd_req_t *r) {
  if (e->username && !e->token && !r->internal_auth) {
    r->waiting_auth = true;
    if (!e->auth_req)
      start_auth(e);
    return;
  }
  r->h = curl_easy_init();
  r->url_index = e->cur;
  int rc = r->h ? setup_easy(e, r->h, r, r->api, r->body, r->stream,
                             &r->hdrs, r->errbuf)
                : MESH_ERR_NOMEM;
  if (rc != MESH_OK) {
    complete(e, r, rc, NULL, rc == MESH_ERR_IO ? r->errbuf : "out of memory");
    return;
  }
  curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
  if (mesh__curlm_add(e->cm, r->h, on_done, r) != MESH_OK) {
    curl_easy_cleanup(r->h);
    r->h = NULL;
    complete(e, r, MESH_ERR_NOMEM, NULL, "cannot add a transfer");
  }
}

static bool conn_error(CURLcode cc) {
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
    return true;
  default:
    return false;
  }
}

/* "HTTP 400: <message>" from the gateway's error body. */
static void http_error(mesh__etcd_req_t *r, long status, char *out,
                       size_t len) {
  cJSON *v = r->resp ? mesh__json_parse_exact(r->resp, r->rlen, NULL) : NULL;
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(v, "error");
  const cJSON *err = cJSON_IsObject(ev) ? ev : v;
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
  if (!cJSON_IsString(msg))
    msg = cJSON_IsString(ev) ? ev : NULL;
  snprintf(out, len, "etcd %s%s: HTTP %ld%s%.200s", r->e->shown[r->url_index],
           r->api, status, msg ? ": " : "", msg ? msg->valuestring : "");
  if (status == 401 || token_rejected(err)) {
    free(r->e->token);
    r->e->token = NULL;
  }
  cJSON_Delete(v);
}

static void finish(mesh__etcd_t *e, mesh__etcd_req_t *r, CURLcode cc) {
  char err[512];
  long status = 0;
  curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
  if (r->stream && r->stopped_by_msg) {
    complete(e, r, MESH_ERR_CLOSED, NULL, "stream ended by the client");
    return;
  }
  if (r->parse_err) {
    snprintf(err, sizeof err, "etcd %s%s: malformed JSON message",
             e->shown[r->url_index], r->api);
    complete(e, r, MESH_ERR_PARSE, NULL, err);
    return;
  }
  if (cc != CURLE_OK) {
    if (conn_error(cc) && r->url_index == e->cur)
      e->cur = (e->cur + 1) % e->nurls;
    snprintf(err, sizeof err, "etcd %s%s: %s", e->shown[r->url_index], r->api,
             r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
    complete(e, r,
             cc == CURLE_OPERATION_TIMEDOUT ? MESH_ERR_TIMEOUT
                                            : MESH_ERR_DISCOVERY,
             NULL, err);
    return;
  }
  if (status != 200) {
    http_error(r, status, err, sizeof err);
    complete(e, r, MESH_ERR_DISCOVERY, NULL, err);
    return;
  }
  if (r->stream) {
    snprintf(err, sizeof err, "etcd %s%s: stream closed by the server",
             e->shown[r->url_index], r->api);
    complete(e, r, MESH_OK, NULL, err);
    return;
  }
  cJSON *v = r->resp ? mesh__json_parse_exact(r->resp, r->rlen, NULL) : NULL;
  if (!cJSON_IsObject(v)) {
    snprintf(err, sizeof err, "etcd %s%s: malformed JSON answer",
             e->shown[r->url_index], r->api);
    cJSON_Delete(v);
    complete(e, r, MESH_ERR_PARSE, NULL, err);
    return;
  }
  complete(e, r, MESH_OK, v, NULL);
  cJSON_Delete(v);
}

static void on_done(CURL *easy, CURLcode cc, void *user) {
  (void)easy; /* r->h */
  mesh__etcd_req_t *r = user;
  finish(r->e, r, cc);
}

static int submit(mesh__etcd_t *e, const char *api, const char *body,
                  bool stream, mesh__etcd_msg_fn msg, mesh__etcd_done_fn done,
                  void *user, mesh__etcd_req_t **out) {
  if (out)
    *out = NULL;
  mesh__etcd_req_t *r = new_req(e, api, body);
  if (!r)
    return MESH_ERR_NOMEM;
  r->stream = stream;
  r->msg = msg;
  r->done = done;
  r->user = user;
  if (out)
    *out = r;
  dispatch(e, r);
  return MESH_OK;
}

int mesh__etcd_call(mesh__etcd_t *e, const char *api, const char *body,
                    mesh__etcd_done_fn done, void *user,
                    mesh__etcd_req_t **out) {
  return submit(e, api, body, false, NULL, done, user, out);
}

int mesh__etcd_stream(mesh__etcd_t *e, const char *api, const char *body,
                      mesh__etcd_msg_fn msg, mesh__etcd_done_fn done,
                      void *user, mesh__etcd_req_t **out) {
  return submit(e, api, body, true, msg, done, user, out);
}

void mesh__etcd_cancel(mesh__etcd_t *e, mesh__etcd_req_t *r) {
  if (!e || !r)
    return;
  for (mesh__etcd_req_t *it = e->reqs; it; it = it->next) {
    if (it == r) {
      free_req(e, r);
      return;
    }
  }
}

const char *mesh__etcd_current(const mesh__etcd_t *e) {
  return e && e->nurls ? e->shown[e->cur] : "";
}

/* ---- blocking (teardown) ---------------------------------------------------------- */

static size_t sync_write(char *data, size_t size, size_t nmemb, void *user) {
  mesh__etcd_req_t *r = user;
  size_t n = size * nmemb;
  return keep_resp(r, data, n, MESH__ETCD_MAX_BODY) ? n : 0;
}

static int perform_sync(mesh__etcd_t *e, const char *api, const char *body,
                        int timeout_ms, bool is_auth, cJSON **resp, char *err,
                        size_t errlen, bool *conn) {
  mesh__etcd_req_t r = {.e = e, .internal_auth = is_auth, .url_index = e->cur};
  CURL *h = curl_easy_init();
  struct curl_slist *hdrs = NULL;
  int rc = MESH_ERR_NOMEM;
  *resp = NULL;
  int src = h ? setup_easy(e, h, &r, api, body, false, &hdrs, r.errbuf)
              : MESH_ERR_NOMEM;
  if (src == MESH_ERR_IO) {
    snprintf(err, errlen, "etcd: %s", r.errbuf);
    rc = MESH_ERR_IO;
    *conn = false;
  } else if (src == MESH_OK) {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sync_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK) {
      *conn = conn_error(cc);
      snprintf(err, errlen, "etcd %s%s: %s", e->shown[e->cur], api,
               r.errbuf[0] ? r.errbuf : curl_easy_strerror(cc));
      rc = cc == CURLE_OPERATION_TIMEDOUT ? MESH_ERR_TIMEOUT
                                          : MESH_ERR_DISCOVERY;
    } else if (status != 200) {
      r.api = (char *)api;
      http_error(&r, status, err, errlen);
      rc = MESH_ERR_DISCOVERY;
    } else {
      *resp = r.resp ? mesh__json_parse_exact(r.resp, r.rlen, NULL) : NULL;
      rc = *resp ? MESH_OK : MESH_ERR_PARSE;
      if (!*resp)
        snprintf(err, errlen, "etcd %s%s: malformed JSON answer",
                 e->shown[e->cur], api);
    }
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  free(r.resp);
  return rc;
}

/* Authenticate (if configured) and call, on the current endpoint. */
static int sync_once(mesh__etcd_t *e, const char *api, const char *body,
                     int timeout_ms, cJSON **resp, char *err, size_t errlen,
                     bool *conn) {
  *conn = false;
  if (e->username && !e->token) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", e->username);
    cJSON_AddStringToObject(b, "password", e->password);
    char *ab = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    cJSON *ar = NULL;
    int rc = ab ? perform_sync(e, "/v3/auth/authenticate", ab, timeout_ms,
                               true, &ar, err, errlen, conn)
                : MESH_ERR_NOMEM;
    free(ab);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(ar, "token");
    if (rc == MESH_OK && cJSON_IsString(tok))
      e->token = strdup(tok->valuestring);
    cJSON_Delete(ar);
    if (rc != MESH_OK)
      return rc;
  }
  return perform_sync(e, api, body, timeout_ms, false, resp, err, errlen,
                      conn);
}

int mesh__etcd_call_sync(mesh__etcd_t *e, const char *api, const char *body,
                         int timeout_ms, cJSON **resp, char *err,
                         size_t errlen) {
  /* Each endpoint in turn while connections fail, within the budget. */
  int64_t deadline = mesh__now_ms() + timeout_ms;
  int rc = MESH_ERR_TIMEOUT;
  *resp = NULL;
  snprintf(err, errlen, "etcd: no time left");
  for (size_t i = 0; i < e->nurls; i++) {
    int64_t left = deadline - mesh__now_ms();
    if (left <= 0)
      break;
    bool conn;
    rc = sync_once(e, api, body, (int)left, resp, err, errlen, &conn);
    if (!conn)
      return rc;
    e->cur = (e->cur + 1) % e->nurls;
  }
  return rc;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static char *dup_cfg(const cJSON *obj, const char *key, bool *oom) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsString(v))
    return NULL;
  char *s = strdup(v->valuestring);
  if (!s)
    *oom = true;
  return s;
}

int mesh__etcd_new(mesh_t *m, const cJSON *obj, mesh__etcd_t **out,
                   mesh_status_t *st) {
  *out = NULL;
  mesh__etcd_t *e = calloc(1, sizeof *e);
  if (!e)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  e->m = m;
  bool oom = false;
  oom = !mesh__etcd_urls(cJSON_GetObjectItemCaseSensitive(obj, "endpoints"),
                         &e->urls, &e->shown, &e->nurls);
  e->ca = dup_cfg(obj, "ca", &oom);
  e->cert = dup_cfg(obj, "cert", &oom);
  e->key = dup_cfg(obj, "key", &oom);
  e->username = dup_cfg(obj, "username", &oom);
  e->password = dup_cfg(obj, "password", &oom);
  mesh__cfg_t c = {0};
  mesh__cfg_int(&c, obj, "", "timeout_ms", 10, 600000,
                MESH__ETCD_TIMEOUT_DEFAULT_MS, &e->timeout_ms);
  /* Also holds libcurl's global state, which the blocking teardown calls
   * (mesh__etcd_call_sync) need too. */
  e->cm = mesh__curlm_new(m);
  if (oom || !e->cm || e->nurls == 0) {
    mesh__etcd_free(e);
    return mesh__fail(st, MESH_ERR_NOMEM, "cannot create the etcd client");
  }
  *out = e;
  return MESH_OK;
}

void mesh__etcd_free(mesh__etcd_t *e) {
  if (!e)
    return;
  while (e->reqs)
    free_req(e, e->reqs);
  mesh__curlm_free(e->cm);
  for (size_t i = 0; i < e->nurls; i++) {
    free(e->urls[i]);
    free(e->shown[i]);
  }
  free(e->urls);
  free(e->shown);
  free(e->ca);
  free(e->cert);
  free(e->key);
  free(e->username);
  if (e->password)
    memset(e->password, 0, strlen(e->password));
  free(e->password);
  if (e->token)
    memset(e->token, 0, strlen(e->token));
  free(e->token);
  free(e);
}
