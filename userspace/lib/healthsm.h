/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The health verdict of one backend from its active probe results (ferryd's
 * health.c runs the probes). Pure logic, unit-tested in test_health.c.
 *
 * A probe FAILs when the connect is refused, reset or unreachable, when no
 * answer comes within timeout_ms, or (http) when the status is not 2xx/3xx.
 * It PASSes SLOWly when it succeeds after more than half of timeout_ms.
 *
 *   UNHEALTHY  the last unhealthy_after probes all failed; it stays
 *              UNHEALTHY until healthy_after probes in a row pass.
 *   DEGRADED   reachable but not well: one of the last HEALTH_WINDOW (8)
 *              probes failed (intermittent: fewer than unhealthy_after in a
 *              row), or one of the last healthy_after probes was slow.
 *              Failures from before a recovery from UNHEALTHY do not count.
 *   HEALTHY    the last healthy_after probes passed in time, and none of
 *              the last HEALTH_WINDOW failed.
 *   UNKNOWN    no verdict yet (fewer than healthy_after passes, no failure);
 *              selection treats it as healthy.
 */
#ifndef FERRY_HEALTHSM_H
#define FERRY_HEALTHSM_H

#include <stddef.h>
#include <linux/types.h>

#include "registry.h"

#define HEALTH_WINDOW	8

enum probe_result { PROBE_PASS = 0, PROBE_SLOW, PROBE_FAIL };

struct hstate {
	__u8	health;		/* enum ferry_health */
	__u8	n;		/* results in the window, <= HEALTH_WINDOW */
	__u8	fails;		/* bit i: the i-th latest probe failed */
	__u8	slows;		/* bit i: the i-th latest probe passed slowly */
	__u16	consec_ok;
	__u16	consec_fail;
};

/* Start from a verdict already in the maps (a restarted ferryd). */
void hstate_init(struct hstate *h, int health);
/* Record one probe result; returns the new health (enum ferry_health). */
int hstate_update(struct hstate *h, const struct reg_health *cfg, enum probe_result r);
/* The result of a probe that succeeded after latency_ms. */
enum probe_result probe_classify(const struct reg_health *cfg, bool ok, __u32 latency_ms);

#endif /* FERRY_HEALTHSM_H */
