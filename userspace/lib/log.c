// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "log.h"

static int log_verbose;
static bool log_json;

void log_init(int verbose, bool json)
{
	log_verbose = verbose;
	log_json = json;
}

static void vlog(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char msg[2048];
	int n;

	if (lvl == LOG_LVL_DEBUG && log_verbose < 1)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (errnum && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
	if (log_json) {
		struct json_object *o = json_object_new_object();
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		json_object_object_add(o, "ts", json_object_new_double(ts.tv_sec + ts.tv_nsec / 1e9));
		json_object_object_add(o, "level", json_object_new_string(names[lvl]));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		fprintf(stderr, "ferry: %s%s\n", lvl <= LOG_LVL_WARN ? (lvl == LOG_LVL_ERROR ? "error: " : "warning: ") : "", msg);
	}
}

#define LOGFN(name, lvl, witherr)				\
void name(const char *fmt, ...)					\
{								\
	int saved = errno;					\
	va_list ap;						\
	va_start(ap, fmt);					\
	vlog(lvl, witherr ? saved : 0, fmt, ap);		\
	va_end(ap);						\
	errno = saved;						\
}

LOGFN(log_warn, LOG_LVL_WARN, 1)
LOGFN(log_warnx, LOG_LVL_WARN, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n;

	if (level == LIBBPF_DEBUG && log_verbose < 2)
		return 0;
	if (level == LIBBPF_INFO && log_verbose < 1)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (level == LIBBPF_WARN)
		log_warnx("libbpf: %s", buf);
	else
		log_debug("libbpf: %s", buf);
	return 0;
}

void log_libbpf_setup(void)
{
	libbpf_set_print(libbpf_print);
}
