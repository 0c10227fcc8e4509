/*
 * wp-swap: after MADV_PAGEOUT the uffd-wp bit lives in the swap entry (or, for file
 * pages, a PTE marker): pagemap bit 57 survives, pages read back stay protected, and
 * writes after swap-in, or straight onto swapped pages, still fault.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"
#include "wp_evict.h"

/* MADV_PAGEOUT skips pages still in a per-CPU LRU batch; a few rounds get them all. */
static int page_out(struct fx *fx)
{
	int rc = 0;

	for (int round = 0; round < 5; round++) {
		struct pm_counts c;

		rc = madvise(fx->a.base, fx->a.size, MADV_PAGEOUT) ? errno : 0;
		if (rc || pagemap_count(fx->a.base, fx->a.size, &c) || !c.present)
			break;
		sleep_ms(20);
	}
	return rc;
}

static void swap_out(struct fx *fx)
{
	struct result *r = fx->r;

	set_phase(r, "MADV_PAGEOUT");
	check_errno(r, "madv-pageout", page_out(fx), 0, "madvise(MADV_PAGEOUT)");
	check_present(r, "paged-out", fx->a.base, fx->a.size, false);
	check_wp_bits(r, "wp-bit-kept-when-swapped", fx->a.base, fx->a.size, true);
}

void wp_swap(struct run *run)
{
	if (!need_wp(run, 0))
		return;
	if (!swap_active()) {
		skip(run->r, "no swap: /proc/swaps lists no active swap area");
		return;
	}
	wp_evict(run, swap_out);
}
