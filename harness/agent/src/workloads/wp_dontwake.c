/*
 * wp-dontwake: WP|DONTWAKE is EINVAL; unprotecting with DONTWAKE clears the protection of
 * a page whose WP fault is held, but the writer sleeps on until UFFDIO_WAKE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "fixture.h"
#include "uffd.h"

void wp_dontwake(struct run *run)
{
	struct result *r = run->r;
	struct solo *s;
	struct fx fx;
	unsigned *gens;
	char *page0;
	int rc;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	fx.h.on_fault = handler_hold;
	page0 = fx.a.base;
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	rc = uffd_writeprotect(fx.uffd, page0, fx.a.psize,
			       UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	check_errno(r, "wp-with-dontwake-is-einval", -rc, EINVAL, "UFFDIO_WRITEPROTECT mode WP|DONTWAKE");

	set_phase(r, "write page 0 and hold the fault");
	s = solo_start(r, &fx.a, fx.a.base, 0, run->seed, GEN_WRITTEN, true, &rc);
	/* Control follows what happened, not the check: with its expectation perturbed the
	 * writer is running, and tearing its area down under its held fault kills the runner. */
	check_errno(r, "start-writer", rc, 0, "pthread_create");
	if (!s)
		goto out;
	if (!check_value(r, "fault-delivered", handler_wait(&fx.h, 1, WAIT_MS), 1,
			 "WP fault message within %u ms of writing a protected page", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	check_value(r, "writer-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "writer thread asleep in the fault within %u ms", WAIT_MS);

	set_phase(r, "unprotect with DONTWAKE");
	rc = uffd_writeprotect(fx.uffd, page0, fx.a.psize, UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	check_errno(r, "unprotect-dontwake", -rc, 0, "UFFDIO_WRITEPROTECT mode DONTWAKE (unprotect)");
	check_wp_bits(r, "wp-bit-clear-after-dontwake", page0, fx.a.psize, false);
	check_value(r, "writer-still-blocked", solo_finished(s, QUIET_MS), 0,
		    "writer finished within %u ms of an unprotect with DONTWAKE", QUIET_MS);

	set_phase(r, "wake");
	rc = uffd_wake(fx.uffd, page0, fx.a.psize);
	check_errno(r, "wake", -rc, 0, "UFFDIO_WAKE");
	if (!check_value(r, "writer-completes-after-wake", solo_finished(s, WAIT_MS), 1,
			 "writer finished within %u ms of UFFDIO_WAKE", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	solo_free(s);
	check_value(r, "one-wp-fault", (long long)handler_stats(&fx.h).wp, 1, "WP fault messages for one write");
	gens = calloc(fx.a.npages, sizeof(*gens));
	if (!gens)
		abort();
	for (size_t i = 0; i < fx.a.npages; i++)
		gens[i] = i ? GEN_INITIAL : GEN_WRITTEN;
	check_data(&fx, "data-intact", fx.a.base, gens, 0);
	free(gens);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}
