// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the registry: the one input ferry takes from outside
 * the node's operator (a ConfigMap, docs/registry.md). Any byte string goes
 * to registry_parse(); one it accepts is planned against an empty node
 * (plan_registry(), XDP rings included): a document that parses must plan.
 * (Minimal plans over histories are test_reconcile's, with its map model.)
 * Built with AddressSanitizer and UndefinedBehaviorSanitizer (make fuzz), so
 * an out-of-bounds read or a signed overflow in either is a crash.
 *
 * The limits are small (8 services, 64 backends) so that a planned maglev
 * table costs little per input; the parser's own limits are what is fuzzed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/abi.h>
#include "reconcile.h"
#include "registry.h"
#include "state.h"

#define FUZZ_SERVICES	8
#define FUZZ_BACKENDS	64
#define FUZZ_RING_M	251	/* a prime: rings stay cheap to build */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct registry_limits lim = { FUZZ_SERVICES, FUZZ_BACKENDS };
	struct registry reg = { 0 };
	struct fstate st;
	struct plan p;
	char err[256];

	if (registry_parse((const char *)data, size, "fuzz", &lim, &reg, err, sizeof(err))) {
		/* A refusal names its place: "fuzz:line:col: what". */
		if (strncmp(err, "fuzz:", 5))
			abort();
		return 0;
	}
	if (fstate_init(&st, FUZZ_SERVICES, FUZZ_BACKENDS))
		abort();
	st.xring_m = FUZZ_RING_M;
	plan_init(&p);
	if (plan_registry(&p, &st, &reg, err, sizeof(err))) {
		fprintf(stderr, "parsed but not planned: %s\n", err);
		abort();
	}
	plan_free(&p);
	fstate_free(&st);
	registry_free(&reg);
	return 0;
}
