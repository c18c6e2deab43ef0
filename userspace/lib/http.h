/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The HTTP/1.x ferryd speaks: the request heads its metrics endpoint reads
 * (from whoever can reach the port: Prometheus, the kubelet, anyone on the
 * pod network) and the status lines its health probes read (from backends).
 * Pure parsing on buffers, no I/O; unit-tested in test_http.c and fuzzed
 * (tests/fuzz/fuzz_http.c).
 */
#ifndef FERRY_HTTP_H
#define FERRY_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The status code of an HTTP response from its first len bytes: it must
 * start "HTTP/" DIGIT "." DIGIT SP, then exactly three digits, then SP or CR
 * (RFC 9112's status-line). Returns the code (0..999) as soon as those 13
 * bytes are in, -EAGAIN while fewer are and they match so far, -EPROTO as
 * soon as one does not.
 */
int http_status_line(const char *buf, size_t len);

/* The longest request head (request line + headers) ferryd's server reads. */
#define HTTP_HEAD_MAX	8192

/* The length of a request head in p[0..n): through "\r\n\r\n" (or a bare
 * "\n\n"); 0 while it is not complete. */
size_t http_head_end(const char *p, size_t n);

/* What a request head asks; method and target point into the parsed head. */
struct http_req {
	const char *method;
	const char *target;	/* the path: "/..." with any "?query" cut off */
	bool	head;		/* HEAD: headers only */
	bool	gzip;		/* Accept-Encoding takes gzip */
	bool	body;		/* a body follows (Content-Length, Transfer-Encoding) */
	bool	close;		/* the connection ends after the answer (HTTP/1.0,
				 * "Connection: close", or a body: none is read) */
};

/*
 * Parse a request head (NUL-terminated, modified in place). 0 with *r
 * filled; else the status to answer with, the connection to be closed
 * after: 400 (not "METHOD /target HTTP/x.y"), 505 (not HTTP/1.x).
 */
int http_req_parse(char *head, struct http_req *r);

/*
 * Does an Accept-Encoding value take gzip? gzip (or x-gzip) listed with a
 * q-value above 0, or, when neither is listed, "*" with one (RFC 9110
 * 12.5.3: "*" stands for any coding not named). "gzip;q=0" refuses gzip
 * even with "*" beside it.
 */
bool http_wants_gzip(const char *v);

#endif /* FERRY_HTTP_H */
