/*
 * missing-dontwake: COPY (and ZEROPAGE, not on hugetlb) with DONTWAKE maps the page of a
 * held MISSING fault but leaves the reader asleep until UFFDIO_WAKE; it then sees the
 * copied bytes (zeros).
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fixture.h"
#include "uffd.h"

/*
 * Resolve page p's held MISSING fault with COPY (or ZEROPAGE) in DONTWAKE mode: the page
 * is mapped yet the reader sleeps on until UFFDIO_WAKE. False: the reader is stuck.
 */
static bool fill_dontwake(struct fx *fx, size_t p, bool zeropage, char *src)
{
	struct result *r = fx->r;
	const struct area *a = &fx->a;
	char *page = a->base + p * a->psize;
	size_t spp = subpages_per_page(a);
	int64_t out = 0;
	struct solo *s;
	int rc;

	set_phase(r, "read page %zu, hold the fault, %s with DONTWAKE", p, zeropage ? "ZEROPAGE" : "COPY");
	check_prefix(r, zeropage ? "zeropage-" : "copy-");
	s = solo_start(r, a, a->base, p, fx->run->seed, GEN_INITIAL, false, &rc);
	check_errno(r, "start-reader", rc, 0, "pthread_create");
	if (!s)
		goto out;
	if (!check_value(r, "fault-delivered", handler_wait(&fx->h, p + 1, WAIT_MS), 1,
			 "fault message within %u ms of the read", WAIT_MS)) {
		r->stuck = true;
		goto stuck;
	}
	check_value(r, "reader-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "reader thread asleep in the fault within %u ms", WAIT_MS);
	if (zeropage) {
		rc = uffd_zeropage(fx->uffd, page, a->psize, UFFDIO_ZEROPAGE_MODE_DONTWAKE, &out);
	} else {
		for (size_t i = 0; i < spp; i++)
			*stamp_at(src, i) = stamp(fx->run->seed, GEN_INITIAL, p * spp + i);
		rc = uffd_copy(fx->uffd, page, src, a->psize, UFFDIO_COPY_MODE_DONTWAKE, &out);
	}
	check_errno(r, "dontwake-succeeds", -rc, 0, "the fill with DONTWAKE");
	check_value(r, "dontwake-reports-length", out, (long long)a->psize, "its output field");
	check_present(r, "mapped-before-wake", page, a->psize, true);
	check_value(r, "reader-still-blocked", solo_finished(s, QUIET_MS), 0,
		    "reader finished within %u ms of a fill with DONTWAKE", QUIET_MS);
	check_errno(r, "wake", -uffd_wake(fx->uffd, page, a->psize), 0, "UFFDIO_WAKE");
	if (!check_value(r, "reader-completes-after-wake", solo_finished(s, WAIT_MS), 1,
			 "reader finished within %u ms of UFFDIO_WAKE", WAIT_MS)) {
		r->stuck = true;
		goto stuck;
	}
	/* The reader counts the 4K subpages that lack generation GEN_INITIAL's stamp. */
	check_value(r, "reader-sees-filled-bytes", (long long)s->bad, zeropage ? (long long)spp : 0,
		    "4K subpages of page %zu without the copied stamp, as the reader saw them", p);
	solo_free(s);
out:
	check_prefix(r, "");
	return true;
stuck:
	check_prefix(r, "");
	return false;
}

void missing_dontwake(struct run *run)
{
	struct fx fx;
	char *src;

	if (!need_features(run, missing_features(run->mem)) ||
	    !fx_setup(&fx, run, 2, 0, 0, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	fx.h.on_fault = handler_hold;
	src = calloc(1, fx.a.psize);
	if (!src)
		abort();
	if (!fill_dontwake(&fx, 0, false, src))
		return;
	if (!mem_info(run->mem)->hugetlb && !fill_dontwake(&fx, 1, true, src))
		return;
	free(src);
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
