/*
 * wp-mprotect: protection (pagemap bit 57) survives mprotect(PROT_READ) and then
 * PROT_READ|PROT_WRITE; writes still raise WP faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fixture.h"

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
