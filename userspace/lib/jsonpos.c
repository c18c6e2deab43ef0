// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpos.h"

/* Bump allocator: a document is freed at once. */
struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	char data[];
};

static void *arena_alloc(void **arena, size_t n)
{
	struct arena_blk *b = *arena;

	n = (n + 15) & ~(size_t)15;
	if (!b || b->used + n > b->cap) {
		size_t cap = n > (1 << 20) ? n : (1 << 20);

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = *arena;
		b->used = 0;
		b->cap = cap;
		*arena = b;
	}
	b->used += n;
	return memset(b->data + b->used - n, 0, n);
}

struct parser {
	const char *s, *end;
	int line, col;
	void **arena;
	char *err;
	size_t errlen;
	int depth;
};

static int fail(struct parser *p, const char *fmt, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), fmt, what);
	snprintf(p->err, p->errlen, "%d:%d: %s", p->line, p->col, msg);
	return -EINVAL;
}

static void adv(struct parser *p)
{
	if (*p->s == '\n') {
		p->line++;
		p->col = 1;
	} else {
		p->col++;
	}
	p->s++;
}

static void skip_ws(struct parser *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		adv(p);
}

static int parse_value(struct parser *p, struct jp_value **out);

static int put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = 0xc0 | (cp >> 6);
		o[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = 0xe0 | (cp >> 12);
		o[1] = 0x80 | ((cp >> 6) & 0x3f);
		o[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	o[0] = 0xf0 | (cp >> 18);
	o[1] = 0x80 | ((cp >> 12) & 0x3f);
	o[2] = 0x80 | ((cp >> 6) & 0x3f);
	o[3] = 0x80 | (cp & 0x3f);
	return 4;
}

/*
 * Length of the well-formed UTF-8 sequence at s (its first byte >= 0x80), or
 * -1: overlong forms, surrogates (U+D800..U+DFFF), code points above
 * U+10FFFF, stray continuation bytes and truncated sequences are refused.
 */
static int utf8_len(const char *s, const char *end)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	int n, i;

	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		n = 2;
	else if (u[0] >= 0xe0 && u[0] <= 0xef)
		n = 3;
	else if (u[0] >= 0xf0 && u[0] <= 0xf4)
		n = 4;
	else
		return -1;	/* continuation byte, C0/C1 (overlong), F5..FF */
	if (end - s < n)
		return -1;
	if (u[0] == 0xe0)
		lo = 0xa0;	/* overlong */
	else if (u[0] == 0xed)
		hi = 0x9f;	/* surrogates */
	else if (u[0] == 0xf0)
		lo = 0x90;	/* overlong */
	else if (u[0] == 0xf4)
		hi = 0x8f;	/* above U+10FFFF */
	if (u[1] < lo || u[1] > hi)
		return -1;
	for (i = 2; i < n; i++)
		if (u[i] < 0x80 || u[i] > 0xbf)
			return -1;
	return n;
}

static int hex4(struct parser *p, unsigned *cp)
{
	int i;

	*cp = 0;
	for (i = 0; i < 4; i++) {
		char c;

		if (p->s >= p->end)
			return fail(p, "%s", "unterminated \\u escape");
		c = *p->s;
		*cp <<= 4;
		if (c >= '0' && c <= '9')
			*cp |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*cp |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*cp |= c - 'A' + 10;
		else
			return fail(p, "%s", "bad \\u escape");
		adv(p);
	}
	return 0;
}

static int parse_string(struct parser *p, char **out)
{
	const char *start;
	char *o;
	size_t n = 0;

	adv(p);	/* " */
	start = p->s;
	while (start + n < p->end && start[n] != '"')
		n += start[n] == '\\' ? 2 : 1;
	o = arena_alloc(p->arena, n + 1);
	if (!o)
		return -ENOMEM;
	*out = o;
	while (p->s < p->end && *p->s != '"') {
		unsigned char c = *p->s;

		if (c < 0x20)
			return fail(p, "%s", "control character in string");
		if (c >= 0x80) {
			int k = utf8_len(p->s, p->end);

			if (k < 0)
				return fail(p, "%s", "invalid UTF-8 in string");
			while (k--) {
				*o++ = *p->s;
				adv(p);
			}
			continue;
		}
		if (c != '\\') {
			*o++ = c;
			adv(p);
			continue;
		}
		adv(p);
		if (p->s >= p->end)
			break;
		c = *p->s;
		adv(p);
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			int line = p->line, col = p->col - 2;	/* of the backslash */
			unsigned cp;
			int err = hex4(p, &cp);

			if (err)
				return err;
			if (cp >= 0xd800 && cp < 0xdc00) {
				unsigned lo = 0;

				/* A high surrogate must be followed by \u and a low one. */
				if (p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
					int l2 = p->line, c2 = p->col;

					adv(p);
					adv(p);
					if ((err = hex4(p, &lo)))
						return err;
					if (lo < 0xdc00 || lo > 0xdfff) {
						p->line = l2;
						p->col = c2;
						return fail(p, "%s", "\\u escape after a high surrogate is not a low surrogate");
					}
				}
				if (!lo) {
					p->line = line;
					p->col = col;
					return fail(p, "%s", "lone high surrogate in \\u escape");
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				p->line = line;
				p->col = col;
				return fail(p, "%s", "lone low surrogate in \\u escape");
			} else if (!cp) {
				/* Strings become C strings: a NUL would cut them short. */
				p->line = line;
				p->col = col;
				return fail(p, "%s", "\\u0000 (NUL) is not allowed in a string");
			}
			o += put_utf8(o, cp);	/* never longer than the escape */
			break;
		}
		default:
			return fail(p, "%s", "bad escape in string");
		}
	}
	if (p->s >= p->end)
		return fail(p, "%s", "unterminated string");
	adv(p);
	*o = '\0';
	return 0;
}

static bool is_digit(struct parser *p)
{
	return p->s < p->end && *p->s >= '0' && *p->s <= '9';
}

/*
 * The JSON grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
 * The text as written is kept in v->str, for errors about the value.
 */
static int parse_number(struct parser *p, struct jp_value *v)
{
	const char *start = p->s;
	int line = p->line, col = p->col;
	size_t n;
	char *t;

	v->type = JP_NUMBER;
	v->integer = true;
	if (*p->s == '-')
		adv(p);
	if (!is_digit(p)) {
		if (p->s == start)
			return fail(p, "%s", "unexpected character");
		return fail(p, "%s", "bad number: expected a digit after '-'");
	}
	if (*p->s == '0') {
		adv(p);
		if (is_digit(p)) {
			p->line = line;
			p->col = col;
			return fail(p, "%s", "bad number: leading zeros are not allowed");
		}
	} else {
		while (is_digit(p))
			adv(p);
	}
	if (p->s < p->end && *p->s == '.') {
		v->integer = false;
		adv(p);
		if (!is_digit(p))
			return fail(p, "%s", "bad number: expected a digit after '.'");
		while (is_digit(p))
			adv(p);
	}
	if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
		v->integer = false;
		adv(p);
		if (p->s < p->end && (*p->s == '+' || *p->s == '-'))
			adv(p);
		if (!is_digit(p))
			return fail(p, "%s", "bad number: expected a digit in the exponent");
		while (is_digit(p))
			adv(p);
	}
	n = p->s - start;
	t = arena_alloc(p->arena, n + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, start, n);
	t[n] = '\0';
	v->str = t;
	v->number = strtod(t, NULL);
	/* Beyond long long, strtoll saturates: still out of any range checked. */
	v->ival = v->integer ? strtoll(t, NULL, 10) : 0;
	return 0;
}

static int expect_word(struct parser *p, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n))
		return fail(p, "%s", "unexpected character");
	while (n--)
		adv(p);
	return 0;
}

static int parse_array(struct parser *p, struct jp_value *v)
{
	size_t cap = 0;
	int err;

	v->type = JP_ARRAY;
	adv(p);
	skip_ws(p);
	if (p->s < p->end && *p->s == ']') {
		adv(p);
		return 0;
	}
	for (;;) {
		struct jp_value *item;

		if ((err = parse_value(p, &item)))
			return err;
		if (v->len == cap) {
			struct jp_value **n;

			cap = cap ? cap * 2 : 8;
			n = arena_alloc(p->arena, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			if (v->len)
				memcpy(n, v->items, v->len * sizeof(*n));
			v->items = n;
		}
		v->items[v->len++] = item;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			adv(p);
			continue;
		}
		if (p->s < p->end && *p->s == ']') {
			adv(p);
			return 0;
		}
		return fail(p, "%s", "expected ',' or ']'");
	}
}

static int parse_object(struct parser *p, struct jp_value *v)
{
	size_t cap = 0;
	int err;

	v->type = JP_OBJECT;
	adv(p);
	skip_ws(p);
	if (p->s < p->end && *p->s == '}') {
		adv(p);
		return 0;
	}
	for (;;) {
		struct jp_member m = {};
		size_t i;

		skip_ws(p);
		if (p->s >= p->end || *p->s != '"')
			return fail(p, "%s", "expected a string key");
		m.line = p->line;
		m.col = p->col;
		/*
		 * The duplicate check below is quadratic in the members: bounded
		 * here, before any of it, so a huge object cannot stall the caller.
		 */
		if (v->len >= JP_MAX_MEMBERS)
			return fail(p, "%s", "object has more than " JP_STR(JP_MAX_MEMBERS) " members");
		if ((err = parse_string(p, &m.key)))
			return err;
		for (i = 0; i < v->len; i++)
			if (!strcmp(v->members[i].key, m.key)) {
				p->line = m.line;
				p->col = m.col;
				return fail(p, "duplicate key \"%s\"", m.key);
			}
		skip_ws(p);
		if (p->s >= p->end || *p->s != ':')
			return fail(p, "%s", "expected ':'");
		adv(p);
		if ((err = parse_value(p, &m.value)))
			return err;
		if (v->len == cap) {
			struct jp_member *n;

			cap = cap ? cap * 2 : 8;
			n = arena_alloc(p->arena, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			if (v->len)
				memcpy(n, v->members, v->len * sizeof(*n));
			v->members = n;
		}
		v->members[v->len++] = m;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			adv(p);
			continue;
		}
		if (p->s < p->end && *p->s == '}') {
			adv(p);
			return 0;
		}
		return fail(p, "%s", "expected ',' or '}'");
	}
}

static int parse_value(struct parser *p, struct jp_value **out)
{
	struct jp_value *v;
	int err;

	skip_ws(p);
	if (p->s >= p->end)
		return fail(p, "%s", "unexpected end of input");
	if (++p->depth > 64)
		return fail(p, "%s", "nesting too deep");
	v = arena_alloc(p->arena, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->line = p->line;
	v->col = p->col;
	switch (*p->s) {
	case '{': err = parse_object(p, v); break;
	case '[': err = parse_array(p, v); break;
	case '"': v->type = JP_STRING; err = parse_string(p, &v->str); break;
	case 't': v->type = JP_BOOL; v->boolean = true; err = expect_word(p, "true"); break;
	case 'f': v->type = JP_BOOL; err = expect_word(p, "false"); break;
	case 'n': v->type = JP_NULL; err = expect_word(p, "null"); break;
	default: err = parse_number(p, v); break;
	}
	p->depth--;
	*out = v;
	return err;
}

int jp_parse(const char *text, size_t len, struct jp_doc *doc, char *err, size_t errlen)
{
	struct parser p = {
		.s = text, .end = text + len, .line = 1, .col = 1,
		.arena = &doc->arena, .err = err, .errlen = errlen,
	};
	int ret;

	doc->root = NULL;
	doc->arena = NULL;
	ret = parse_value(&p, &doc->root);
	if (!ret) {
		skip_ws(&p);
		if (p.s < p.end)
			ret = fail(&p, "%s", "trailing characters after the document");
	}
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (ret)
		jp_free(doc);
	return ret;
}

void jp_free(struct jp_doc *doc)
{
	struct arena_blk *b = doc->arena, *n;

	for (; b; b = n) {
		n = b->next;
		free(b);
	}
	doc->arena = NULL;
	doc->root = NULL;
}

const char *jp_type_name(enum jp_type t)
{
	static const char *names[] = { "null", "boolean", "number", "string", "array", "object" };

	return names[t];
}

struct jp_value *jp_get(const struct jp_value *obj, const char *key)
{
	size_t i;

	if (!obj || obj->type != JP_OBJECT)
		return NULL;
	for (i = 0; i < obj->len; i++)
		if (!strcmp(obj->members[i].key, key))
			return obj->members[i].value;
	return NULL;
}
