/*
 * wp-swapoff: swapoff must keep the uffd-wp bit of swapped-out pages (the regression
 * "mm/swapfile: fix lost swap bits in unuse_pte()", v5.19). Protect the area, page it
 * out (MADV_PAGEOUT: the bit moves into the swap entries), then swapoff(2) every active
 * area of /proc/swaps: unuse_pte() maps each page back and must carry the bit over to
 * the new pte. Every area is then swapped on again at once, with the priority /proc/swaps
 * listed, whatever the checks found (other workloads need swap). After swapoff the pages
 * are present (pagemap bit 63) with bit 57 set, hold their bytes, and each write raises
 * exactly one WP fault at its address.
 * Private types only, with their swap entries in ptes: a shmem-private area is first
 * written through (each page gets its own stamp back) so it holds anonymous copies, not
 * page cache pages. A shared shmem page comes back into the page cache and its pte stays
 * a marker, so there is no unuse_pte() to test there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/swap.h>
#include <unistd.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"
#include "wp_evict.h"

#define MAX_AREAS 8

struct swap_area {
	char name[256];
	int prio;
};

/* The active swap areas of /proc/swaps, in the order listed; -1 if unreadable. */
static int swap_areas(struct swap_area *areas, int max)
{
	char text[4096], *line, *save = NULL;
	bool header = true;
	int n = 0;

	if (read_text("/proc/swaps", text, sizeof(text)) <= 0)
		return -1;
	for (line = strtok_r(text, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
		char type[32];
		long long size, used;

		if (header) {
			header = false;
			continue;
		}
		if (sscanf(line, "%255s %31s %lld %lld %d", areas[n].name, type, &size, &used, &areas[n].prio) == 5)
			n++;
	}
	return n;
}

/* How many of the areas /proc/swaps lists now, with the same priority. */
static int areas_listed(const struct swap_area *areas, int n)
{
	struct swap_area now[MAX_AREAS];
	int m = swap_areas(now, MAX_AREAS), found = 0;

	for (int i = 0; i < n; i++)
		for (int j = 0; j < m; j++)
			if (!strcmp(areas[i].name, now[j].name) && areas[i].prio == now[j].prio) {
				found++;
				break;
			}
	return found;
}

/*
 * swapoff every area, then swapon each one that went off, with its old priority. Returns
 * how many areas were turned off; *busy is set (and nothing checked) when the first
 * failure is EPERM or EBUSY, which the caller skips on.
 */
static int swapoff_swapon(struct result *r, const struct swap_area *areas, int n, int *busy, int *busy_errno)
{
	bool off[MAX_AREAS] = { false };
	int noff = 0;

	*busy = -1;
	set_phase(r, "swapoff");
	for (int i = 0; i < n; i++) {
		int rc = swapoff(areas[i].name) ? errno : 0;

		if (rc == EPERM || rc == EBUSY) {
			*busy = i;
			*busy_errno = rc;
			break;
		}
		check_errno(r, "swapoff", rc, 0, "swapoff(%s)", areas[i].name);
		if (!rc) {
			off[i] = true;
			noff++;
		}
	}
	/* Always, before anything else can stop the run: other workloads need swap. */
	set_phase(r, "swapon");
	for (int i = 0; i < n; i++) {
		int flags = 0;

		if (!off[i])
			continue;
		if (areas[i].prio >= 0)
			flags = SWAP_FLAG_PREFER | ((areas[i].prio << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);
		check_errno(r, "swapon", swapon(areas[i].name, flags) ? errno : 0, 0, "swapon(%s, priority %d)",
			    areas[i].name, areas[i].prio);
	}
	return noff;
}

void wp_swapoff(struct run *run)
{
	struct result *r = run->r;
	struct swap_area areas[MAX_AREAS];
	int n, noff, busy, busy_errno = 0;
	size_t n_all, *all = NULL;
	struct fx fx;

	if (!need_wp(run, 0))
		return;
	const char *why = swap_missing();

	if (why) {
		skip(r, "%s", why);
		return;
	}
	if (geteuid() != 0) {
		skip(r, "not root: swapoff(2)/swapon(2) need CAP_SYS_ADMIN");
		return;
	}
	n = swap_areas(areas, MAX_AREAS);
	if (n <= 0) {
		skip(r, "no swap: no active swap area parsed from /proc/swaps");
		return;
	}
	if (!fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	all = page_list(fx.a.npages, PAGES_ALL, run->seed, &n_all);
	if (fx.a.fd >= 0) {
		/* Copy on write, same bytes: the private mapping then holds anonymous pages. */
		set_phase(r, "write through the private mapping");
		for (size_t s = 0; s < fx.a.size / BASE_PAGE; s++)
			*stamp_at(fx.a.base, s) = *stamp_at(fx.a.base, s);
	}
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-after-protect", fx.a.base, fx.a.size, true);
	if (!wp_swap_out(&fx, true))
		goto out;
	check_wp_bits(r, "wp-bit-kept-when-swapped", fx.a.base, fx.a.size, true);

	noff = swapoff_swapon(r, areas, n, &busy, &busy_errno);
	check_value(r, "swap-reenabled", areas_listed(areas, n), n, "of the %d swap areas listed again in /proc/swaps, same priority",
		    n);
	if (busy >= 0) {
		skip(r, "swapoff(%s): %s (%d area(s) turned off and on before it)", areas[busy].name,
		     busy_errno == EPERM ? "EPERM, not permitted here" : "EBUSY, area busy", noff);
		goto out;
	}
	if (noff < n)
		goto out;

	set_phase(r, "after swapoff");
	check_present(r, "present-after-swapoff", fx.a.base, fx.a.size, true);
	check_wp_bits(r, "wp-bit-kept-after-swapoff", fx.a.base, fx.a.size, true);
	check_value(r, "out-of-swap-after-swapoff", smaps_kb_range(fx.a.base, fx.a.size, "Swap"), 0, "kB of the area in swap after swapoff");
	check_data(&fx, "data-intact-after-swapoff", fx.a.base, NULL, GEN_INITIAL);
	check_value(r, "swapoff-raises-no-fault", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages after swapoff and reads");

	if (!write_expect_faults(&fx, all, n_all))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, all, n_all);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(all);
}
