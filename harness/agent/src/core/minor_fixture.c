#define _GNU_SOURCE
#include "minor_fixture.h"

#include <stdio.h>
#include <stdlib.h>

#include "uffd.h"
#include "util.h"

bool need_minor(struct run *run)
{
	bool hugetlb = mem_info(run->mem)->hugetlb;

	return need_features(run, hugetlb ? UFFD_FEATURE_MINOR_HUGETLBFS : UFFD_FEATURE_MINOR_SHMEM);
}

bool alias_writes(struct fx *fx, const char *what, unsigned gen)
{
	struct result *r = fx->r;
	uint64_t before = handler_stats(&fx->h).received;
	char done[48], quiet[48];
	size_t n, *pages = page_list(fx->a.npages, PAGES_ALL, fx->run->seed, &n);
	bool ok;

	snprintf(done, sizeof(done), "%s-complete", what);
	snprintf(quiet, sizeof(quiet), "%s-do-not-fault", what);
	set_phase(r, "%s through the alias", what);
	ok = write_pages(r, &fx->a, fx->a.alias, pages, n, fx->run->threads, fx->run->seed, gen, false,
			 touch_wait_ms(&fx->a, n));
	check_value(r, done, ok, 1, "writer threads on the alias finished within %u ms", touch_wait_ms(&fx->a, n));
	if (!ok)
		return false; /* the stuck writers still use pages */
	free(pages);
	check_value(r, quiet, (long long)(handler_stats(&fx->h).received - before), 0,
		    "uffd messages for %zu page writes through the unregistered alias", n);
	return true;
}

bool register_minor(struct fx *fx, uint64_t extra_mode)
{
	struct result *r = fx->r;
	uint64_t ioctls = 0;
	int rc;

	set_phase(r, "register missing-only, then minor");
	rc = uffd_register(fx->uffd, fx->a.base, fx->a.size, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (check_errno(r, "register-missing", -rc, 0, "UFFDIO_REGISTER(MODE_MISSING)")) {
		check_value(r, "missing-ioctls-lack-continue", !!(ioctls & CONTINUE_IOCTL), 0,
			    "CONTINUE in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)ioctls);
		rc = uffd_unregister(fx->uffd, fx->a.base, fx->a.size);
		check_errno(r, "unregister-missing", -rc, 0, "UFFDIO_UNREGISTER");
	}
	rc = uffd_register(fx->uffd, fx->a.base, fx->a.size, UFFDIO_REGISTER_MODE_MINOR | extra_mode, &fx->ioctls);
	if (!check_errno(r, "register-minor", -rc, 0, "UFFDIO_REGISTER(MODE_MINOR%s)",
			 extra_mode ? "|more" : ""))
		return false;
	check_value(r, "minor-ioctls-have-continue", !!(fx->ioctls & CONTINUE_IOCTL), 1,
		    "CONTINUE in the ioctls REGISTER(MODE_MINOR) returned (0x%llx)", (unsigned long long)fx->ioctls);
	return true;
}

void check_minor_reads(struct fx *fx, const char *name, struct hstats before, size_t n)
{
	struct hstats s = handler_stats(&fx->h);

	check_value(fx->r, name, (long long)(s.minor - before.minor), (long long)n,
		    "MINOR fault messages for first reads of %zu pages", n);
	check_value(fx->r, "no-missing-faults", (long long)(s.missing - before.missing), 0,
		    "MISSING fault messages while reading pages the page cache holds");
	check_value(fx->r, "continue-maps-whole-page", (long long)(s.short_resolves - before.short_resolves), 0,
		    "CONTINUEs whose mapped was not %zu (the last reported %lld)", fx->a.psize, (long long)s.short_out);
}

bool read_expect_minor(struct fx *fx, const size_t *pages, size_t n)
{
	struct result *r = fx->r;
	struct hstats before = handler_stats(&fx->h);
	bool ok;

	set_phase(r, "read %zu pages through the registered mapping", n);
	ok = read_pages(r, &fx->a, fx->a.base, pages, n, fx->run->threads, true, touch_wait_ms(&fx->a, n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", touch_wait_ms(&fx->a, n));
	if (!ok)
		return false;
	check_minor_reads(fx, "one-minor-fault-per-page", before, n);
	return true;
}
