/*
 * continue-wp: UFFDIO_CONTINUE_MODE_WP (6.4) maps pages write-protected: bit 57 set, each
 * write raises one WP fault; the mode is EINVAL where WP is not registered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "minor_fixture.h"
#include "uffd.h"

/* REGISTER offers CONTINUE_MODE_WP only implicitly: it must fail where WP is not registered. */
static void continue_wp_needs_wp(struct fx *fx)
{
	struct result *r = fx->r;
	char *view = mmap(NULL, fx->a.size, PROT_READ | PROT_WRITE, MAP_SHARED, fx->a.fd, 0);
	int rc;

	if (!check_errno(r, "map-third-view", view == MAP_FAILED ? errno : 0, 0, "mmap a third view of the memfd"))
		return;
	rc = uffd_register(fx->uffd, view, fx->a.size, UFFDIO_REGISTER_MODE_MINOR, NULL);
	if (check_errno(r, "register-minor-view", -rc, 0, "UFFDIO_REGISTER(MODE_MINOR) of the third view")) {
		rc = uffd_continue(fx->uffd, view, fx->a.psize, UFFDIO_CONTINUE_MODE_WP, NULL);
		check_errno(r, "continue-wp-without-wp-is-einval", -rc, EINVAL,
			    "UFFDIO_CONTINUE mode WP on a range registered without MODE_WP");
	}
	munmap(view, fx->a.size);
}

void continue_wp(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages;
	struct hstats before;
	struct fx fx;
	bool ok;

	if (!need_minor(run) || !need_wp(run, 0))
		return;
	/* The mode has no feature bit; the selftests take WP_UNPOPULATED, from the same release. */
	if (!(run->features & UFFD_FEATURE_WP_UNPOPULATED)) {
		skip(r, "kernel lacks UFFDIO_CONTINUE_MODE_WP (6.4; no feature bit of its own, and "
			"UFFD_FEATURE_WP_UNPOPULATED from the same release is missing)");
		return;
	}
	if (!fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	fx.h.continue_mode = UFFDIO_CONTINUE_MODE_WP;
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL))
		return;
	set_phase(r, "read through the registered mapping");
	before = handler_stats(&fx.h);
	ok = read_pages(r, &fx.a, fx.a.base, pages, n, run->threads, true, touch_wait_ms(&fx.a, n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", touch_wait_ms(&fx.a, n));
	if (!ok)
		return;
	check_minor_reads(&fx, "one-minor-fault-per-page", before, n);
	check_present(r, "registered-view-mapped", fx.a.base, fx.a.size, true);
	check_wp_bits(r, "continue-wp-sets-wp-bit", fx.a.base, fx.a.size, true);
	check_data(&fx, "reads-see-alias-bytes", fx.a.base, NULL, GEN_INITIAL);

	if (!write_expect_faults(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "wp-fault-addresses-match-writes", n, pages, n);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	continue_wp_needs_wp(&fx);
	check_handler_clean(&fx);
	fx_teardown(&fx);
	free(pages);
}
