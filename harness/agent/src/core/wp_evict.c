/*
 * The shape wp-swap and wp-zap share: protection must outlive the page table entry.
 * Pagemap bit 57 stays set while the page is away, faulting the page back in keeps it
 * protected, and the next write raises a WP fault. Even pages are read back first
 * (swap-in or fault-in, then write); odd pages are written directly over the swap
 * entry or marker.
 */
#define _GNU_SOURCE
#include "wp_evict.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pagemap.h"
#include "util.h"

static void check_pages(struct fx *fx, const size_t *pages, size_t n, const char *bits_name, const char *data_name)
{
	size_t wp = 0, entries = 0, bad = 0;

	for (size_t i = 0; i < n; i++) {
		char *p = fx->a.base + pages[i] * fx->a.psize;
		struct pm_counts c;

		if (!pagemap_count(p, fx->a.psize, &c)) {
			wp += c.wp;
			entries += c.entries;
		}
		bad += area_mismatches(&fx->a, fx->a.base, pages[i], pages[i] + 1, fx->run->seed, NULL, GEN_INITIAL,
				       NULL);
	}
	check_value(fx->r, bits_name, (long long)wp, (long long)(n * fx->a.psize / BASE_PAGE),
		    "4K entries (%zu readable) with pagemap bit 57 in the pages read back", entries);
	check_value(fx->r, data_name, (long long)bad, 0, "4K subpages read back without the initial bytes");
}

int wp_page_out(struct fx *fx)
{
	cpu_set_t all, one;
	bool pinned = !sched_getaffinity(0, sizeof(all), &all);
	int rc = 0, cpu = -1;

	/*
	 * MADV_PAGEOUT skips pages still in a per-CPU LRU batch, and drains only the batch
	 * of the CPU it runs on: further rounds run on each allowed CPU in turn.
	 */
	for (int round = 0; round < 8; round++) {
		struct pm_counts c;

		rc = madvise(fx->a.base, fx->a.size, MADV_PAGEOUT) ? errno : 0;
		if (rc || pagemap_count(fx->a.base, fx->a.size, &c) || !c.present || !pinned)
			break;
		do
			cpu = (cpu + 1) % CPU_SETSIZE;
		while (!CPU_ISSET(cpu, &all));
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
		sleep_ms(20);
	}
	if (pinned)
		sched_setaffinity(0, sizeof(all), &all);
	return rc;
}

long wp_swap_kb(const struct fx *fx)
{
	char *view;
	long kb;

	if (fx->a.fd < 0)
		return smaps_kb_range(fx->a.base, fx->a.size, "Swap");
	/* A shared view of the file counts all of its pages in swap, whatever maps them. */
	view = mmap(NULL, fx->a.size, PROT_READ, MAP_SHARED, fx->a.fd, 0);
	if (view == MAP_FAILED)
		return -1;
	kb = smaps_kb_range(view, fx->a.size, "Swap");
	munmap(view, fx->a.size);
	return kb;
}

bool wp_read_back_then_write(struct fx *fx)
{
	struct run *run = fx->run;
	struct result *r = fx->r;
	size_t n_even, n_all, *even, *all;
	uint64_t before = handler_stats(&fx->h).received;
	bool done = false;

	even = page_list(fx->a.npages, PAGES_EVEN, run->seed, &n_even);
	all = page_list(fx->a.npages, PAGES_ALL, run->seed, &n_all);
	set_phase(r, "read back even pages");
	if (!check_value(r, "reads-complete", read_pages(r, &fx->a, fx->a.base, even, n_even, run->threads, false, WAIT_MS),
			 1, "reader threads finished within %u ms", WAIT_MS))
		goto out;
	check_value(r, "reads-raise-no-fault", (long long)(handler_stats(&fx->h).received - before), 0,
		    "uffd messages after reading pages back");
	check_pages(fx, even, n_even, "wp-bit-kept-after-read", "read-data-intact");

	if (!write_expect_faults(fx, all, n_all))
		goto out;
	check_fault_addrs(fx, "fault-addresses-match-writes", 0, all, n_all);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx->a.base, fx->a.size, false);
	check_data(fx, "data-intact", fx->a.base, NULL, GEN_WRITTEN);
	if (fx->a.alias)
		check_data(fx, "alias-sees-writes", fx->a.alias, NULL, GEN_WRITTEN);
	check_handler_clean(fx);
	done = true;
out:
	/* Stuck threads may still touch the lists: leave them to exit(). */
	if (!r->stuck) {
		free(even);
		free(all);
	}
	return done;
}

void wp_evict(struct run *run, void (*evict)(struct fx *fx), size_t npages, size_t extra_hugepages)
{
	struct result *r = run->r;
	struct fx fx;

	if (!fx_setup(&fx, run, npages, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, extra_hugepages))
		return;
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-after-protect", fx.a.base, fx.a.size, true);

	evict(&fx);

	if (!wp_read_back_then_write(&fx) && r->stuck)
		return;
out:
	fx_teardown(&fx);
}

bool wp_swap_out(struct fx *fx, bool copies)
{
	struct result *r = fx->r;
	bool own = copies || mem_info(fx->a.type)->anon;
	struct pm_counts c;
	bool ok;

	set_phase(r, "MADV_PAGEOUT");
	if (!check_errno(r, "madv-pageout", wp_page_out(fx), 0, "madvise(MADV_PAGEOUT)"))
		return false;
	if (!check_errno(r, "read-pagemap", -pagemap_count(fx->a.base, fx->a.size, &c), 0, "read /proc/self/pagemap"))
		return false;
	ok = check_value(r, "paged-out", (long long)c.present, 0, "4K entries present (pagemap bit 63), of %zu",
			 c.entries);
	ok &= check_value(r, "area-in-swap",
			  own ? smaps_kb_range(fx->a.base, fx->a.size, "Swap") : wp_swap_kb(fx),
			  (long long)(fx->a.size / KIB), "kB of the area in swap (smaps Swap of %s)",
			  own ? "its VMA" : "the file");
	if (own)
		ok &= check_value(r, "swap-entries", (long long)c.swapped, (long long)c.entries,
				  "4K entries (of %zu) that are swap entries (pagemap bit 62)", c.entries);
	return ok;
}
