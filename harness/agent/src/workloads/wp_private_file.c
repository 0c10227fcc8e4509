/*
 * wp-private-file: uffd-wp on a private file mapping whose pages are still the file's.
 * The file is filled through a shared alias; reading every page through the registered
 * private view maps the page-cache pages read-only; protect them. Each write must raise
 * one WP fault before the copy-on-write (for hugetlb, hugetlb_fault() takes the page-cache
 * page's lock for the copy before it sees the uffd-wp bit, and must let go of it before
 * handing the fault to userspace), then copy the page: the private view sees the writes,
 * the file keeps its bytes, bit 57 is clear.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fixture.h"
#include "minor_fixture.h"

void wp_private_file(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages;
	struct fx fx;

	if (!need_wp(run, 0) ||
	    !fx_setup(&fx, run, 0, FX_FILE_ALIAS, 0, UFFDIO_REGISTER_MODE_WP, private_copy_hugepages(run)))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL))
		return;
	set_phase(r, "read the file's pages through the private view");
	if (!check_value(r, "reads-complete",
			 read_pages(r, &fx.a, fx.a.base, pages, n, run->threads, false, touch_wait_ms(&fx.a, n)), 1,
			 "reader threads finished within %u ms", touch_wait_ms(&fx.a, n)))
		return;
	check_value(r, "reads-raise-no-fault", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages after reading every page");
	check_file_pages(&fx, "reads-map-page-cache-pages", true);

	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-on-file-pages", fx.a.base, fx.a.size, true);
	if (!write_expect_faults(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, pages, n);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_private_copies(&fx);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}
