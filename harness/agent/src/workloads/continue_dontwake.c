/*
 * continue-dontwake: CONTINUE with DONTWAKE maps the page of a held MINOR fault but leaves
 * the reader asleep until UFFDIO_WAKE; it then sees the alias's bytes.
 */
#define _GNU_SOURCE
#include "fixture.h"
#include "minor_fixture.h"
#include "uffd.h"

void continue_dontwake(struct run *run)
{
	struct result *r = run->r;
	struct solo *s;
	int64_t mapped = 0;
	struct fx fx;
	int rc;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MINOR, 0))
		return;
	if (!alias_writes(&fx, "alias-fill", GEN_WRITTEN))
		return;
	fx.h.on_fault = handler_hold;

	set_phase(r, "read page 0 and hold the fault");
	s = solo_start(r, &fx.a, fx.a.base, 0, run->seed, GEN_WRITTEN, false, &rc);
	/* Control follows what happened, not the check: with its expectation perturbed the
	 * reader is running, and tearing its area down under its held fault kills the runner. */
	check_errno(r, "start-reader", rc, 0, "pthread_create");
	if (!s)
		goto out;
	if (!check_value(r, "fault-delivered", handler_wait(&fx.h, 1, WAIT_MS), 1,
			 "fault message within %u ms of reading through the registered mapping", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	check_value(r, "fault-is-minor", (long long)handler_stats(&fx.h).minor, 1, "MINOR fault messages");
	check_value(r, "reader-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "reader thread asleep in the fault within %u ms", WAIT_MS);

	set_phase(r, "CONTINUE with DONTWAKE");
	rc = uffd_continue(fx.uffd, fx.a.base, fx.a.psize, UFFDIO_CONTINUE_MODE_DONTWAKE, &mapped);
	if (check_errno(r, "continue-dontwake", -rc, 0, "UFFDIO_CONTINUE mode DONTWAKE"))
		check_value(r, "continue-dontwake-mapped", mapped, (long long)fx.a.psize, "its mapped field");
	check_present(r, "mapped-before-wake", fx.a.base, fx.a.psize, true);
	check_value(r, "reader-still-blocked", solo_finished(s, QUIET_MS), 0,
		    "reader finished within %u ms of a CONTINUE with DONTWAKE", QUIET_MS);

	set_phase(r, "wake");
	check_errno(r, "wake", -uffd_wake(fx.uffd, fx.a.base, fx.a.psize), 0, "UFFDIO_WAKE");
	if (!check_value(r, "reader-completes-after-wake", solo_finished(s, WAIT_MS), 1,
			 "reader finished within %u ms of UFFDIO_WAKE", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	check_value(r, "reader-sees-alias-bytes", (long long)s->bad, 0,
		    "4K subpages of page 0 the reader saw without the alias's bytes");
	solo_free(s);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}
