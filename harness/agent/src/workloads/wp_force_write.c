/*
 * wp-force-write: a write through /proc/self/mem is a GUP with FOLL_FORCE, which may write
 * into a read-only private mapping: on an exclusive anonymous page it follows the entry
 * for writing without a write fault (can_follow_write_pte(), can_follow_write_pmd() for a
 * PMD-mapped THP) unless the entry is uffd-wp. So: protect the area, mprotect it
 * PROT_READ, then pwrite() a few of its pages through /proc/self/mem. None may land
 * unseen: 6.1 fails them (the remote GUP cannot wait for the handler, so the uffd fault
 * is a SIGBUS: EIO, bytes and bit 57 kept); a kernel that can wait would raise a WP fault
 * first. After UFFDIO_WRITEPROTECT clears those pages the same writes land, quietly.
 * anon-thp writes one page of each THP first, while it is still PMD-mapped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

#define NWRITES 4

/* pwrite() generation gen's stamp at each page's first-touch address; ok[i]: it wrote 8 bytes. */
static void force_writes(struct fx *fx, int mem, const size_t *pages, size_t n, unsigned gen, bool *ok, int *err)
{
	for (size_t i = 0; i < n; i++) {
		char *at = first_touch(&fx->a, fx->a.base, pages[i]);
		uint64_t v = stamp(fx->run->seed, gen, (size_t)(at - fx->a.base) / BASE_PAGE);

		ok[i] = pwrite(mem, &v, sizeof(v), (off_t)(uintptr_t)at) == (ssize_t)sizeof(v);
		if (!ok[i] && !*err)
			*err = errno;
	}
}

/* Whether a page's first-touch word holds generation gen's stamp. */
static bool holds(struct fx *fx, size_t page, unsigned gen)
{
	char *at = first_touch(&fx->a, fx->a.base, page);

	return *(volatile uint64_t *)at == stamp(fx->run->seed, gen, (size_t)(at - fx->a.base) / BASE_PAGE);
}

void wp_force_write(struct run *run)
{
	struct result *r = run->r;
	bool thp = run->mem == MEM_ANON_THP;
	size_t spp = thp ? thp_pmd_size() / BASE_PAGE : 1, pages[NWRITES];
	signed char *want;
	struct fx fx;
	uint64_t wp0, faults;
	size_t nok = 0, landed = 0, kept = 0, lost = 0;
	bool ok[NWRITES];
	int mem, rc, err = 0;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, thp ? 2 * spp : 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	if (fx.a.npages < 8) {
		skip(r, "needs 8 pages or more (--pages)");
		fx_teardown(&fx);
		return;
	}
	handler_set_unit(&fx.h, BASE_PAGE);
	/* One page of each THP first (PMD-mapped until its fault splits it), then one more of each. */
	pages[0] = 1 + run->seed % (fx.a.npages / 2 - 2);
	pages[1] = fx.a.npages / 2 + 1 + mix64(run->seed) % (fx.a.npages / 2 - 2);
	pages[2] = pages[0] - 1;
	pages[3] = fx.a.npages - 1;
	want = malloc(fx.a.size / BASE_PAGE);
	if (!want)
		abort();
	memset(want, 1, fx.a.size / BASE_PAGE);
	for (size_t i = 0; i < NWRITES; i++)
		want[pages[i] * fx.a.psize / BASE_PAGE] = 0;

	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	set_phase(r, "mprotect(PROT_READ)");
	rc = mprotect(fx.a.base, fx.a.size, PROT_READ) ? errno : 0;
	if (!check_errno(r, "mprotect-read-only", rc, 0, "mprotect(PROT_READ) of the protected area"))
		goto out;
	if (thp)
		note(r, "%ld kB PMD-mapped before the forced writes", anon_huge_kb(fx.a.base));
	mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (!check_errno(r, "open-proc-self-mem", mem < 0 ? errno : 0, 0, "open(/proc/self/mem, O_RDWR)"))
		goto out;

	set_phase(r, "write %d protected pages through /proc/self/mem", NWRITES);
	wp0 = handler_stats(&fx.h).wp;
	force_writes(&fx, mem, pages, NWRITES, GEN_WRITTEN, ok, &err);
	faults = handler_stats(&fx.h).wp - wp0;
	for (size_t i = 0; i < NWRITES; i++) {
		nok += ok[i];
		landed += holds(&fx, pages[i], GEN_WRITTEN);
		kept += !ok[i] && holds(&fx, pages[i], GEN_INITIAL);
		lost += ok[i] && !holds(&fx, pages[i], GEN_WRITTEN);
		/* A write that faulted was unprotected by the handler; one that failed was not. */
		want[pages[i] * fx.a.psize / BASE_PAGE] = ok[i] ? 0 : 1;
	}
	/* 6.1 fails them (GUP without FAULT_FLAG_ALLOW_RETRY: the uffd fault is a SIGBUS); a
	 * kernel that can wait would fault, then write: either way none lands unseen. */
	note(r, "%zu of %d forced writes to protected pages completed (first error %s), %llu WP messages", nok,
	     NWRITES, err ? errno_name(err) : "none", (unsigned long long)faults);
	check_value(r, "force-writes-do-not-bypass-wp", (long long)(landed > faults ? landed - faults : 0), 0,
		    "forced writes that landed in protected pages without a WP fault (%zu landed, %llu WP messages)",
		    landed, (unsigned long long)faults);
	check_value(r, "failed-force-writes-leave-bytes", (long long)kept, (long long)(NWRITES - nok),
		    "pages whose forced write failed and that kept their bytes (of %zu that failed)", NWRITES - nok);
	check_value(r, "completed-force-writes-land", (long long)lost, 0,
		    "forced writes that reported 8 bytes written but did not land (of %zu)", nok);
	check_wp_pattern(r, "wp-bits-kept-unless-faulted", fx.a.base, fx.a.size / BASE_PAGE, want);

	set_phase(r, "unprotect them, write them again");
	rc = 0;
	for (size_t i = 0; i < NWRITES && !rc; i++)
		rc = -uffd_writeprotect(fx.uffd, fx.a.base + pages[i] * fx.a.psize, fx.a.psize, 0);
	if (!check_errno(r, "unprotect-written", rc, 0, "UFFDIO_WRITEPROTECT(0) of the %d pages", NWRITES))
		goto out_mem;
	wp0 = handler_stats(&fx.h).wp;
	err = 0;
	force_writes(&fx, mem, pages, NWRITES, GEN_CHILD, ok, &err);
	nok = landed = 0;
	for (size_t i = 0; i < NWRITES; i++) {
		nok += ok[i];
		landed += holds(&fx, pages[i], GEN_CHILD);
	}
	check_value(r, "unprotected-force-writes-complete", (long long)nok, NWRITES,
		    "forced writes to unprotected pages of the read-only mapping that wrote 8 bytes (first error %s)",
		    err ? errno_name(err) : "none");
	check_value(r, "unprotected-force-writes-quiet", (long long)(handler_stats(&fx.h).wp - wp0), 0,
		    "WP fault messages for forced writes to unprotected pages");
	check_value(r, "unprotected-force-writes-land", (long long)landed, NWRITES,
		    "pages (of %d) that read back the forced bytes", NWRITES);
	check_handler_clean(&fx);
out_mem:
	close(mem);
out:
	free(want);
	fx_teardown(&fx);
}
