/*
 * wp-numa-migrate: the uffd-wp bit through page migration between NUMA nodes. The area
 * is protected on node 0, then move_pages() moves every page to node 1: each pte becomes
 * a migration entry that must carry the bit (pte_swp_mkuffd_wp) and remove_migration_pte()
 * must put it back. A THP moves whole, through a PMD migration entry
 * (set_pmd_migration_entry / remove_migration_pmd, pmd_swp_mkuffd_wp), and a hugetlb page
 * through a hugetlb migration entry. Checked after it: every page is on node 1, a THP is
 * still huge, pagemap bit 57 is still set on every 4K entry, reads raise no message and
 * keep the bit, each write raises one WP fault at its address, and the data is intact.
 *
 * Needs a guest with a second node that has memory (`--numa 2`, the default) and a kernel
 * with CONFIG_NUMA and CONFIG_MIGRATION. Node 1 has no 1 GiB page: hugetlb-1g is not run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"
#include "wp_evict.h"

#define TARGET_NODE 1
#ifndef MPOL_MF_MOVE_ALL
#define MPOL_MF_MOVE_ALL (1 << 2)
#endif
/* Hugetlb pages moved per run: node 1 must have as many free. */
#define HUGETLB_PAGES 4

static long move_pages(size_t n, void **pages, const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, 0, (unsigned long)n, pages, nodes, status, flags);
}

/* Addresses of the units move_pages() moves: each hugetlb page or THP once, else each 4K. */
static void **units(const struct fx *fx, size_t step, size_t *n)
{
	void **pages;

	*n = fx->a.size / step;
	pages = calloc(*n, sizeof(*pages));
	for (size_t i = 0; pages && i < *n; i++)
		pages[i] = fx->a.base + i * step;
	return pages;
}

/* 4K pages of the area now on `node`, by move_pages() with no target (a query); -1 if it failed. */
static long long pages_on(const struct fx *fx, int node)
{
	size_t n;
	void **pages = units(fx, BASE_PAGE, &n);
	int *status = calloc(n, sizeof(*status));
	long long on = -1;

	if (pages && status && move_pages(n, pages, NULL, status, 0) == 0) {
		on = 0;
		for (size_t i = 0; i < n; i++)
			on += status[i] == node;
	}
	free(pages);
	free(status);
	return on;
}

static void migrate(struct fx *fx)
{
	struct result *r = fx->r;
	bool thp = fx->a.type == MEM_ANON_THP;
	size_t step = thp ? 2 * MIB : fx->a.psize, n, moved = 0;
	long huge_before = thp ? smaps_kb_range(fx->a.base, fx->a.size, "AnonHugePages") : 0;
	void **pages = units(fx, step, &n);
	int *nodes = calloc(n, sizeof(*nodes)), *status = calloc(n, sizeof(*status));
	int rc;

	set_phase(r, "move_pages to node 1");
	if (!pages || !nodes || !status) {
		check_errno(r, "move-pages", ENOMEM, 0, "allocating the page lists");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		nodes[i] = TARGET_NODE;
	rc = move_pages(n, pages, nodes, status, MPOL_MF_MOVE_ALL) < 0 ? errno : 0;
	if (!check_errno(r, "move-pages", rc, 0, "move_pages() of the protected area to node %d", TARGET_NODE))
		goto out;
	for (size_t i = 0; i < n; i++)
		moved += status[i] == TARGET_NODE;
	check_value(r, "pages-moved", (long long)moved, (long long)n,
		    "pages move_pages() reports on node %d (of %zu %s; first status %d)", TARGET_NODE, n,
		    thp ? "THPs" : "pages", status[0]);
	check_value(r, "pages-on-node-1", pages_on(fx, TARGET_NODE), (long long)(fx->a.size / BASE_PAGE),
		    "4K pages node %d holds after the move (move_pages query)", TARGET_NODE);
	if (thp)
		check_value(r, "thp-moved-whole", smaps_kb_range(fx->a.base, fx->a.size, "AnonHugePages"),
			    huge_before, "kB of AnonHugePages after the move (before: %ld)", huge_before);
	check_present(r, "present-after-migration", fx->a.base, fx->a.size, true);
	check_wp_bits(r, "wp-bit-kept-after-migration", fx->a.base, fx->a.size, true);
out:
	free(pages);
	free(nodes);
	free(status);
}

void wp_numa_migrate(struct run *run)
{
	bool huge = mem_info(run->mem)->hugetlb;
	char mem_nodes[64] = "";

	if (!need_wp(run, 0))
		return;
	if (move_pages(0, NULL, NULL, NULL, 0) < 0 && errno == ENOSYS) {
		skip(run->r, "move_pages() is not supported: kernel without CONFIG_NUMA or CONFIG_MIGRATION");
		return;
	}
	/* "0" on a one-node guest, "0-1" with a second node that has memory. */
	if (read_text("/sys/devices/system/node/has_memory", mem_nodes, sizeof(mem_nodes)) <= 0 ||
	    !strstr(mem_nodes, "0-")) {
		skip(run->r, "the guest has one NUMA node with memory (has_memory: %s): boot it with --numa 2",
		     mem_nodes[0] ? strtok(mem_nodes, "\n") : "unreadable");
		return;
	}
	wp_evict(run, migrate, huge ? HUGETLB_PAGES : 0, huge ? HUGETLB_PAGES : 0);
}
