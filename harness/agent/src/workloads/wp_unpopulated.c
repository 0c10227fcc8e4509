/*
 * wp-unpopulated: protecting memory that has no pages yet. File memory (shmem, hugetlb)
 * gets uffd-wp PTE markers by default; anonymous memory only with
 * UFFD_FEATURE_WP_UNPOPULATED. The markers show as pagemap bit 57, unprotect removes
 * them, a read over a marker populates without faulting and keeps the protection, and a
 * write (after a read, or straight onto the marker) raises a WP fault. On anonymous
 * memory MADV_DONTNEED drops the markers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"

static void check_read_back(struct fx *fx, const size_t *pages, size_t n)
{
	size_t spp = subpages_per_page(&fx->a), nonzero = 0, wp = 0, entries = 0;

	for (size_t i = 0; i < n; i++) {
		struct pm_counts c;

		for (size_t s = pages[i] * spp; s < (pages[i] + 1) * spp; s++)
			nonzero += *stamp_at(fx->a.base, s) != 0;
		if (!pagemap_count(fx->a.base + pages[i] * fx->a.psize, fx->a.psize, &c)) {
			wp += c.wp;
			entries += c.entries;
		}
	}
	check_value(fx->r, "reads-see-zeros", (long long)nonzero, 0, "4K subpages read back that were not zero");
	check_value(fx->r, "wp-bit-kept-after-read", (long long)wp, (long long)(n * spp),
		    "4K entries (%zu readable) with pagemap bit 57 in the pages read", entries);
}

static void drop_anon_markers(struct fx *fx)
{
	struct result *r = fx->r;

	set_phase(r, "MADV_DONTNEED over anonymous markers");
	if (!fx_protect(fx, "protect-again", fx->a.base, fx->a.size, true))
		return;
	check_errno(r, "madv-dontneed", madvise(fx->a.base, fx->a.size, MADV_DONTNEED) ? errno : 0, 0,
		    "madvise(MADV_DONTNEED)");
	check_wp_bits(r, "dontneed-drops-anon-markers", fx->a.base, fx->a.size, false);
}

void wp_unpopulated(struct run *run)
{
	bool anon = mem_info(run->mem)->anon;
	uint64_t feature = anon ? UFFD_FEATURE_WP_UNPOPULATED : 0;
	struct result *r = run->r;
	size_t n_even, n_all, *even = NULL, *all = NULL;
	struct fx fx;

	if (!need_wp(run, feature) || !fx_setup(&fx, run, 0, 0, feature, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	even = page_list(fx.a.npages, PAGES_EVEN, run->seed, &n_even);
	all = page_list(fx.a.npages, PAGES_ALL, run->seed, &n_all);
	set_phase(r, "protect unpopulated memory");
	if (!fx_protect(&fx, "protect-unpopulated", fx.a.base, fx.a.size, true))
		goto out;
	check_present(r, "nothing-present", fx.a.base, fx.a.size, false);
	check_wp_bits(r, "marker-wp-bit-set", fx.a.base, fx.a.size, true);
	if (fx_protect(&fx, "unprotect-first-page", fx.a.base, fx.a.psize, false))
		check_wp_bits(r, "unprotect-clears-marker", fx.a.base, fx.a.psize, false);
	if (fx_protect(&fx, "reprotect-first-page", fx.a.base, fx.a.psize, true))
		check_wp_bits(r, "reprotect-sets-marker", fx.a.base, fx.a.psize, true);

	set_phase(r, "read over markers");
	if (!check_value(r, "reads-complete", read_pages(r, &fx.a, fx.a.base, even, n_even, run->threads, false, WAIT_MS), 1,
			 "reader threads finished within %u ms", WAIT_MS))
		return;
	check_value(r, "reads-raise-no-fault", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages after reading over markers");
	check_read_back(&fx, even, n_even);

	if (!write_expect_faults(&fx, all, n_all))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, all, n_all);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	if (anon)
		drop_anon_markers(&fx);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(even);
	free(all);
}
