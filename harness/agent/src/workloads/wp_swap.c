/*
 * wp-swap: after MADV_PAGEOUT the uffd-wp bit lives in the swap entry (or, for file
 * pages, a PTE marker): pagemap bit 57 survives, pages read back stay protected, and
 * writes after swap-in, or straight onto swapped pages, still fault.
 */
#define _GNU_SOURCE
#include "fixture.h"
#include "wp_evict.h"

static void swap_out(struct fx *fx)
{
	struct result *r = fx->r;

	set_phase(r, "MADV_PAGEOUT");
	check_errno(r, "madv-pageout", wp_page_out(fx), 0, "madvise(MADV_PAGEOUT)");
	check_present(r, "paged-out", fx->a.base, fx->a.size, false);
	check_wp_bits(r, "wp-bit-kept-when-swapped", fx->a.base, fx->a.size, true);
}

void wp_swap(struct run *run)
{
	if (!need_wp(run, 0))
		return;
	const char *why = swap_missing();

	if (why) {
		skip(run->r, "%s", why);
		return;
	}
	wp_evict(run, swap_out, 0, 0);
}
