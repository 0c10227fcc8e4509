/*
 * minor-fallocate: pages fallocate() created are in the page cache too: first reads through
 * the registered mapping raise MINOR faults that CONTINUE resolves, reading zeros.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "fixture.h"
#include "minor_fixture.h"
#include "util.h"

/* "mm: userfaultfd: fix UFFDIO_CONTINUE on fallocated shmem pages" (5.19). */
void minor_fallocate(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages, nonzero = 0;
	struct fx fx;
	int rc;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MINOR, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	set_phase(r, "fallocate");
	rc = fallocate(fx.a.fd, 0, 0, (off_t)fx.a.size) ? errno : 0;
	if (!check_errno(r, "fallocate", rc, 0, "fallocate(memfd, 0, 0, %zu)", fx.a.size))
		goto out;
	check_present(r, "registered-view-unmapped", fx.a.base, fx.a.size, false);
	if (!read_expect_minor(&fx, pages, n))
		return;
	for (size_t s = 0; s < fx.a.size / BASE_PAGE; s++)
		nonzero += *stamp_at(fx.a.base, s) != 0;
	check_value(r, "reads-see-zeros", (long long)nonzero, 0, "4K subpages of fallocated pages that read non-zero");
	if (!write_expect_quiet(&fx, pages, n))
		return;
	check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}
