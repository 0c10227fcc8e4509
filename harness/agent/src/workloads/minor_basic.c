/*
 * minor-basic: the minor-fault round trip. The page is already in the page cache (written
 * through the alias); a registered mapping touching it for the first time raises a MINOR
 * message; UFFDIO_CONTINUE maps that very page, and a second CONTINUE is EEXIST.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "fixture.h"
#include "minor_fixture.h"
#include "uffd.h"
#include "util.h"

/* minor-basic repeats every CONTINUE: the page is then mapped, so it must be EEXIST. */
struct again {
	struct fx *fx;
	uint64_t not_eexist, mapped_wrong;
	int last_rc;
	int64_t last_mapped;
};

static void continue_twice(struct handler *h, int fd, const struct uffd_msg *m)
{
	struct again *ag = h->user;
	size_t unit = ag->fx->a.psize;
	void *start = (void *)(uintptr_t)(m->arg.pagefault.address & ~(uint64_t)(unit - 1));
	int64_t mapped = 0;
	int rc;

	handler_resolve(h, fd, m);
	if (!(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR))
		return;
	rc = uffd_continue(fd, start, unit, 0, &mapped);
	if (rc != -EEXIST) {
		__atomic_fetch_add(&ag->not_eexist, 1, __ATOMIC_RELAXED);
		ag->last_rc = -rc;
	}
	if (mapped != -EEXIST) {
		__atomic_fetch_add(&ag->mapped_wrong, 1, __ATOMIC_RELAXED);
		ag->last_mapped = mapped;
	}
}

void minor_basic(struct run *run)
{
	struct result *r = run->r;
	struct again ag = { 0 };
	size_t n, *pages;
	struct fx fx;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, 0, run->features & UFFD_FEATURE_EXACT_ADDRESS, 0, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	if (!register_minor(&fx, 0))
		goto out;
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL) || !alias_writes(&fx, "alias-modify", GEN_WRITTEN))
		return;
	check_present(r, "registered-view-unmapped", fx.a.base, fx.a.size, false);
	ag.fx = &fx;
	fx.h.user = &ag;
	fx.h.on_fault = continue_twice;
	if (!read_expect_minor(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-reads", 0, pages, n);
	check_value(r, "second-continue-is-eexist", (long long)ag.not_eexist, 0,
		    "repeated CONTINUEs not failing with EEXIST (the last: %s)", errno_name(ag.last_rc));
	check_value(r, "second-continue-mapped-is-eexist", (long long)ag.mapped_wrong, 0,
		    "repeated CONTINUEs whose mapped was not -EEXIST (the last: %lld)", (long long)ag.last_mapped);
	check_present(r, "registered-view-mapped", fx.a.base, fx.a.size, true);
	check_data(&fx, "reads-see-alias-bytes", fx.a.base, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}
