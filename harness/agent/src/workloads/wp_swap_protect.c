/*
 * wp-swap-protect: UFFDIO_WRITEPROTECT on pages that are already swapped out, the other
 * order from wp-swap. Two variants, each on a fresh area and uffd:
 *   on-swapped-   page out first, then protect: change_protection() must put the bit on
 *                 the swap entry (pte_swp_mkuffd_wp) for anonymous pages, and a PTE marker
 *                 over the none pte a swapped shmem page leaves; pagemap bit 57 then shows
 *                 on entries that are not present, a read swaps the page in protected
 *                 (do_swap_page, or the marker's fault-in) and every write still faults.
 *   off-swapped-  protect, page out, then unprotect while swapped: the bit must leave the
 *                 swap entry (pte_swp_clear_uffd_wp), or the marker must go; pagemap bit 57
 *                 is clear on the swapped entries, swap-in maps them unprotected and
 *                 writes raise no message.
 * That the pages really went to swap is checked first: smaps "Swap:" covers the whole
 * area (for shmem, that of a shared view of the file: its swapped pages live in the
 * file's mapping, not in a pte) and, for
 * anonymous memory, every pagemap entry is a swap entry (bit 62).
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"
#include "wp_evict.h"

/* The pages read back: mapped again, without bit 57, holding the initial bytes. */
static void check_read_back(struct fx *fx, const size_t *pages, size_t n)
{
	size_t wp = 0, present = 0, entries = 0, bad = 0;

	for (size_t i = 0; i < n; i++) {
		char *p = fx->a.base + pages[i] * fx->a.psize;
		struct pm_counts c;

		if (!pagemap_count(p, fx->a.psize, &c)) {
			wp += c.wp;
			present += c.present;
			entries += c.entries;
		}
		bad += area_mismatches(&fx->a, fx->a.base, pages[i], pages[i] + 1, fx->run->seed, NULL, GEN_INITIAL,
				       NULL);
	}
	check_value(fx->r, "swapped-in-by-read", (long long)present, (long long)(n * fx->a.psize / BASE_PAGE),
		    "4K entries present in the pages read back");
	check_value(fx->r, "wp-bit-clear-after-read", (long long)wp, 0,
		    "4K entries (%zu readable) with pagemap bit 57 in the pages read back", entries);
	check_value(fx->r, "read-data-intact", (long long)bad, 0, "4K subpages read back without the initial bytes");
}

static void protect_swapped(struct run *run)
{
	struct result *r = run->r;
	struct fx fx;

	check_prefix(r, "on-swapped-");
	if (!fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	check_wp_bits(r, "wp-bit-clear-before", fx.a.base, fx.a.size, false);
	if (!wp_swap_out(&fx, false))
		goto out;
	check_wp_bits(r, "wp-bit-clear-when-swapped", fx.a.base, fx.a.size, false);

	set_phase(r, "protect swapped pages");
	if (!fx_protect(&fx, "protect-swapped", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-on-swapped", fx.a.base, fx.a.size, true);
	check_present(r, "still-swapped-after-protect", fx.a.base, fx.a.size, false);

	if (!wp_read_back_then_write(&fx) && r->stuck)
		return;
out:
	fx_teardown(&fx);
}

static void unprotect_swapped(struct run *run)
{
	struct result *r = run->r;
	size_t n_even, n_all, *even = NULL, *all = NULL;
	struct fx fx;

	check_prefix(r, "off-swapped-");
	if (!fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	even = page_list(fx.a.npages, PAGES_EVEN, run->seed, &n_even);
	all = page_list(fx.a.npages, PAGES_ALL, run->seed, &n_all);
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	if (!wp_swap_out(&fx, false))
		goto out;
	check_wp_bits(r, "wp-bit-kept-when-swapped", fx.a.base, fx.a.size, true);

	set_phase(r, "unprotect swapped pages");
	if (!fx_protect(&fx, "unprotect-swapped", fx.a.base, fx.a.size, false))
		goto out;
	check_wp_bits(r, "wp-bit-clear-on-swapped", fx.a.base, fx.a.size, false);
	check_present(r, "still-swapped-after-unprotect", fx.a.base, fx.a.size, false);

	set_phase(r, "read back even pages");
	if (!check_value(r, "reads-complete", read_pages(r, &fx.a, fx.a.base, even, n_even, run->threads, false, WAIT_MS),
			 1, "reader threads finished within %u ms", WAIT_MS))
		return;
	check_value(r, "reads-raise-no-fault", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages after reading pages back");
	check_read_back(&fx, even, n_even);
	/* The odd pages are written straight onto their swap entries. */
	if (!write_expect_quiet(&fx, all, n_all))
		return;
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(even);
	free(all);
}

void wp_swap_protect(struct run *run)
{
	if (!need_wp(run, 0))
		return;
	if (!swap_active()) {
		skip(run->r, "no swap: /proc/swaps lists no active swap area");
		return;
	}
	protect_swapped(run);
	if (run->r->stuck)
		return;
	unprotect_swapped(run);
}
