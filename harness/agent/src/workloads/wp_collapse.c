/*
 * wp-collapse: a THP-eligible range (anon-thp: PTE-mapped because some of its 4K pages
 * were protected, which splits the PMD; shmem: a PMD-aligned memfd mapping of 4K pages)
 * is offered to khugepaged (its scan interval shortened for a few full scans) and to
 * MADV_COLLAPSE. Whatever the kernel decides (anon: upstream refuses to collapse over
 * uffd-wp ptes, SCAN_PTE_UFFD_WP; shmem: the page cache may collapse, try_to_unmap()
 * leaving uffd-wp markers behind, and the PMD is not installed in a uffd-wp VMA), the
 * protection must survive: bit 57 still on exactly the protected pages, a write there
 * faults once, the other pages write freely, the data is intact (through the alias too).
 * shmem then reads every page back and asks MADV_COLLAPSE again: the page cache is huge
 * now, so the kernel considers mapping it by a PMD, which must not happen over uffd-wp PTEs.
 * Whether it collapsed is a note.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define KHUGEPAGED "/sys/kernel/mm/transparent_hugepage/khugepaged/"
#define KHUGEPAGED_SLEEP_MS 100
#define KHUGEPAGED_SCANS 2
/* A small guest's khugepaged does a full scan in a few sleeps; a big host's may take
 * minutes (every MADV_HUGEPAGE VMA of every process): there its verdict is not awaited. */
#define KHUGEPAGED_WAIT_MS 2500

static bool write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	bool ok;

	if (!f)
		return false;
	ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok;
}

/* Let khugepaged scan everything twice with a short sleep, then look at the bits. */
/* ShmemHugePages of /proc/meminfo: whether shmem's page cache collapsed, in kB, or -1. */
static long shmem_huge_kb(void)
{
	char text[8192], *p;
	long kb = -1;

	if (read_text("/proc/meminfo", text, sizeof(text)) > 0 && (p = strstr(text, "ShmemHugePages:")))
		sscanf(p, "ShmemHugePages: %ld kB", &kb);
	return kb;
}

/* kB of the area mapped by PMDs. */
static long pmd_kb(const struct fx *fx)
{
	return smaps_kb_range(fx->a.base, fx->a.size, mem_info(fx->a.type)->anon ? "AnonHugePages" : "ShmemPmdMapped");
}

static void khugepaged_pass(struct fx *fx, const signed char *want, size_t spp)
{
	struct result *r = fx->r;
	long long saved = read_ll(KHUGEPAGED "scan_sleep_millisecs", -1);
	long long before = read_ll(KHUGEPAGED "full_scans", -1), now = before;
	char text[32];
	uint64_t t0;
	long kb;

	set_phase(r, "khugepaged scans the range");
	if (saved < 0 || before < 0) {
		note(r, "khugepaged part not run: no " KHUGEPAGED "scan_sleep_millisecs or full_scans");
		return;
	}
	snprintf(text, sizeof(text), "%d", KHUGEPAGED_SLEEP_MS);
	if (saved > KHUGEPAGED_SLEEP_MS && !write_text(KHUGEPAGED "scan_sleep_millisecs", text)) {
		note(r, "khugepaged part not run: cannot write " KHUGEPAGED "scan_sleep_millisecs (%s)",
		     errno_name(errno));
		return;
	}
	t0 = now_ns();
	while (now < before + KHUGEPAGED_SCANS && now_ns() - t0 < (uint64_t)KHUGEPAGED_WAIT_MS * 1000000) {
		sleep_ms(50);
		now = read_ll(KHUGEPAGED "full_scans", -1);
	}
	if (saved > KHUGEPAGED_SLEEP_MS) {
		snprintf(text, sizeof(text), "%lld", saved);
		write_text(KHUGEPAGED "scan_sleep_millisecs", text);
	}
	kb = pmd_kb(fx);
	if (now < before + KHUGEPAGED_SCANS)
		note(r, "khugepaged did %lld full scans (not %d) within %d ms: its verdict not awaited (%ld kB PMD-mapped)",
		     now - before, KHUGEPAGED_SCANS, KHUGEPAGED_WAIT_MS, kb);
	else
		note(r, "khugepaged (%lld full scans) %s the range (%ld kB PMD-mapped)", now - before,
		     kb > 0 ? "collapsed" : "did not collapse", kb);
	check_wp_pattern(r, "wp-bits-kept-after-khugepaged", fx->a.base, spp, want);
}

/*
 * shmem: the first MADV_COLLAPSE left a huge page in the page cache and uffd-wp markers in
 * the PTEs (retract_page_tables() skips a uffd-wp VMA). Reading every page back maps its
 * subpages by PTEs, the protected ones still uffd-wp; MADV_COLLAPSE now finds a PTE-mapped
 * THP (collapse_pte_mapped_thp(), which must refuse a uffd-wp VMA: installing the PMD would
 * drop every bit).
 */
static void collapse_pte_mapped(struct fx *fx, const signed char *want, size_t spp)
{
	struct result *r = fx->r;
	size_t *all = malloc(spp * sizeof(*all));
	long shmem_kb;
	int rc;

	if (!all)
		abort();
	for (size_t i = 0; i < spp; i++)
		all[i] = i;
	set_phase(r, "read every page back");
	if (!check_value(r, "read-back-complete",
			 read_pages(r, &fx->a, fx->a.base, all, spp, fx->run->threads, false, pool_wait_ms(spp)), 1,
			 "reader threads finished within %u ms", pool_wait_ms(spp)))
		return; /* stuck threads still use the list */
	free(all);
	check_value(r, "read-back-raises-no-fault", (long long)handler_stats(&fx->h).received, 0,
		    "uffd messages after reading every page of the range");
	check_wp_pattern(r, "wp-bits-kept-after-read-back", fx->a.base, spp, want);

	set_phase(r, "MADV_COLLAPSE of the PTE-mapped range");
	shmem_kb = shmem_huge_kb();
	rc = madvise(fx->a.base, fx->a.size, MADV_COLLAPSE) ? errno : 0;
	note(r, "second MADV_COLLAPSE %s (%ld kB PMD-mapped; ShmemHugePages %+ld kB)", rc ? errno_name(rc) : "succeeded",
	     pmd_kb(fx), shmem_huge_kb() - shmem_kb);
	check_wp_pattern(r, "wp-bits-kept-after-pte-mapped-collapse", fx->a.base, spp, want);
}

void wp_collapse(struct run *run)
{
	struct result *r = run->r;
	bool anon = mem_info(run->mem)->anon;
	size_t spp = thp_pmd_size() / BASE_PAGE, a, nprot = 0, nfree = 0;
	size_t prot[4], freep[6];
	signed char *want = malloc(spp);
	unsigned *gens = malloc(spp * sizeof(*gens));
	struct fx fx;
	long kb, shmem_kb;
	int rc;

	if (!want || !gens)
		abort();
	if (!need_wp(run, 0))
		goto out_free;
	/* A zero-length advice is accepted exactly when the kernel knows it (5.x: EINVAL). */
	rc = madvise((void *)(uintptr_t)BASE_PAGE, 0, MADV_COLLAPSE) ? errno : 0;
	if (rc) {
		skip(r, "kernel lacks MADV_COLLAPSE (madvise: %s)", errno_name(rc));
		goto out_free;
	}
	if (!fx_setup(&fx, run, spp, FX_POPULATE | FX_PMD_ALIGN, 0, UFFDIO_REGISTER_MODE_WP, 0))
		goto out_free;
	handler_set_unit(&fx.h, BASE_PAGE);
	a = 2 + (size_t)(mix64(run->seed) % (spp / 2 - 4));
	prot[nprot++] = 0;
	prot[nprot++] = a;
	prot[nprot++] = spp / 2;
	prot[nprot++] = spp - 1;
	freep[nfree++] = 1;
	freep[nfree++] = a - 1;
	freep[nfree++] = a + 1;
	freep[nfree++] = spp / 2 - 1;
	freep[nfree++] = spp / 2 + 1;
	freep[nfree++] = spp - 2;
	for (size_t i = 0; i < spp; i++) {
		want[i] = 0;
		gens[i] = GEN_INITIAL;
	}

	set_phase(r, "protect %zu 4K pages of the THP", nprot);
	rc = 0;
	for (size_t i = 0; i < nprot && !rc; i++) {
		want[prot[i]] = 1;
		if (!sabotaged(r, "no-protect"))
			rc = -uffd_writeprotect(fx.uffd, fx.a.base + prot[i] * BASE_PAGE, BASE_PAGE,
						UFFDIO_WRITEPROTECT_MODE_WP);
	}
	if (!check_errno(r, "protect-subpages", rc, 0, "UFFDIO_WRITEPROTECT of pages 0, %zu, %zu, %zu", a, spp / 2,
			 spp - 1))
		goto out;
	if (anon)
		check_value(r, "range-pte-mapped", pmd_kb(&fx), 0,
			    "kB PMD-mapped in the area (smaps AnonHugePages) after protecting 4K pages of it");
	check_wp_pattern(r, "wp-bits-before-collapse", fx.a.base, spp, want);

	khugepaged_pass(&fx, want, spp);

	set_phase(r, "MADV_COLLAPSE");
	shmem_kb = shmem_huge_kb();
	rc = madvise(fx.a.base, fx.a.size, MADV_COLLAPSE) ? errno : 0;
	kb = pmd_kb(&fx);
	if (anon)
		note(r, "MADV_COLLAPSE %s (%ld kB PMD-mapped)", rc ? errno_name(rc) : "succeeded", kb);
	else
		note(r, "MADV_COLLAPSE %s (%ld kB PMD-mapped; ShmemHugePages %+ld kB)", rc ? errno_name(rc) : "succeeded",
		     kb, shmem_huge_kb() - shmem_kb);
	/* shmem's page cache may collapse while this VMA stays PTE-mapped: only anon is tied. */
	if (anon)
		check_value(r, "collapse-result-consistent", kb == (long)(fx.a.size / KIB), rc == 0,
			    "the range is PMD-mapped (%ld kB) exactly when MADV_COLLAPSE succeeded (%s)", kb,
			    rc ? errno_name(rc) : "0");
	check_wp_pattern(r, "wp-bits-kept-after-collapse", fx.a.base, spp, want);
	if (!anon) {
		collapse_pte_mapped(&fx, want, spp);
		if (r->stuck)
			goto out_free;
	}

	if (!write_expect_faults(&fx, prot, nprot))
		goto out_free;
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, prot, nprot);
	if (!write_expect_quiet(&fx, freep, nfree))
		goto out_free;
	for (size_t i = 0; i < nprot; i++)
		gens[prot[i]] = GEN_WRITTEN;
	for (size_t i = 0; i < nfree; i++)
		gens[freep[i]] = GEN_WRITTEN;
	check_wp_bits(r, "wp-bits-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, gens, 0);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, gens, 0);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
out_free:
	free(want);
	free(gens);
}
