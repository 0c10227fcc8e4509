/*
 * wp-basic: the write-protect fault round trip itself. REGISTER offers WRITEPROTECT only
 * with MODE_WP; protected pages read without faults; each threaded write raises one
 * WP|WRITE fault at the written address; bit 57 is set, then clear; the data is intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"
#include "uffd.h"

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
