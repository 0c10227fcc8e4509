/*
 * wp-thp-split: the uffd-wp bit must follow a protected PMD-mapped THP when the PMD is
 * split into 512 ptes (__split_huge_pmd_locked copies it onto every pte). Each variant,
 * on a fresh THP protected whole, splits it one way, with its own check prefix:
 *   mprotect-   mprotect(PROT_READ) of one 4K page, then back to PROT_READ|PROT_WRITE;
 *   munmap-     munmap() of one 4K page;
 *   dontneed-   MADV_DONTNEED of one 4K page (it comes back unprotected, zero-filled);
 *   unprotect-  UFFDIO_WRITEPROTECT clearing one 4K page.
 * Afterwards every remaining page has bit 57 except the one split off; writes to sampled
 * protected pages (first, middle, last, the split point's neighbours) fault once each at
 * their address; the split-off page writes without a fault; the data is intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

enum split_how { SPLIT_MPROTECT, SPLIT_MUNMAP, SPLIT_DONTNEED, SPLIT_UNPROTECT };

struct variant {
	const char *prefix;
	enum split_how how;
	const char *what;
};

static const struct variant variants[] = {
	{ "mprotect-", SPLIT_MPROTECT, "mprotect(PROT_READ) and back of one 4K page" },
	{ "munmap-", SPLIT_MUNMAP, "munmap() of one 4K page" },
	{ "dontneed-", SPLIT_DONTNEED, "MADV_DONTNEED of one 4K page" },
	{ "unprotect-", SPLIT_UNPROTECT, "unprotect of one 4K page" },
};

static int split(struct fx *fx, const struct variant *v, char *page)
{
	int rc = 0;

	switch (v->how) {
	case SPLIT_MPROTECT:
		if (mprotect(page, BASE_PAGE, PROT_READ) || mprotect(page, BASE_PAGE, PROT_READ | PROT_WRITE))
			rc = errno;
		break;
	case SPLIT_MUNMAP:
		rc = munmap(page, BASE_PAGE) ? errno : 0;
		break;
	case SPLIT_DONTNEED:
		rc = madvise(page, BASE_PAGE, MADV_DONTNEED) ? errno : 0;
		break;
	case SPLIT_UNPROTECT:
		rc = -uffd_writeprotect(fx->uffd, page, BASE_PAGE, 0);
		break;
	}
	return rc;
}

/* Add page p to the list unless it is there already or is the split-off page. */
static void add_sample(size_t *pages, size_t *n, size_t p, size_t s)
{
	if (p == s)
		return;
	for (size_t i = 0; i < *n; i++)
		if (pages[i] == p)
			return;
	pages[(*n)++] = p;
}

/* Each variant returns whether it ran to the end: false means threads are stuck. */
static bool run_variant(struct run *run, const struct variant *v, size_t spp)
{
	struct result *r = run->r;
	/* The split point: never an edge, so both its neighbours are inside the THP. */
	size_t s = 2 + (size_t)(mix64(run->seed ^ (uint64_t)v->how) % (spp - 4)), n = 0, bad = 0, first_bad = 0;
	size_t samples[8];
	signed char *want = malloc(spp);
	unsigned *gens = malloc(spp * sizeof(*gens));
	bool kept, gone = v->how == SPLIT_MUNMAP, ok = true;
	struct fx fx;
	long kb;
	int rc;

	if (!want || !gens)
		abort();
	check_prefix(r, v->prefix);
	if (!fx_setup(&fx, run, spp, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		goto out_free;
	handler_set_unit(&fx.h, BASE_PAGE);
	set_phase(r, "%sprotect the whole THP", v->prefix);
	if (!fx_protect(&fx, "protect-whole-thp", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-before-split", fx.a.base, fx.a.size, true);
	check_value(r, "pmd-mapped-before-split", anon_huge_kb_range(fx.a.base, fx.a.size), (long long)(fx.a.size / KIB),
		    "kB PMD-mapped in the area (smaps AnonHugePages) after protecting it whole");

	set_phase(r, "%ssplit by %s", v->prefix, v->what);
	rc = split(&fx, v, fx.a.base + s * BASE_PAGE);
	if (!check_errno(r, "split-call", rc, 0, "%s at page %zu", v->what, s))
		goto out;
	kb = anon_huge_kb_range(fx.a.base, fx.a.size);
	check_value(r, "thp-split", kb, 0, "kB still PMD-mapped in the area (smaps AnonHugePages) after %s", v->what);

	/* The split-off page: still protected after mprotect, clear otherwise (gone after munmap). */
	kept = v->how == SPLIT_MPROTECT;
	for (size_t i = 0; i < spp; i++)
		want[i] = i != s ? 1 : gone ? -1 : kept;
	check_wp_pattern(r, "wp-bits-follow-split", fx.a.base, spp, want);

	add_sample(samples, &n, 0, s);
	add_sample(samples, &n, s - 1, s);
	add_sample(samples, &n, s + 1, s);
	add_sample(samples, &n, spp / 2, s);
	add_sample(samples, &n, spp - 1, s);
	if (kept)
		add_sample(samples, &n, s, spp);
	if (!write_expect_faults(&fx, samples, n)) {
		ok = false;
		goto out_free;
	}
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, samples, n);
	for (size_t i = 0; i < spp; i++)
		gens[i] = GEN_INITIAL;
	for (size_t i = 0; i < n; i++)
		gens[samples[i]] = GEN_WRITTEN;
	if (!kept && !gone) {
		if (!write_expect_quiet(&fx, &s, 1)) {
			ok = false;
			goto out_free;
		}
		gens[s] = GEN_WRITTEN;
	}
	for (size_t i = 0; i < spp; i++)
		want[i] = i == s && gone ? -1 : gens[i] == GEN_INITIAL;
	check_wp_pattern(r, "wp-bits-after-writes", fx.a.base, spp, want);

	/* Never read the unmapped page: it would be a SIGSEGV. */
	bad = area_mismatches(&fx.a, fx.a.base, 0, gone ? s : spp, run->seed, gens, 0, &first_bad);
	if (gone) {
		size_t first_after = 0, after = area_mismatches(&fx.a, fx.a.base, s + 1, spp, run->seed, gens, 0,
							       &first_after);

		if (!bad && after)
			first_bad = first_after;
		bad += after;
	}
	check_value(r, "data-intact", (long long)bad, 0, "4K subpages (of %zu) with a wrong stamp%s%zu", spp,
		    bad ? ", the first is subpage " : ", split page ", bad ? first_bad : s);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
out_free:
	check_prefix(r, "");
	free(want);
	free(gens);
	return ok;
}

void wp_thp_split(struct run *run)
{
	size_t spp = thp_pmd_size() / BASE_PAGE;

	if (!need_wp(run, 0))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(variants) && !run->r->skipped; i++)
		if (!run_variant(run, &variants[i], spp))
			return;
}
