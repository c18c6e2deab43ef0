// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The HTTP/1.x ferryd speaks (http.h): request heads in, status lines in. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

int http_status_line(const char *buf, size_t len)
{
	/* D: a digit; the 13th byte is SP or CR. */
	static const char pat[] = "HTTP/D.D DDD";
	size_t i;
	int code = 0;

	for (i = 0; i < len && i < sizeof(pat); i++) {
		unsigned char c = buf[i];

		if (i == sizeof(pat) - 1) {
			if (c != ' ' && c != '\r')
				return -EPROTO;
		} else if (pat[i] == 'D') {
			if (c < '0' || c > '9')
				return -EPROTO;
			if (i >= 9)
				code = code * 10 + (c - '0');
		} else if (c != (unsigned char)pat[i]) {
			return -EPROTO;
		}
	}
	return i == sizeof(pat) ? code : -EAGAIN;
}

size_t http_head_end(const char *p, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i - 1] == '\n')
			return i + 1;
		if (i >= 3 && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
			return i + 1;
	}
	return 0;
}

bool http_wants_gzip(const char *v)
{
	char buf[512], *tok, *save = NULL;
	int named = -1, star = -1;	/* -1: not listed, else accepted (q > 0) */

	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *params = strchr(tok, ';'), *end, *qv;
		int ok;

		if (params)
			*params++ = '\0';
		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (end = tok + strlen(tok); end > tok && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		qv = params ? strcasestr(params, "q=") : NULL;
		ok = !qv || strtod(qv + 2, NULL) > 0;
		if (!strcasecmp(tok, "gzip") || !strcasecmp(tok, "x-gzip"))
			named = named == 1 ? 1 : ok;
		else if (!strcmp(tok, "*"))
			star = ok;
	}
	return named >= 0 ? named : star == 1;
}

/* One header line "Name: value" of a request into r. */
static void req_header(char *line, struct http_req *r)
{
	char *colon = strchr(line, ':'), *v, *end;

	if (!colon)
		return;
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v + strlen(v); end > v && (end[-1] == '\r' || end[-1] == ' '); end--)
		;
	*end = '\0';
	if (!strcasecmp(line, "accept-encoding"))
		r->gzip = http_wants_gzip(v);
	else if (!strcasecmp(line, "connection"))
		r->close = strcasestr(v, "close") ? true : strcasestr(v, "keep-alive") ? false : r->close;
	else if ((!strcasecmp(line, "content-length") && strcmp(v, "0")) ||
		 !strcasecmp(line, "transfer-encoding"))
		r->body = true;
}

int http_req_parse(char *head, struct http_req *r)
{
	char *line, *save = NULL, *version, *q, *method, *target;

	memset(r, 0, sizeof(*r));
	line = strtok_r(head, "\n", &save);
	method = line ? strtok_r(line, " \r", &q) : NULL;
	target = method ? strtok_r(NULL, " \r", &q) : NULL;
	version = target ? strtok_r(NULL, " \r", &q) : NULL;
	if (!version || strtok_r(NULL, " \r", &q) || target[0] != '/')
		return 400;
	if (strncmp(version, "HTTP/1.", 7) || version[7] < '0' || version[7] > '9' || version[8])
		return 505;
	r->close = version[7] == '0';
	while ((line = strtok_r(NULL, "\n", &save)))
		req_header(line, r);
	if (r->body)
		r->close = true;	/* no bodies are read: the rest of the stream is garbage */
	if ((q = strchr(target, '?')))
		*q = '\0';
	r->method = method;
	r->target = target;
	r->head = !strcmp(method, "HEAD");
	return 0;
}
