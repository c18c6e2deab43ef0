/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A small JSON reader that remembers where every value stands (line and
 * column), so a registry error can name file:line:column. json-c, used for
 * all JSON output, keeps no positions; that is why this exists.
 */
#ifndef FERRY_JSONPOS_H
#define FERRY_JSONPOS_H

#include <stddef.h>
#include <stdbool.h>

enum jp_type { JP_NULL, JP_BOOL, JP_NUMBER, JP_STRING, JP_ARRAY, JP_OBJECT };

struct jp_member;

struct jp_value {
	enum jp_type	type;
	int		line, col;
	bool		boolean;
	bool		integer;	/* number written without fraction/exponent */
	double		number;
	long long	ival;		/* integer: the value, saturated at LLONG_MIN/MAX */
	char		*str;		/* JP_STRING; JP_NUMBER: the text as written */
	size_t		len;		/* array items / object members */
	struct jp_value	**items;	/* JP_ARRAY */
	struct jp_member *members;	/* JP_OBJECT */
};

struct jp_member {
	char		*key;
	int		line, col;	/* of the key */
	struct jp_value	*value;
};

struct jp_doc {
	struct jp_value	*root;
	void		*arena;
};

/*
 * Members one object may have: the registry's largest object has nine keys.
 * Duplicate keys are looked for pairwise, so this also bounds that work.
 */
#define JP_MAX_MEMBERS	64
#define JP_STR_(x)	#x
#define JP_STR(x)	JP_STR_(x)

/* Parse text. On error returns -EINVAL and fills err "line:col: what". */
int jp_parse(const char *text, size_t len, struct jp_doc *doc, char *err, size_t errlen);
void jp_free(struct jp_doc *doc);
const char *jp_type_name(enum jp_type t);
/* Member of an object by key, or NULL. */
struct jp_value *jp_get(const struct jp_value *obj, const char *key);

#endif /* FERRY_JSONPOS_H */
