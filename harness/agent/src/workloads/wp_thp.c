/*
 * wp-thp: write-protect on a PMD-mapped anonymous THP. Protecting a whole THP keeps it
 * PMD-mapped and one write raises one fault; protecting one 4 KiB page of a fresh THP
 * must split the PMD so that exactly that page, and no other, faults.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"

static void check_pmd_kb(struct fx *fx, const char *name, size_t want_kb, const char *when)
{
	check_value(fx->r, name, anon_huge_kb(fx->a.base), (long long)want_kb,
		    "kB PMD-mapped in the area (smaps AnonHugePages) %s", when);
}

/* Each part returns whether it ran to the end: the next one builds on it. */
static bool whole_thp(struct fx *fx, size_t spp)
{
	struct result *r = fx->r;
	size_t pmd = fx->a.size / 2, first = spp / 3, n_rest = 0;
	size_t *rest = malloc(spp * sizeof(*rest));
	bool done = false;

	if (!rest)
		abort();
	set_phase(r, "protect a whole THP");
	handler_set_unit(&fx->h, pmd);
	if (!fx_protect(fx, "protect-whole-thp", fx->a.base, pmd, true))
		goto out;
	check_wp_bits(r, "whole-thp-wp-bit-set", fx->a.base, pmd, true);
	check_wp_bits(r, "other-thp-wp-bit-clear", fx->a.base + pmd, pmd, false);
	check_pmd_kb(fx, "whole-protect-keeps-pmd", 2 * pmd / KIB, "after protecting one THP whole");

	if (!write_expect_faults(fx, &first, 1))
		return false;
	check_fault_addrs(fx, "fault-address-matches-write", 0, &first, 1);
	for (size_t i = 0; i < spp; i++)
		if (i != first)
			rest[n_rest++] = i;
	set_phase(r, "write the rest of the THP");
	if (!write_expect_quiet(fx, rest, n_rest))
		return false;
	check_wp_bits(r, "whole-thp-wp-bit-clear", fx->a.base, pmd, false);
	check_pmd_kb(fx, "pmd-mapped-after-resolve", 2 * pmd / KIB, "after the fault was resolved");
	done = true;
out:
	free(rest);
	return done;
}

static bool one_subpage(struct fx *fx, size_t spp)
{
	struct result *r = fx->r;
	size_t pmd = fx->a.size / 2, k = 1 + fx->run->seed % (spp - 1), target = spp + k, n_thp = 0;
	size_t *thp = malloc(spp * sizeof(*thp));
	char *thp1 = fx->a.base + pmd;
	struct pm_counts c;
	bool done = false;

	if (!thp)
		abort();
	set_phase(r, "protect one 4K page of a THP");
	handler_set_unit(&fx->h, BASE_PAGE);
	if (!fx_protect(fx, "protect-one-subpage", thp1 + k * BASE_PAGE, BASE_PAGE, true))
		goto out;
	if (check_errno(r, "read-pagemap", -pagemap_count(thp1, pmd, &c), 0, "read /proc/self/pagemap")) {
		check_value(r, "only-subpage-wp-bit-set", (long long)c.wp, 1, "4K entries of the THP with bit 57");
		check_value(r, "wp-bit-on-that-subpage", (long long)(c.wp ? c.first_wp : spp), (long long)k,
			    "index of the 4K entry with bit 57");
	}
	check_pmd_kb(fx, "subpage-protect-splits-pmd", pmd / KIB, "after protecting one 4K page of the second THP");

	for (size_t i = 0; i < spp; i++)
		thp[n_thp++] = spp + i;
	set_phase(r, "write every 4K page of the split THP");
	if (!check_value(r, "split-thp-writes-complete",
			 write_pages(r, &fx->a, fx->a.base, thp, n_thp, fx->run->threads, fx->run->seed, GEN_WRITTEN,
				     false, WAIT_MS),
			 1, "writer threads finished within %u ms", WAIT_MS))
		return false;
	check_fault_addrs(fx, "only-protected-subpage-faults", 1, &target, 1);
	done = true;
out:
	free(thp);
	return done;
}

void wp_thp(struct run *run)
{
	size_t spp = thp_pmd_size() / BASE_PAGE;
	struct fx fx;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, 2 * spp, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	check_pmd_kb(&fx, "pmd-mapped-before", fx.a.size / KIB, "after populating");
	if (whole_thp(&fx, spp) && one_subpage(&fx, spp))
		check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (run->r->stuck)
		return;
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
