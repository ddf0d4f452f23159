/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: a strict, incremental HTTP/1.1 parser (RFC 9112).
 *
 * No I/O and no allocation: the caller owns the byte buffer and the header
 * array, and every string the parser reports points into the caller's
 * buffer (valid while that buffer is).  Used by http/ (client and server)
 * and by observe/ (admin endpoint).
 *
 * Strictness: the parser refuses every form that two HTTP implementations
 * could frame differently (request smuggling, response splitting):
 *   - Content-Length together with Transfer-Encoding;
 *   - several Content-Length values that differ, or a value that is not
 *     1*DIGIT (sign, hex, spaces, empty, overflow);
 *   - a Transfer-Encoding whose last coding is not "chunked", "chunked"
 *     twice, an unknown coding, or Transfer-Encoding in HTTP/1.0;
 *   - bare CR, bare LF (lines end in CRLF only), obs-fold (a line starting
 *     with SP or HTAB), NUL and other control characters;
 *   - whitespace between a field name and its colon, empty field names,
 *     non-token characters in methods and field names;
 *   - chunk sizes with whitespace, signs, "0x" or more than 16 hex digits;
 *   - HTTP versions other than HTTP/1.0 and HTTP/1.1;
 *   - HTTP/1.1 requests without exactly one Host.
 *
 * Usage (request side):
 *
 *     mesh__http_hdr_t hdrs[64];
 *     mesh__http_msg_t msg;
 *     mesh__http_msg_init(&msg, hdrs, 64);
 *     for (;;) {                       // append bytes to buf, then:
 *       int rc = mesh__http_parse_request(&msg, buf, len, &limits);
 *       if (rc > 0) break;             // head is rc bytes long
 *       if (rc != MESH_ERR_WANT_READ) fail(rc, msg.why);
 *     }
 *     mesh__http_body_t body;
 *     mesh__http_body_init(&body, &msg, &limits);
 *     // feed the bytes after the head to mesh__http_body_parse() ...
 */
#ifndef MESH_HTTP_PARSE_H
#define MESH_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults follow Envoy: max_request_headers_kb = 60, max_headers_count =
 * 100; the body limit is Envoy's per-connection buffer limit (1 MiB). */
#define MESH__HTTP_MAX_HEAD_DEFAULT (60u * 1024u)
#define MESH__HTTP_MAX_HEADERS_DEFAULT 100u
#define MESH__HTTP_MAX_BODY_DEFAULT (1024u * 1024u)
/* A chunk-size line (size + extensions) longer than this is refused, so
 * extensions cannot be used to make the parser spin on garbage. */
#define MESH__HTTP_MAX_CHUNK_LINE 256u

typedef struct mesh__http_limits {
  size_t max_head;    /* start line + header fields + final CRLF, bytes */
  size_t max_headers; /* header fields (also bounded by the caller's array) */
  uint64_t max_body;  /* decoded body bytes; a larger Content-Length is refused */
} mesh__http_limits_t;

/** The defaults above. */
void mesh__http_limits_default(mesh__http_limits_t *l);

/* A borrowed, not NUL-terminated string. */
typedef struct mesh__http_str {
  const char *p;
  size_t n;
} mesh__http_str_t;

typedef struct mesh__http_hdr {
  mesh__http_str_t name;  /* token, as sent (compare case-insensitively) */
  mesh__http_str_t value; /* leading and trailing OWS removed */
} mesh__http_hdr_t;

enum mesh__http_framing {
  MESH__HTTP_BODY_NONE = 0, /* no body */
  MESH__HTTP_BODY_LENGTH,   /* content_length bytes */
  MESH__HTTP_BODY_CHUNKED,  /* chunked transfer coding */
  MESH__HTTP_BODY_EOF,      /* response delimited by connection close */
};

typedef struct mesh__http_msg {
  /* caller's header array (set by mesh__http_msg_init) */
  mesh__http_hdr_t *hdrs;
  size_t hdr_cap;

  /* results, valid once a parse call returned > 0 */
  mesh__http_str_t method;  /* requests */
  mesh__http_str_t target;  /* requests: origin-, absolute-, authority- or "*" */
  int status;               /* responses: 100..599 */
  mesh__http_str_t reason;  /* responses */
  int minor;                /* HTTP/1.<minor>: 0 or 1 */
  size_t nhdrs;
  size_t head_len;          /* bytes of the head, including the final CRLF */
  int framing;              /* enum mesh__http_framing */
  uint64_t content_length;  /* with MESH__HTTP_BODY_LENGTH */
  bool keep_alive;          /* connection may carry another message */
  bool expect_continue;     /* request had "Expect: 100-continue" */
  mesh__http_str_t host;    /* requests: the Host value ("" for 1.0 w/o) */

  /* why the last call failed (static string), "" otherwise */
  const char *why;

  /* internal: resume state of the line scanner */
  size_t scanned; /* start of the first line not yet complete */
  size_t start;   /* start of the start line (after leading CRLFs) */
  bool started;   /* a non-empty line was seen */
} mesh__http_msg_t;

/** Prepare msg for a new message; hdrs[cap] receives the header fields. */
void mesh__http_msg_init(mesh__http_msg_t *msg, mesh__http_hdr_t *hdrs,
                         size_t cap);

/** Parse a request head from buf[0..len).  Call again with the same msg
 *  and a longer buffer (same prefix) when it returns MESH_ERR_WANT_READ;
 *  work already done is not repeated.
 *  @return the head length (> 0) when complete; MESH_ERR_WANT_READ when more
 *          bytes are needed; MESH_ERR_HTTP_PARSE (malformed or ambiguous,
 *          reason in msg->why); MESH_ERR_HTTP_TOO_LARGE (head, header count
 *          or declared body over the limits); MESH_ERR_INVALID_ARG. */
int mesh__http_parse_request(mesh__http_msg_t *msg, const char *buf,
                             size_t len, const mesh__http_limits_t *lim);

/** Parse a response head.  `head_request`: the request was HEAD, so the
 *  response has no body whatever its headers say.  1xx responses parse as
 *  complete messages without a body; the caller skips them.
 *  @return as mesh__http_parse_request. */
int mesh__http_parse_response(mesh__http_msg_t *msg, const char *buf,
                              size_t len, bool head_request,
                              const mesh__http_limits_t *lim);

/** First header named `name` (case-insensitive), or NULL. */
const mesh__http_hdr_t *mesh__http_header(const mesh__http_msg_t *msg,
                                          const char *name);
/** Case-insensitive comparison of a borrowed string with a C string. */
bool mesh__http_str_ieq(mesh__http_str_t s, const char *z);
/** Exact comparison of a borrowed string with a C string. */
bool mesh__http_str_eq(mesh__http_str_t s, const char *z);
/** Is c a tchar (RFC 9110 token character)? */
bool mesh__http_is_tchar(unsigned char c);
/** Is c allowed in a field value (field-vchar, SP, HTAB; RFC 9110 5.5)? */
bool mesh__http_is_value_char(unsigned char c);
/** Is s a valid field value (VCHAR / obs-text / SP / HTAB, no leading or
 *  trailing whitespace)?  Used before writing caller-supplied headers. */
bool mesh__http_valid_value(const char *s, size_t n);
/** Is s a non-empty token? */
bool mesh__http_valid_token(const char *s, size_t n);
/** Is s a valid Host value / target authority (uri-host [":" port],
 *  loosely: the characters of reg-name, IP-literal and IPv4)? */
bool mesh__http_valid_host(const char *s, size_t n);

/* ---- body framing -------------------------------------------------------- */

typedef struct mesh__http_body {
  int framing;
  uint64_t remaining; /* LENGTH: bytes left; CHUNKED: bytes left in chunk */
  uint64_t total;     /* decoded bytes so far */
  uint64_t max;       /* limit on total */
  size_t max_trailer; /* limit on trailer section bytes */
  size_t line;        /* bytes in the current size / trailer line */
  size_t trailer;     /* trailer section bytes so far */
  int state;
  int digits;
  bool done;
  const char *why;
} mesh__http_body_t;

/** Set up body framing from a parsed head. */
void mesh__http_body_init(mesh__http_body_t *b, const mesh__http_msg_t *msg,
                          const mesh__http_limits_t *lim);

/** Consume body bytes from in[0..len).  *used receives the bytes consumed;
 *  *data the next span of decoded body (pointing into in), possibly empty.
 *  Call repeatedly, advancing `in` by *used, until it asks for more input
 *  or b->done; bytes after the end of the body are not consumed (they
 *  belong to the next message).
 *  @return MESH_OK (data returned and/or body finished: check b->done);
 *          MESH_ERR_WANT_READ (all of in consumed, need more);
 *          MESH_ERR_HTTP_PARSE (bad chunk syntax, reason in b->why);
 *          MESH_ERR_HTTP_TOO_LARGE (body or trailers over the limits). */
int mesh__http_body_parse(mesh__http_body_t *b, const char *in, size_t len,
                          size_t *used, mesh__http_str_t *data);

/** The connection reached EOF.  @return MESH_OK when that ends the body
 *  cleanly (EOF framing, or already done), else MESH_ERR_HTTP_PARSE
 *  (truncated). */
int mesh__http_body_eof(mesh__http_body_t *b);

#endif /* MESH_HTTP_PARSE_H */
