// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <string.h>

#include "healthsm.h"

void hstate_init(struct hstate *h, int health)
{
	memset(h, 0, sizeof(*h));
	h->health = health;
}

enum probe_result probe_classify(const struct reg_health *cfg, bool ok, __u32 latency_ms)
{
	if (!ok)
		return PROBE_FAIL;
	return latency_ms > cfg->timeout_ms / 2 ? PROBE_SLOW : PROBE_PASS;
}

static __u8 window_mask(unsigned n)
{
	return n >= 8 ? 0xff : (__u8)((1U << n) - 1);
}

int hstate_update(struct hstate *h, const struct reg_health *cfg, enum probe_result r)
{
	unsigned healthy_after = cfg->healthy_after ? cfg->healthy_after : 1;
	unsigned unhealthy_after = cfg->unhealthy_after ? cfg->unhealthy_after : 1;

	h->fails = (__u8)(h->fails << 1) | (r == PROBE_FAIL);
	h->slows = (__u8)(h->slows << 1) | (r == PROBE_SLOW);
	if (h->n < HEALTH_WINDOW)
		h->n++;
	if (r == PROBE_FAIL) {
		h->consec_ok = 0;
		if (h->consec_fail < 0xffff)
			h->consec_fail++;
	} else {
		h->consec_fail = 0;
		if (h->consec_ok < 0xffff)
			h->consec_ok++;
	}

	if (h->consec_fail >= unhealthy_after) {
		h->health = FERRY_HEALTH_UNHEALTHY;
		return h->health;
	}
	if (h->health == FERRY_HEALTH_UNHEALTHY) {
		if (h->consec_ok < healthy_after)
			return h->health;
		h->fails = 0;	/* recovered: the outage is not "intermittent" */
	}
	if ((h->fails & window_mask(h->n)) ||
	    (h->slows & window_mask(h->n < healthy_after ? h->n : healthy_after)))
		h->health = FERRY_HEALTH_DEGRADED;
	else if (h->consec_ok >= healthy_after)
		h->health = FERRY_HEALTH_HEALTHY;
	/* else: not enough passes yet for a new verdict; keep the old one */
	return h->health;
}
