/*
 * wp-mremap: a write-protected range moved by mremap(MAYMOVE|FIXED) to a free address
 * aligned to its page size (for anon-thp a PMD boundary, so the THP moves as one PMD:
 * move_huge_pmd; for anon a PMD's worth of base pages between PMD boundaries, so that
 * the page table itself may move: move_normal_pmd, which must not move it whole where
 * the bits have to be cleared), in variants with their own check prefix:
 *   event-    registered by a uffd with UFFD_FEATURE_EVENT_REMAP: the REMAP message
 *             carries from/to/len; at the new address bit 57 is set on every page and
 *             each write raises one WP fault there; the old range is unmapped;
 *   noevent-  without EVENT_REMAP, mremap_userfaultfd_prep() drops the moved VMA's
 *             registration, and since "mm: clear uffd-wp PTE/PMD state on mremap()"
 *             (0cef0bb836e3, in 6.1.y too) move_ptes/move_huge_pmd/hugetlb clear the
 *             bit: no message, bit 57 clear, writes do not fault, WRITEPROTECT there is
 *             ENOENT.
 *   zapped-   (shmem, hugetlb) as noevent-, but the protected pages were zapped first
 *             (MADV_DONTNEED), so what moves are PTE markers onto a VMA no longer
 *             registered: the first touch must drop the marker (pte_marker_clear, or
 *             hugetlb's marker handling) and map the file's page: reads raise no message
 *             and see the file's bytes, writes do not fault, and no page keeps bit 57.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

#define MAX_WRITES 32

static size_t npages_for(const struct run *run)
{
	switch (run->mem) {
	case MEM_ANON: /* a PMD's worth of base pages, PMD-aligned: the page table can move whole */
	case MEM_ANON_THP: /* one THP */
		return thp_pmd_size() / BASE_PAGE;
	case MEM_HUGETLB:
	case MEM_HUGETLB_PRIVATE:
		return 2;
	default:
		return 16;
	}
}

/* A free range of len bytes aligned to align: reserved, then released for MREMAP_FIXED. */
static char *free_range(struct result *r, size_t len, size_t align)
{
	char *raw = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), *to;

	if (!check_errno(r, "reserve-destination", raw == MAP_FAILED ? errno : 0, 0, "mmap PROT_NONE of %zu bytes",
			 len + align))
		return NULL;
	to = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	munmap(raw, len + align);
	return to;
}

static void check_addr(struct result *r, const char *name, uint64_t got, const void *want, const char *what)
{
	check_value(r, name, (long long)(got - (uintptr_t)want), 0, "%s minus the expected address", what);
}

enum variant { EVENT, NOEVENT, ZAPPED };

static bool run_variant(struct run *run, enum variant v)
{
	bool event = v == EVENT;
	struct result *r = run->r;
	bool thp = run->mem == MEM_ANON_THP, ok = true;
	size_t align, n, *pages, first;
	unsigned *gens;
	signed char *want;
	struct uffd_msg m;
	char *old, *to;
	struct fx fx;
	void *got;
	int rc;

	check_prefix(r, v == EVENT ? "event-" : v == NOEVENT ? "noevent-" : "zapped-");
	if (!fx_setup(&fx, run, npages_for(run), FX_POPULATE | (run->mem == MEM_ANON ? FX_PMD_ALIGN : 0),
		      event ? UFFD_FEATURE_EVENT_REMAP : 0, UFFDIO_REGISTER_MODE_WP, 0))
		goto out_prefix;
	fx.h.expect_events = event ? EVENT_BIT(UFFD_EVENT_REMAP) : 0;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	/* A THP's 512 faults are slow under TCG: a shuffled sample of its pages is written. */
	if (n > MAX_WRITES)
		n = MAX_WRITES;
	gens = malloc(fx.a.npages * sizeof(*gens));
	if (!gens)
		abort();
	for (size_t i = 0; i < fx.a.npages; i++)
		gens[i] = GEN_INITIAL;
	for (size_t i = 0; i < n; i++)
		gens[pages[i]] = GEN_WRITTEN;
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-before-move", fx.a.base, fx.a.size, true);
	if (v == ZAPPED) {
		set_phase(r, "MADV_DONTNEED");
		rc = madvise(fx.a.base, fx.a.size, MADV_DONTNEED) ? errno : 0;
		check_errno(r, "madv-dontneed", rc, 0, "madvise(MADV_DONTNEED)");
		check_present(r, "zapped", fx.a.base, fx.a.size, false);
		check_wp_bits(r, "wp-bit-kept-as-marker", fx.a.base, fx.a.size, true);
	}

	set_phase(r, "mremap %s EVENT_REMAP", event ? "with" : "without");
	align = thp || run->mem == MEM_ANON ? thp_pmd_size() : fx.a.psize;
	to = free_range(r, fx.a.size, align);
	if (!to)
		goto out;
	old = fx.a.base;
	got = mremap(old, fx.a.size, fx.a.size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (!check_errno(r, "mremap", got == MAP_FAILED ? errno : 0, 0, "mremap(MAYMOVE|FIXED) of the area")) {
		munmap(to, fx.a.size);
		goto out;
	}
	pthread_mutex_lock(&fx.h.mu);
	fx.a.base = to;
	pthread_mutex_unlock(&fx.h.mu);
	if (event) {
		handler_wait_event(&fx.h, UFFD_EVENT_REMAP, 1, WAIT_MS);
		if (check_value(r, "event-delivered", (long long)handler_events(&fx.h, UFFD_EVENT_REMAP, &m, 1), 1,
				"UFFD_EVENT_REMAP messages")) {
			check_addr(r, "event-from", m.arg.remap.from, old, "remap.from");
			check_addr(r, "event-to", m.arg.remap.to, to, "remap.to");
			check_value(r, "event-len", (long long)m.arg.remap.len, (long long)fx.a.size, "remap.len");
		}
	} else {
		sleep_ms(QUIET_MS);
		check_value(r, "no-message", (long long)handler_stats(&fx.h).received, 0,
			    "uffd messages within %u ms of the move", QUIET_MS);
	}
	check_errno(r, "old-range-unmapped", msync(old, fx.a.size, MS_ASYNC) ? errno : 0, ENOMEM,
		    "msync() of the old range");
	if (thp)
		check_value(r, "thp-moved-whole", anon_huge_kb_range(to, fx.a.size), (long long)(fx.a.size / KIB),
			    "kB PMD-mapped at the new address (smaps AnonHugePages)");
	if (v == ZAPPED) {
		/* Whether the markers went at the move or go at the first touch is the kernel's choice. */
		size_t n_all, *all = page_list(fx.a.npages, PAGES_ALL, run->seed, &n_all);
		uint64_t before = handler_stats(&fx.h).received;
		bool done = read_pages(r, &fx.a, to, all, n_all, run->threads, false, WAIT_MS);

		if (!r->stuck)
			free(all);
		if (!check_value(r, "reads-complete", done, 1, "reader threads finished within %u ms", WAIT_MS)) {
			ok = false;
			goto out_free;
		}
		check_value(r, "reads-raise-no-fault", (long long)(handler_stats(&fx.h).received - before), 0,
			    "uffd messages while reading the moved markers' pages");
		check_data(&fx, "reads-see-file-data", to, NULL, GEN_INITIAL);
		check_wp_bits(r, "wp-bit-gone-after-fault-in", to, fx.a.size, false);
	} else {
		check_wp_bits(r, event ? "wp-bit-kept-after-move" : "wp-bit-cleared-by-move", to, fx.a.size, event);
	}

	if (event) {
		pthread_mutex_lock(&fx.h.mu);
		first = fx.h.naddrs;
		pthread_mutex_unlock(&fx.h.mu);
		if (!write_expect_faults(&fx, pages, n)) {
			ok = false;
			goto out_free;
		}
		check_fault_addrs(&fx, "fault-addresses-follow-move", first, pages, n);
	} else {
		rc = uffd_writeprotect(fx.uffd, to, fx.a.size, UFFDIO_WRITEPROTECT_MODE_WP);
		check_errno(r, "moved-range-unregistered", -rc, ENOENT, "UFFDIO_WRITEPROTECT of the moved range");
		if (!write_expect_quiet(&fx, pages, n)) {
			ok = false;
			goto out_free;
		}
	}
	/* Per 4K entry: written pages lost their protection, unwritten ones keep theirs. */
	want = malloc(fx.a.size / BASE_PAGE);
	if (!want)
		abort();
	for (size_t i = 0; i < fx.a.size / BASE_PAGE; i++)
		want[i] = event && gens[i / subpages_per_page(&fx.a)] == GEN_INITIAL;
	check_wp_pattern(r, "wp-bits-after-writes", to, fx.a.size / BASE_PAGE, want);
	free(want);
	check_data(&fx, "data-intact", to, gens, 0);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, gens, 0);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
out_free:
	free(pages);
	free(gens);
out_prefix:
	check_prefix(r, "");
	return ok;
}

void wp_mremap(struct run *run)
{
	if (!need_wp(run, 0))
		return;
	if (!(run->features & UFFD_FEATURE_EVENT_REMAP))
		note(run->r, "event- variant not run: kernel lacks UFFD_FEATURE_EVENT_REMAP");
	else if (!run_variant(run, EVENT) || run->r->skipped)
		return;
	if (!run_variant(run, NOEVENT) || run->r->skipped)
		return;
	if (run->mem == MEM_SHMEM || run->mem == MEM_HUGETLB)
		run_variant(run, ZAPPED);
}
