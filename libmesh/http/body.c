/* SPDX-License-Identifier: Apache-2.0 */
/* Strict HTTP/1.1 body framing (RFC 9112 6-7): Content-Length, chunked
 * (sizes, extensions, trailers) and until-EOF bodies.  Bytes in, spans of
 * decoded body out; no I/O, no allocation (see parse.h). */
#include <string.h>

#include "core/core.h"
#include "http/parse.h"

/* ---- body ---------------------------------------------------------------- */

enum chunk_state {
  CS_SIZE = 0, /* hex digits of the chunk size */
  CS_EXT,      /* after ';': chunk extensions, ignored */
  CS_SIZE_LF,  /* CR of the size line seen */
  CS_DATA,
  CS_DATA_CR,
  CS_DATA_LF,
  CS_TR_START, /* start of a trailer line, or the final CRLF */
  CS_TR_NAME,
  CS_TR_VALUE,
  CS_TR_LF,
  CS_FINAL_LF,
};

void mesh__http_body_init(mesh__http_body_t *b, const mesh__http_msg_t *msg,
                          const mesh__http_limits_t *lim) {
  mesh__http_limits_t dl;
  if (!lim) {
    mesh__http_limits_default(&dl);
    lim = &dl;
  }
  memset(b, 0, sizeof *b);
  b->why = "";
  b->framing = msg->framing;
  b->max = lim->max_body;
  b->max_trailer = lim->max_head;
  b->state = CS_SIZE;
  if (b->framing == MESH__HTTP_BODY_LENGTH)
    b->remaining = msg->content_length;
  b->done = b->framing == MESH__HTTP_BODY_NONE ||
            (b->framing == MESH__HTTP_BODY_LENGTH && b->remaining == 0);
}

static int body_bad(mesh__http_body_t *b, int code, const char *why) {
  b->why = why;
  return code;
}

static int chunk_size_byte(mesh__http_body_t *b, unsigned char c) {
  int v = mesh__hex_digit(c);
  if (v >= 0) {
    if (b->digits == 16)
      return body_bad(b, MESH_ERR_HTTP_PARSE, "chunk size too long");
    b->remaining = b->remaining * 16 + (uint64_t)v;
    b->digits++;
    b->line++;
    return MESH_OK;
  }
  if (b->digits == 0)
    return body_bad(b, MESH_ERR_HTTP_PARSE, "missing chunk size");
  if (c == ';') {
    b->state = CS_EXT;
    b->line++;
    return MESH_OK;
  }
  if (c == '\r') {
    b->state = CS_SIZE_LF;
    return MESH_OK;
  }
  return body_bad(b, MESH_ERR_HTTP_PARSE, "invalid character in chunk size");
}

static int chunk_ext_byte(mesh__http_body_t *b, unsigned char c) {
  if (c == '\r') {
    b->state = CS_SIZE_LF;
    return MESH_OK;
  }
  if ((c < 0x20 && c != '\t') || c == 0x7f)
    return body_bad(b, MESH_ERR_HTTP_PARSE,
                    "control character in chunk extension");
  if (++b->line > MESH__HTTP_MAX_CHUNK_LINE)
    return body_bad(b, MESH_ERR_HTTP_TOO_LARGE, "chunk size line too long");
  return MESH_OK;
}

static int chunk_size_lf(mesh__http_body_t *b, unsigned char c) {
  if (c != '\n')
    return body_bad(b, MESH_ERR_HTTP_PARSE, "bare CR in chunk size line");
  b->line = 0;
  b->digits = 0;
  if (b->remaining == 0) {
    b->state = CS_TR_START;
    return MESH_OK;
  }
  if (b->remaining > b->max - b->total)
    return body_bad(b, MESH_ERR_HTTP_TOO_LARGE, "body over the size limit");
  b->state = CS_DATA;
  return MESH_OK;
}

/* Trailer fields are checked for syntax and dropped: none of them may
 * change framing, and the application does not see them. */
static int trailer_byte(mesh__http_body_t *b, unsigned char c) {
  if (++b->trailer > b->max_trailer)
    return body_bad(b, MESH_ERR_HTTP_TOO_LARGE, "trailers over the limit");
  switch (b->state) {
  case CS_TR_START:
    if (c == '\r') {
      b->state = CS_FINAL_LF;
      return MESH_OK;
    }
    if (!mesh__http_is_tchar(c))
      return body_bad(b, MESH_ERR_HTTP_PARSE, "malformed trailer field");
    b->state = CS_TR_NAME;
    return MESH_OK;
  case CS_TR_NAME:
    if (c == ':')
      b->state = CS_TR_VALUE;
    else if (!mesh__http_is_tchar(c))
      return body_bad(b, MESH_ERR_HTTP_PARSE, "malformed trailer field");
    return MESH_OK;
  case CS_TR_VALUE:
    if (c == '\r')
      b->state = CS_TR_LF;
    else if (!mesh__http_is_value_char(c))
      return body_bad(b, MESH_ERR_HTTP_PARSE, "control character in trailer");
    return MESH_OK;
  case CS_TR_LF:
    if (c != '\n')
      return body_bad(b, MESH_ERR_HTTP_PARSE, "bare CR in trailer");
    b->state = CS_TR_START;
    return MESH_OK;
  default: /* CS_FINAL_LF */
    if (c != '\n')
      return body_bad(b, MESH_ERR_HTTP_PARSE, "bare CR after last chunk");
    b->done = true;
    return MESH_OK;
  }
}

static int chunked(mesh__http_body_t *b, const char *in, size_t len,
                   size_t *used, mesh__http_str_t *data) {
  size_t i = 0;
  while (i < len && !b->done) {
    unsigned char c = (unsigned char)in[i];
    int rc = MESH_OK;
    switch (b->state) {
    case CS_SIZE:
      rc = chunk_size_byte(b, c);
      break;
    case CS_EXT:
      rc = chunk_ext_byte(b, c);
      break;
    case CS_SIZE_LF:
      rc = chunk_size_lf(b, c);
      break;
    case CS_DATA: {
      size_t n = len - i;
      if ((uint64_t)n > b->remaining)
        n = (size_t)b->remaining;
      data->p = in + i;
      data->n = n;
      b->remaining -= n;
      b->total += n;
      if (b->remaining == 0)
        b->state = CS_DATA_CR;
      *used = i + n;
      return MESH_OK;
    }
    case CS_DATA_CR:
      if (c != '\r')
        rc = body_bad(b, MESH_ERR_HTTP_PARSE, "chunk data not followed by CRLF");
      b->state = CS_DATA_LF;
      break;
    case CS_DATA_LF:
      if (c != '\n')
        rc = body_bad(b, MESH_ERR_HTTP_PARSE, "chunk data not followed by CRLF");
      b->state = CS_SIZE;
      b->remaining = 0;
      break;
    default:
      rc = trailer_byte(b, c);
      break;
    }
    if (rc != MESH_OK)
      return rc;
    i++;
  }
  *used = i;
  return b->done ? MESH_OK : MESH_ERR_WANT_READ;
}

int mesh__http_body_parse(mesh__http_body_t *b, const char *in, size_t len,
                          size_t *used, mesh__http_str_t *data) {
  *used = 0;
  data->p = in;
  data->n = 0;
  if (b->done)
    return MESH_OK;
  if (b->framing == MESH__HTTP_BODY_CHUNKED)
    return chunked(b, in, len, used, data);
  if (len == 0)
    return MESH_ERR_WANT_READ;
  size_t n = len;
  if (b->framing == MESH__HTTP_BODY_LENGTH) {
    if ((uint64_t)n > b->remaining)
      n = (size_t)b->remaining;
    b->remaining -= n;
    b->done = b->remaining == 0;
  } else if ((uint64_t)n > b->max - b->total) {
    return body_bad(b, MESH_ERR_HTTP_TOO_LARGE, "body over the size limit");
  }
  b->total += n;
  data->n = n;
  *used = n;
  return MESH_OK;
}

int mesh__http_body_eof(mesh__http_body_t *b) {
  if (b->done)
    return MESH_OK;
  if (b->framing == MESH__HTTP_BODY_EOF) {
    b->done = true;
    return MESH_OK;
  }
  return body_bad(b, MESH_ERR_HTTP_PARSE, "connection closed inside the body");
}
