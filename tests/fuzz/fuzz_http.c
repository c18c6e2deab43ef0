// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the HTTP ferryd reads from the network (http.h):
 * what a peer of the metrics endpoint sends, cut into request heads the way
 * the server does (http_head_end() on a buffer of the server's size, then
 * http_req_parse() on each head), and what a probed backend answers
 * (http_status_line()). Under ASan and UBSan; the results must also keep
 * their promises: a head ends inside the buffer, a parsed target is a path,
 * a status code is three digits.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), head[HTTP_HEAD_MAX + 1];
	size_t off = 0, n;
	int code;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	code = http_status_line(buf, size);
	if (code != -EAGAIN && code != -EPROTO && (code < 0 || code > 999))
		abort();
	/* Pipelined heads, each parsed as the server would. */
	while (off < size) {
		size_t avail = size - off < HTTP_HEAD_MAX ? size - off : HTTP_HEAD_MAX;
		struct http_req r;

		n = http_head_end(buf + off, avail);
		if (!n)
			break;
		if (n > avail)
			abort();
		memcpy(head, buf + off, n);
		head[n] = '\0';
		if (!http_req_parse(head, &r) && (r.target[0] != '/' || !r.method[0] ||
						  strchr(r.target, '?') || (r.body && !r.close)))
			abort();
		off += n;
	}
	http_wants_gzip(buf);
	free(buf);
	return 0;
}
