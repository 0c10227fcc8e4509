/*
 * wp-async: UFFD_FEATURE_WP_ASYNC with PAGEMAP_SCAN, the dirty-tracking use of uffd-wp.
 * Writes to protected pages are resolved by the kernel (no message, no blocking) and
 * leave the page "written"; PAGEMAP_SCAN reports exactly the written pages, and with
 * PM_SCAN_WP_MATCHING re-protects them, so the next round reports only new writes.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"

/* A seeded third of the pages, at least one; round picks a disjoint third. */
static size_t *pick(size_t npages, uint64_t seed, unsigned round, size_t *n, unsigned *gens)
{
	size_t *v = malloc(npages * sizeof(*v));

	if (!v)
		abort();
	*n = 0;
	for (size_t i = 0; i < npages; i++)
		if (mix64(seed ^ i) % 3 == round || (npages < 3 && i == round % npages && !*n))
			v[(*n)++] = i;
	for (size_t i = 0; i < *n; i++)
		gens[v[i]] = GEN_WRITTEN;
	return v;
}

/*
 * Scan for written pages and compare with the expected set: returns the number of pages
 * reported differently (a page reported only in part counts too), or -errno.
 */
static long scan_mismatches(struct fx *fx, uint64_t flags, const size_t *want, size_t n_want, size_t *reported)
{
	size_t nsub = fx->a.size / BASE_PAGE, spp = subpages_per_page(&fx->a);
	struct page_region *vec = calloc(nsub, sizeof(*vec));
	unsigned char *hit = calloc(nsub, 1), *expect = calloc(fx->a.npages, 1);
	long nreg, bad = 0;

	if (!vec || !hit || !expect)
		abort();
	nreg = pagemap_scan(fx->a.base, fx->a.size, flags, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN, vec, nsub);
	for (long i = 0; i < nreg; i++)
		for (uint64_t a = vec[i].start; a < vec[i].end; a += BASE_PAGE)
			hit[(a - (uintptr_t)fx->a.base) / BASE_PAGE] = 1;
	for (size_t i = 0; i < n_want; i++)
		expect[want[i]] = 1;
	*reported = 0;
	for (size_t p = 0; p < fx->a.npages && nreg >= 0; p++) {
		size_t hits = 0;

		for (size_t s = p * spp; s < (p + 1) * spp; s++)
			hits += hit[s];
		*reported += hits == spp;
		bad += hits != (expect[p] ? spp : 0);
	}
	free(vec);
	free(hit);
	free(expect);
	return nreg < 0 ? nreg : bad;
}

static void check_scan(struct fx *fx, const char *name, uint64_t flags, const size_t *want, size_t n_want)
{
	size_t reported = 0;
	long bad = scan_mismatches(fx, flags, want, n_want, &reported);

	if (bad < 0) {
		check_errno(fx->r, name, (int)-bad, 0, "PAGEMAP_SCAN(flags 0x%llx)", (unsigned long long)flags);
		return;
	}
	check_value(fx->r, name, bad, 0, "pages PAGEMAP_SCAN reported differently from the %zu written (%zu reported)",
		    n_want, reported);
}

static bool async_writes(struct fx *fx, const size_t *pages, size_t n)
{
	struct result *r = fx->r;
	uint64_t before = handler_stats(&fx->h).received;

	set_phase(r, "write %zu pages under WP_ASYNC", n);
	if (!check_value(r, "async-writes-complete",
			 write_pages(r, &fx->a, fx->a.base, pages, n, fx->run->threads, fx->run->seed, GEN_WRITTEN, true,
				     WAIT_MS),
			 1, "writer threads finished within %u ms", WAIT_MS))
		return false;
	check_value(r, "async-writes-raise-no-message", (long long)(handler_stats(&fx->h).received - before), 0,
		    "uffd messages for %zu writes", n);
	return true;
}

void wp_async(struct run *run)
{
	struct result *r = run->r;
	size_t n1, n2, *s1 = NULL, *s2 = NULL;
	unsigned *gens = NULL;
	struct fx fx;
	int rc;

	if (!need_wp(run, UFFD_FEATURE_WP_ASYNC))
		return;
	rc = pagemap_scan_probe();
	if (rc) {
		skip(r, "kernel lacks the PAGEMAP_SCAN ioctl (%s)", errno_name(-rc));
		return;
	}
	if (!fx_setup(&fx, run, 0, FX_POPULATE, UFFD_FEATURE_WP_ASYNC, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	gens = malloc(fx.a.npages * sizeof(*gens));
	if (!gens)
		abort();
	for (size_t i = 0; i < fx.a.npages; i++)
		gens[i] = GEN_INITIAL;
	s1 = pick(fx.a.npages, run->seed, 0, &n1, gens);
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_scan(&fx, "nothing-written-after-protect", 0, NULL, 0);

	if (!async_writes(&fx, s1, n1))
		return;
	set_phase(r, "PAGEMAP_SCAN");
	check_scan(&fx, "scan-reports-written-pages", 0, s1, n1);
	check_scan(&fx, "get-and-clear-reports-written-pages", PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, s1, n1);
	check_scan(&fx, "get-and-clear-reprotects", 0, NULL, 0);
	check_wp_bits(r, "wp-bit-set-after-get-and-clear", fx.a.base, fx.a.size, true);

	s2 = pick(fx.a.npages, run->seed, 1, &n2, gens);
	check_prefix(r, "round2-");
	if (!async_writes(&fx, s2, n2))
		return;
	check_scan(&fx, "scan-reports-only-new-writes", 0, s2, n2);
	check_prefix(r, "");
	check_data(&fx, "data-intact", fx.a.base, gens, 0);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(s1);
	free(s2);
	free(gens);
}
