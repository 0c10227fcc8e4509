/* wp-basic, wp-dontwake, wp-mprotect: the write-protect fault round trip itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

#define WRITEPROTECT_IOCTL (1ULL << _UFFDIO_WRITEPROTECT)

/* A private mapping's writes must never reach the file behind it. */
static void check_file_unchanged(struct fx *fx)
{
	char *file = mmap(NULL, fx->a.size, PROT_READ, MAP_SHARED, fx->a.fd, 0);

	if (file == MAP_FAILED) {
		check_errno(fx->r, "file-unchanged-by-private-writes", errno, 0, "mmap the memfd to read it");
		return;
	}
	check_data(fx, "file-unchanged-by-private-writes", file, NULL, GEN_INITIAL);
	munmap(file, fx->a.size);
}

void wp_basic(struct run *run)
{
	struct result *r = run->r;
	struct fx fx;
	uint64_t ioctls = 0;
	size_t n, *pages;
	int rc;

	/* Exact addresses where offered, so "the right address" is checked to the byte;
	 * the other workloads see the kernel's default rounding. */
	if (!need_wp(run, 0) ||
	    !fx_setup(&fx, run, 0, FX_POPULATE, run->features & UFFD_FEATURE_EXACT_ADDRESS, 0, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);

	set_phase(r, "register missing-only");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (check_errno(r, "register-missing", -rc, 0, "UFFDIO_REGISTER(MODE_MISSING)")) {
		check_value(r, "missing-ioctls-lack-writeprotect", !!(ioctls & WRITEPROTECT_IOCTL), 0,
			    "WRITEPROTECT in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)",
			    (unsigned long long)ioctls);
		rc = uffd_unregister(fx.uffd, fx.a.base, fx.a.size);
		check_errno(r, "unregister-missing", -rc, 0, "UFFDIO_UNREGISTER");
	}
	set_phase(r, "register wp");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_WP, &ioctls);
	if (!check_errno(r, "register-wp", -rc, 0, "UFFDIO_REGISTER(MODE_WP)"))
		goto out;
	check_value(r, "wp-ioctls-have-writeprotect", !!(ioctls & WRITEPROTECT_IOCTL), 1,
		    "WRITEPROTECT in the ioctls REGISTER(MODE_WP) returned (0x%llx)", (unsigned long long)ioctls);

	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-after-protect", fx.a.base, fx.a.size, true);

	set_phase(r, "read protected pages");
	if (!check_value(r, "reads-complete",
			 read_pages(r, &fx.a, fx.a.base, pages, n, run->threads, false, WAIT_MS), 1,
			 "reader threads finished within %u ms", WAIT_MS))
		return;
	check_value(r, "reads-raise-no-fault", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages after reading every protected page");

	if (!write_expect_faults(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, pages, n);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	if (run->mem == MEM_SHMEM_PRIVATE)
		check_file_unchanged(&fx);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}

void wp_dontwake(struct run *run)
{
	struct result *r = run->r;
	struct solo *s;
	struct fx fx;
	unsigned *gens;
	char *page0;
	int rc;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	fx.h.on_fault = handler_hold;
	page0 = fx.a.base;
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	rc = uffd_writeprotect(fx.uffd, page0, fx.a.psize,
			       UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	check_errno(r, "wp-with-dontwake-is-einval", -rc, EINVAL, "UFFDIO_WRITEPROTECT mode WP|DONTWAKE");

	set_phase(r, "write page 0 and hold the fault");
	s = solo_start(r, &fx.a, fx.a.base, 0, run->seed, GEN_WRITTEN, true, &rc);
	if (!check_errno(r, "start-writer", rc, 0, "pthread_create"))
		goto out;
	if (!check_value(r, "fault-delivered", handler_wait(&fx.h, 1, WAIT_MS), 1,
			 "WP fault message within %u ms of writing a protected page", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	check_value(r, "writer-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "writer thread asleep in the fault within %u ms", WAIT_MS);

	set_phase(r, "unprotect with DONTWAKE");
	rc = uffd_writeprotect(fx.uffd, page0, fx.a.psize, UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	check_errno(r, "unprotect-dontwake", -rc, 0, "UFFDIO_WRITEPROTECT mode DONTWAKE (unprotect)");
	check_wp_bits(r, "wp-bit-clear-after-dontwake", page0, fx.a.psize, false);
	check_value(r, "writer-still-blocked", solo_finished(s, QUIET_MS), 0,
		    "writer finished within %u ms of an unprotect with DONTWAKE", QUIET_MS);

	set_phase(r, "wake");
	rc = uffd_wake(fx.uffd, page0, fx.a.psize);
	check_errno(r, "wake", -rc, 0, "UFFDIO_WAKE");
	if (!check_value(r, "writer-completes-after-wake", solo_finished(s, WAIT_MS), 1,
			 "writer finished within %u ms of UFFDIO_WAKE", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	solo_free(s);
	check_value(r, "one-wp-fault", (long long)handler_stats(&fx.h).wp, 1, "WP fault messages for one write");
	gens = calloc(fx.a.npages, sizeof(*gens));
	if (!gens)
		abort();
	for (size_t i = 0; i < fx.a.npages; i++)
		gens[i] = i ? GEN_INITIAL : GEN_WRITTEN;
	check_data(&fx, "data-intact", fx.a.base, gens, 0);
	free(gens);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}

void wp_mprotect(struct run *run)
{
	struct result *r = run->r;
	struct fx fx;
	size_t n, *pages;
	int rc;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-after-protect", fx.a.base, fx.a.size, true);

	set_phase(r, "mprotect");
	rc = mprotect(fx.a.base, fx.a.size, PROT_READ) ? errno : 0;
	check_errno(r, "mprotect-read-only", rc, 0, "mprotect(PROT_READ)");
	check_wp_bits(r, "wp-bit-kept-after-read-only", fx.a.base, fx.a.size, true);
	rc = mprotect(fx.a.base, fx.a.size, PROT_READ | PROT_WRITE) ? errno : 0;
	check_errno(r, "mprotect-read-write", rc, 0, "mprotect(PROT_READ|PROT_WRITE)");
	check_wp_bits(r, "wp-bit-kept-after-read-write", fx.a.base, fx.a.size, true);

	if (!write_expect_faults(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-writes", 0, pages, n);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}
