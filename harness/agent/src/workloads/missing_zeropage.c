/*
 * missing-zeropage: UFFDIO_ZEROPAGE resolves MISSING faults with zeros, later stores need no
 * fault and a second ZEROPAGE is EEXIST; on hugetlb (no huge zero page) it is EINVAL and
 * absent from the REGISTER bitmask.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "fixture.h"
#include "missing_checks.h"
#include "uffd.h"
#include "util.h"

#define ZEROPAGE_IOCTL (1ULL << _UFFDIO_ZEROPAGE)

static void zeropage_on_hugetlb(struct fx *fx)
{
	int64_t out = 0;
	int rc;

	check_value(fx->r, "ioctls-lack-zeropage", !!(fx->ioctls & ZEROPAGE_IOCTL), 0,
		    "ZEROPAGE in the ioctls REGISTER(MODE_MISSING) of hugetlb returned (0x%llx)",
		    (unsigned long long)fx->ioctls);
	rc = uffd_zeropage(fx->uffd, fx->a.base, fx->a.psize, 0, &out);
	check_errno(fx->r, "zeropage-is-einval", -rc, EINVAL, "UFFDIO_ZEROPAGE of a hugetlb page");
	check_value(fx->r, "zeropage-reports-einval", out, -EINVAL, "its zeropage field");
	check_present(fx->r, "nothing-mapped", fx->a.base, fx->a.size, false);
}

void missing_zeropage(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages, nonzero = 0;
	struct fx fx;
	bool ok;

	if (!need_features(run, missing_features(run->mem)) ||
	    !fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	if (mem_info(run->mem)->hugetlb) {
		zeropage_on_hugetlb(&fx);
		check_handler_clean(&fx);
		fx_teardown(&fx);
		return;
	}
	check_value(r, "ioctls-have-zeropage", !!(fx.ioctls & ZEROPAGE_IOCTL), 1,
		    "ZEROPAGE in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)fx.ioctls);
	fx.h.missing_op = MISSING_ZEROPAGE;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	set_phase(r, "read every page");
	ok = read_pages(r, &fx.a, fx.a.base, pages, n, run->threads, true, pool_wait_ms(n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", pool_wait_ms(n));
	if (!ok)
		return;
	check_missing_fills(&fx, n);
	check_fault_addrs(&fx, "fault-addresses-match-reads", 0, pages, n);
	check_present(r, "zero-pages-mapped", fx.a.base, fx.a.size, true);
	for (size_t s = 0; s < fx.a.size / BASE_PAGE; s++)
		nonzero += *stamp_at(fx.a.base, s) != 0;
	check_value(r, "reads-see-zeros", (long long)nonzero, 0, "4K subpages that read non-zero");
	check_refill_eexist(&fx, true);
	/* Whatever ZEROPAGE mapped (the shared zero page, or a zeroed page) takes stores. */
	if (!write_expect_quiet(&fx, pages, n))
		return;
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
	fx_teardown(&fx);
	free(pages);
}
