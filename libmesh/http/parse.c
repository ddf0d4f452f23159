/* SPDX-License-Identifier: Apache-2.0 */
/* Strict HTTP/1.1 message parsing (RFC 9112): heads and body framing.
 * Bytes in, structure out; no I/O, no allocation.  Anything two peers could
 * frame differently is refused rather than guessed (see parse.h). */
#include "http/parse.h"

#include <string.h>

#include "core/core.h"

void mesh__http_limits_default(mesh__http_limits_t *l) {
  l->max_head = MESH__HTTP_MAX_HEAD_DEFAULT;
  l->max_headers = MESH__HTTP_MAX_HEADERS_DEFAULT;
  l->max_body = MESH__HTTP_MAX_BODY_DEFAULT;
}

/* ---- character classes ----------------------------------------------------- */

/* tchar (RFC 9110 5.6.2) as a table: the parser asks for every byte of
 * every field name. */
static const unsigned char tchar_tab[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

bool mesh__http_is_tchar(unsigned char c) { return tchar_tab[c] != 0; }

/* field-vchar / SP / HTAB (RFC 9110 5.5): no CTLs, obs-text allowed. */
bool mesh__http_is_value_char(unsigned char c) {
  return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

/* request-target characters: visible ASCII; '#' never belongs to it. */
static bool is_target_char(unsigned char c) {
  return c >= 0x21 && c <= 0x7e && c != '#';
}

/* Host: uri-host [":" port]; reg-name, IP-literal or IPv4, loosely. */
static bool is_host_char(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return true;
  return c != '\0' && strchr("-._~!$&'()*+,;=:[]%", c) != NULL;
}

static unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool mesh__http_valid_token(const char *s, size_t n) {
  if (!s || n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!mesh__http_is_tchar((unsigned char)s[i]))
      return false;
  return true;
}

bool mesh__http_valid_host(const char *s, size_t n) {
  for (size_t i = 0; s && i < n; i++)
    if (!is_host_char((unsigned char)s[i]))
      return false;
  return s != NULL;
}

bool mesh__http_valid_value(const char *s, size_t n) {
  if (!s)
    return false;
  if (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' ||
            s[n - 1] == '\t'))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!mesh__http_is_value_char((unsigned char)s[i]))
      return false;
  return true;
}

bool mesh__http_str_ieq(mesh__http_str_t s, const char *z) {
  size_t n = strlen(z);
  if (n != s.n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s.p[i]) != lower((unsigned char)z[i]))
      return false;
  return true;
}

bool mesh__http_str_eq(mesh__http_str_t s, const char *z) {
  size_t n = strlen(z);
  return n == s.n && memcmp(s.p, z, n) == 0;
}

const mesh__http_hdr_t *mesh__http_header(const mesh__http_msg_t *msg,
                                          const char *name) {
  for (size_t i = 0; msg && i < msg->nhdrs; i++)
    if (mesh__http_str_ieq(msg->hdrs[i].name, name))
      return &msg->hdrs[i];
  return NULL;
}

void mesh__http_msg_init(mesh__http_msg_t *msg, mesh__http_hdr_t *hdrs,
                         size_t cap) {
  memset(msg, 0, sizeof *msg);
  msg->hdrs = hdrs;
  msg->hdr_cap = cap;
  msg->why = "";
}

static int bad(mesh__http_msg_t *msg, int code, const char *why) {
  msg->why = why;
  return code;
}

/* ---- pass 1: line structure ---------------------------------------------- *
 * Finds the end of the head while refusing bare CR, bare LF, NUL and
 * (for responses) leading empty lines.  Resumes at the last incomplete line
 * so a slow sender does not make the work quadratic in the head size.
 * Returns the head length, 0 when incomplete, or a negative code. */
static int scan_head(mesh__http_msg_t *msg, const char *buf, size_t len,
                     bool request) {
  size_t line = msg->scanned;
  while (line < len) {
    /* memchr finds the line end; the bytes before it must hold no LF or
     * NUL (a bare LF, or a NUL that could truncate a C-string view). */
    const char *cr = memchr(buf + line, '\r', len - line);
    size_t end = cr ? (size_t)(cr - buf) : len;
    if (memchr(buf + line, '\n', end - line))
      return bad(msg, MESH_ERR_HTTP_PARSE, "bare LF (lines must end in CRLF)");
    if (memchr(buf + line, '\0', end - line))
      return bad(msg, MESH_ERR_HTTP_PARSE, "NUL byte in head");
    if (!cr || end + 1 >= len)
      break;
    if (buf[end + 1] != '\n')
      return bad(msg, MESH_ERR_HTTP_PARSE, "bare CR in head");
    if (end == line) {
      if (msg->started)
        return (int)(end + 2);
      if (!request)
        return bad(msg, MESH_ERR_HTTP_PARSE, "empty line before status line");
    } else if (!msg->started) {
      msg->started = true;
      msg->start = line;
    }
    line = end + 2;
  }
  msg->scanned = line;
  return 0;
}

/* ---- pass 2: fields ------------------------------------------------------ */

/* Next CRLF-terminated line of [*pos, end); the head is known well formed. */
static mesh__http_str_t next_line(const char *buf, size_t *pos) {
  mesh__http_str_t l = {buf + *pos, 0};
  while (buf[*pos + l.n] != '\r')
    l.n++;
  *pos += l.n + 2;
  return l;
}

static int parse_version(mesh__http_msg_t *msg, const char *p, size_t n) {
  if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
    return bad(msg, MESH_ERR_HTTP_PARSE,
               "unsupported HTTP version (HTTP/1.0 or HTTP/1.1 only)");
  msg->minor = p[7] - '0';
  return MESH_OK;
}

static bool valid_target(mesh__http_str_t m, mesh__http_str_t t) {
  for (size_t i = 0; i < t.n; i++)
    if (!is_target_char((unsigned char)t.p[i]))
      return false;
  if (mesh__http_str_eq(m, "CONNECT"))
    return t.p[0] != '/' && t.p[0] != '*';
  if (t.p[0] == '/')
    return true;
  if (t.n == 1 && t.p[0] == '*')
    return mesh__http_str_eq(m, "OPTIONS");
  /* absolute-form: scheme "://" ... */
  size_t i = 0;
  if (!((t.p[0] >= 'a' && t.p[0] <= 'z') || (t.p[0] >= 'A' && t.p[0] <= 'Z')))
    return false;
  while (i < t.n && (mesh__http_is_tchar((unsigned char)t.p[i])))
    i++;
  return i + 3 <= t.n && memcmp(t.p + i, "://", 3) == 0;
}

static int parse_request_line(mesh__http_msg_t *msg, mesh__http_str_t l) {
  const char *sp1 = memchr(l.p, ' ', l.n);
  if (!sp1)
    return bad(msg, MESH_ERR_HTTP_PARSE, "malformed request line");
  msg->method = (mesh__http_str_t){l.p, (size_t)(sp1 - l.p)};
  if (!mesh__http_valid_token(msg->method.p, msg->method.n))
    return bad(msg, MESH_ERR_HTTP_PARSE, "invalid method");
  const char *t = sp1 + 1;
  size_t rest = l.n - (size_t)(t - l.p);
  const char *sp2 = memchr(t, ' ', rest);
  if (!sp2 || sp2 == t)
    return bad(msg, MESH_ERR_HTTP_PARSE, "malformed request line");
  msg->target = (mesh__http_str_t){t, (size_t)(sp2 - t)};
  if (!valid_target(msg->method, msg->target))
    return bad(msg, MESH_ERR_HTTP_PARSE, "invalid request target");
  const char *v = sp2 + 1;
  return parse_version(msg, v, l.n - (size_t)(v - l.p));
}

static int parse_status_line(mesh__http_msg_t *msg, mesh__http_str_t l) {
  if (l.n < 12 || parse_version(msg, l.p, 8) != MESH_OK || l.p[8] != ' ')
    return bad(msg, MESH_ERR_HTTP_PARSE, "malformed status line");
  int st = 0;
  for (size_t i = 9; i < 12; i++) {
    if (l.p[i] < '0' || l.p[i] > '9')
      return bad(msg, MESH_ERR_HTTP_PARSE, "malformed status code");
    st = st * 10 + (l.p[i] - '0');
  }
  if (st < 100 || st > 599)
    return bad(msg, MESH_ERR_HTTP_PARSE, "status code out of range");
  msg->status = st;
  msg->reason = (mesh__http_str_t){l.p + 12, 0};
  if (l.n == 12)
    return MESH_OK; /* "HTTP/1.1 200" without reason: tolerated */
  if (l.p[12] != ' ')
    return bad(msg, MESH_ERR_HTTP_PARSE, "malformed status line");
  msg->reason = (mesh__http_str_t){l.p + 13, l.n - 13};
  for (size_t i = 0; i < msg->reason.n; i++)
    if (!mesh__http_is_value_char((unsigned char)msg->reason.p[i]))
      return bad(msg, MESH_ERR_HTTP_PARSE, "invalid reason phrase");
  return MESH_OK;
}

static int parse_field(mesh__http_msg_t *msg, mesh__http_str_t l,
                       mesh__http_hdr_t *h) {
  if (l.p[0] == ' ' || l.p[0] == '\t')
    return bad(msg, MESH_ERR_HTTP_PARSE, "obs-fold (line folding) refused");
  size_t i = 0;
  while (i < l.n && mesh__http_is_tchar((unsigned char)l.p[i]))
    i++;
  if (i == l.n || l.p[i] != ':')
    return bad(msg, MESH_ERR_HTTP_PARSE,
               i < l.n && (l.p[i] == ' ' || l.p[i] == '\t')
                   ? "whitespace before colon in header field"
                   : "invalid header field name");
  if (i == 0)
    return bad(msg, MESH_ERR_HTTP_PARSE, "empty header field name");
  h->name = (mesh__http_str_t){l.p, i};
  size_t b = i + 1, e = l.n;
  while (b < e && (l.p[b] == ' ' || l.p[b] == '\t'))
    b++;
  while (e > b && (l.p[e - 1] == ' ' || l.p[e - 1] == '\t'))
    e--;
  for (size_t k = b; k < e; k++)
    if (!mesh__http_is_value_char((unsigned char)l.p[k]))
      return bad(msg, MESH_ERR_HTTP_PARSE,
                 "control character in header field value");
  h->value = (mesh__http_str_t){l.p + b, e - b};
  return MESH_OK;
}

/* ---- pass 3: framing semantics ------------------------------------------- */

/* Iterate a comma-separated list: next element with OWS trimmed; empty
 * elements are returned as empty (callers skip them, RFC 9110 5.6.1). */
static bool list_next(mesh__http_str_t *rest, mesh__http_str_t *el) {
  if (!rest->p)
    return false;
  const char *c = memchr(rest->p, ',', rest->n);
  size_t n = c ? (size_t)(c - rest->p) : rest->n;
  el->p = rest->p;
  el->n = n;
  while (el->n && (el->p[0] == ' ' || el->p[0] == '\t')) {
    el->p++;
    el->n--;
  }
  while (el->n && (el->p[el->n - 1] == ' ' || el->p[el->n - 1] == '\t'))
    el->n--;
  if (c) {
    rest->n -= n + 1;
    rest->p = c + 1;
  } else {
    rest->p = NULL;
    rest->n = 0;
  }
  return true;
}

typedef struct framing_state {
  bool have_cl, have_te, te_chunked_last;
  uint64_t cl;
  int nhost;
  bool conn_close, conn_keep_alive;
} framing_state_t;

static int take_content_length(mesh__http_msg_t *msg, framing_state_t *f,
                               mesh__http_str_t v) {
  mesh__http_str_t rest = v, el;
  bool any = false;
  while (list_next(&rest, &el)) {
    if (el.n == 0 || el.n > 19)
      return bad(msg, MESH_ERR_HTTP_PARSE, "invalid Content-Length");
    uint64_t n = 0;
    for (size_t i = 0; i < el.n; i++) {
      if (el.p[i] < '0' || el.p[i] > '9')
        return bad(msg, MESH_ERR_HTTP_PARSE, "invalid Content-Length");
      n = n * 10 + (uint64_t)(el.p[i] - '0');
    }
    if (f->have_cl && n != f->cl)
      return bad(msg, MESH_ERR_HTTP_PARSE, "conflicting Content-Length values");
    f->have_cl = true;
    f->cl = n;
    any = true;
  }
  if (!any)
    return bad(msg, MESH_ERR_HTTP_PARSE, "invalid Content-Length");
  return MESH_OK;
}

/* Content codings that may precede "chunked"; they do not change framing
 * and are passed to the application as they are. */
static bool known_coding(mesh__http_str_t c) {
  static const char *const k[] = {"gzip", "x-gzip", "deflate", "compress",
                                  "x-compress", NULL};
  for (size_t i = 0; k[i]; i++)
    if (mesh__http_str_ieq(c, k[i]))
      return true;
  return false;
}

static int take_transfer_encoding(mesh__http_msg_t *msg, framing_state_t *f,
                                  mesh__http_str_t v) {
  mesh__http_str_t rest = v, el;
  bool any = false;
  while (list_next(&rest, &el)) {
    if (el.n == 0)
      continue;
    any = true;
    if (f->te_chunked_last)
      return bad(msg, MESH_ERR_HTTP_PARSE,
                 "Transfer-Encoding: a coding after chunked");
    if (mesh__http_str_ieq(el, "chunked"))
      f->te_chunked_last = true;
    else if (!known_coding(el))
      return bad(msg, MESH_ERR_HTTP_PARSE,
                 "Transfer-Encoding: unknown or malformed coding");
  }
  if (!any)
    return bad(msg, MESH_ERR_HTTP_PARSE, "empty Transfer-Encoding");
  f->have_te = true;
  return MESH_OK;
}

static int take_host(mesh__http_msg_t *msg, framing_state_t *f,
                     mesh__http_str_t v) {
  if (++f->nhost > 1)
    return bad(msg, MESH_ERR_HTTP_PARSE, "more than one Host header");
  if (!mesh__http_valid_host(v.p, v.n))
    return bad(msg, MESH_ERR_HTTP_PARSE, "invalid Host");
  msg->host = v;
  return MESH_OK;
}

static void take_connection(framing_state_t *f, mesh__http_str_t v) {
  mesh__http_str_t rest = v, el;
  while (list_next(&rest, &el)) {
    if (mesh__http_str_ieq(el, "close"))
      f->conn_close = true;
    else if (mesh__http_str_ieq(el, "keep-alive"))
      f->conn_keep_alive = true;
  }
}

static int scan_fields(mesh__http_msg_t *msg, framing_state_t *f,
                       bool request) {
  for (size_t i = 0; i < msg->nhdrs; i++) {
    mesh__http_str_t n = msg->hdrs[i].name, v = msg->hdrs[i].value;
    int rc = MESH_OK;
    /* by length first: most fields are none of these */
    if (n.n == 14 && mesh__http_str_ieq(n, "content-length"))
      rc = take_content_length(msg, f, v);
    else if (n.n == 17 && mesh__http_str_ieq(n, "transfer-encoding"))
      rc = take_transfer_encoding(msg, f, v);
    else if (request && n.n == 4 && mesh__http_str_ieq(n, "host"))
      rc = take_host(msg, f, v);
    else if (n.n == 10 && mesh__http_str_ieq(n, "connection"))
      take_connection(f, v);
    else if (request && n.n == 6 && mesh__http_str_ieq(n, "expect"))
      msg->expect_continue = mesh__http_str_ieq(v, "100-continue");
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

static int decide_framing(mesh__http_msg_t *msg, const framing_state_t *f,
                          bool request, bool no_body,
                          const mesh__http_limits_t *lim) {
  if (f->have_cl && f->have_te)
    return bad(msg, MESH_ERR_HTTP_PARSE,
               "both Content-Length and Transfer-Encoding");
  if (f->have_te && msg->minor == 0)
    return bad(msg, MESH_ERR_HTTP_PARSE, "Transfer-Encoding in HTTP/1.0");
  if (f->have_te && !f->te_chunked_last)
    return bad(msg, MESH_ERR_HTTP_PARSE,
               "Transfer-Encoding does not end in chunked");
  msg->keep_alive = msg->minor == 1 ? !f->conn_close
                                    : f->conn_keep_alive && !f->conn_close;
  if (no_body) {
    msg->framing = MESH__HTTP_BODY_NONE;
    return MESH_OK;
  }
  if (f->have_te) {
    msg->framing = MESH__HTTP_BODY_CHUNKED;
    return MESH_OK;
  }
  if (f->have_cl) {
    if (f->cl > lim->max_body)
      return bad(msg, MESH_ERR_HTTP_TOO_LARGE,
                 "Content-Length over the body limit");
    msg->framing = MESH__HTTP_BODY_LENGTH;
    msg->content_length = f->cl;
    return MESH_OK;
  }
  if (request) {
    msg->framing = MESH__HTTP_BODY_NONE;
    return MESH_OK;
  }
  msg->framing = MESH__HTTP_BODY_EOF;
  msg->keep_alive = false;
  return MESH_OK;
}

/* ---- entry points -------------------------------------------------------- */

static int parse_head(mesh__http_msg_t *msg, const char *buf, size_t len,
                      bool request, bool head_request,
                      const mesh__http_limits_t *lim) {
  mesh__http_limits_t dl;
  if (!lim) {
    mesh__http_limits_default(&dl);
    lim = &dl;
  }
  if (!msg || (!buf && len))
    return MESH_ERR_INVALID_ARG;
  msg->why = "";
  /* Never look past the limit: what lies beyond it cannot change the
   * answer (too large), so a buffer read in one piece and the same bytes
   * read in many get the same error, and the work is bounded by max_head,
   * not by the caller's buffer. */
  size_t scan = len < lim->max_head ? len : lim->max_head;
  int end = scan_head(msg, buf, scan, request);
  if (end < 0)
    return end;
  if (end == 0)
    return len >= lim->max_head
               ? bad(msg, MESH_ERR_HTTP_TOO_LARGE, "head over the size limit")
               : MESH_ERR_WANT_READ;
  if ((size_t)end > lim->max_head)
    return bad(msg, MESH_ERR_HTTP_TOO_LARGE, "head over the size limit");
  size_t pos = msg->start;
  mesh__http_str_t l = next_line(buf, &pos);
  int rc = request ? parse_request_line(msg, l) : parse_status_line(msg, l);
  if (rc != MESH_OK)
    return rc;
  size_t cap = msg->hdr_cap < lim->max_headers ? msg->hdr_cap
                                               : lim->max_headers;
  msg->nhdrs = 0;
  while (pos < (size_t)end - 2) {
    l = next_line(buf, &pos);
    if (msg->nhdrs >= cap)
      return bad(msg, MESH_ERR_HTTP_TOO_LARGE, "too many header fields");
    rc = parse_field(msg, l, &msg->hdrs[msg->nhdrs]);
    if (rc != MESH_OK)
      return rc;
    msg->nhdrs++;
  }
  framing_state_t f = {0};
  rc = scan_fields(msg, &f, request);
  if (rc != MESH_OK)
    return rc;
  if (request && msg->minor == 1 && f.nhost == 0)
    return bad(msg, MESH_ERR_HTTP_PARSE, "HTTP/1.1 request without Host");
  bool no_body = !request && (head_request || msg->status < 200 ||
                              msg->status == 204 || msg->status == 304);
  rc = decide_framing(msg, &f, request, no_body, lim);
  if (rc != MESH_OK)
    return rc;
  msg->head_len = (size_t)end;
  return end;
}

int mesh__http_parse_request(mesh__http_msg_t *msg, const char *buf,
                             size_t len, const mesh__http_limits_t *lim) {
  return parse_head(msg, buf, len, true, false, lim);
}

int mesh__http_parse_response(mesh__http_msg_t *msg, const char *buf,
                              size_t len, bool head_request,
                              const mesh__http_limits_t *lim) {
  return parse_head(msg, buf, len, false, head_request, lim);
}
