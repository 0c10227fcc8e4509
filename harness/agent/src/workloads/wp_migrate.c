/*
 * wp-migrate: the uffd-wp bit through page migration. MADV_SOFT_OFFLINE moves every page
 * of the protected area to a new frame: try_to_migrate_one() turns each pte into a
 * migration entry, which must carry the bit (pte_swp_mkuffd_wp), and
 * remove_migration_pte() must put it back on the new pte; a THP is split first, a
 * hugetlb page moves whole. Checked after it: every 4K entry maps a new frame (pagemap
 * PFN), pagemap bit 57 is still set, reads raise no message and keep the bit, each write
 * raises one WP fault at its address, and the data is intact.
 *
 * Needs CONFIG_MEMORY_FAILURE and CAP_SYS_ADMIN. The old frames stay poisoned for the
 * guest's life (a few hundred KiB per run); a hugetlb pool shrinks by the pages moved,
 * and is grown back to its size afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"
#include "wp_evict.h"

#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#define PM_PFN(e) ((e) & ((1ULL << 55) - 1))
/* Hugetlb pages moved per run: each needs a free page to move into. */
#define HUGETLB_PAGES 4

static uint64_t *frames(struct fx *fx)
{
	size_t n = fx->a.size / BASE_PAGE;
	uint64_t *pm = calloc(n, sizeof(*pm));

	if (pm && pagemap_read(fx->a.base, n, pm)) {
		free(pm);
		return NULL;
	}
	return pm;
}

static void migrate(struct fx *fx)
{
	struct result *r = fx->r;
	size_t n = fx->a.size / BASE_PAGE, moved = 0, unknown = 0;
	uint64_t *before = frames(fx), *after;
	bool huge = mem_info(fx->a.type)->hugetlb;
	int rc = 0;

	set_phase(r, "MADV_SOFT_OFFLINE");
	/*
	 * The kernel offlines one page per compound page it meets (a THP's first subpage,
	 * after splitting it): 4K at a time, the rest of a split THP moves too.
	 */
	for (size_t off = 0, step = huge ? fx->a.size : BASE_PAGE; !rc && off < fx->a.size; off += step)
		rc = madvise(fx->a.base + off, step, MADV_SOFT_OFFLINE) ? errno : 0;
	check_errno(r, "madv-soft-offline", rc, 0, "madvise(MADV_SOFT_OFFLINE) over the protected area");
	after = frames(fx);
	for (size_t i = 0; before && after && i < n; i++) {
		if (!PM_PFN(before[i]) || !PM_PFN(after[i]))
			unknown++;
		else if (PM_PFN(before[i]) != PM_PFN(after[i]))
			moved++;
	}
	check_value(r, "pages-migrated", (long long)moved, (long long)n,
		    "4K entries on a new frame after soft offline (pagemap PFN; %zu unreadable)", unknown);
	check_present(r, "present-after-migration", fx->a.base, fx->a.size, true);
	check_wp_bits(r, "wp-bit-kept-after-migration", fx->a.base, fx->a.size, true);
	free(before);
	free(after);
}

void wp_migrate(struct run *run)
{
	bool huge = mem_info(run->mem)->hugetlb;
	char pool_path[128];
	long long pool;
	int rc;

	if (!need_wp(run, 0))
		return;
	/* A zero length stops after the advice is validated: EINVAL means it is unknown. */
	rc = madvise(NULL, 0, MADV_SOFT_OFFLINE) ? errno : 0;
	if (rc == EINVAL) {
		skip(run->r, "MADV_SOFT_OFFLINE is not supported: kernel without CONFIG_MEMORY_FAILURE");
		return;
	}
	snprintf(pool_path, sizeof(pool_path), "/sys/kernel/mm/hugepages/hugepages-%zukB/nr_hugepages",
		 mem_info(run->mem)->psize / KIB);
	pool = huge ? read_ll(pool_path, -1) : -1;
	wp_evict(run, migrate, huge ? HUGETLB_PAGES : 0, huge ? HUGETLB_PAGES : 0);
	if (pool > 0 && !run->r->stuck) {
		/* Soft offline dissolved the old hugetlb pages: grow the pool back for the next runs. */
		FILE *f = fopen(pool_path, "w");

		if (f) {
			fprintf(f, "%lld\n", pool);
			fclose(f);
		}
	}
}
