/*
 * minor-private: MODE_MINOR on a private file mapping. CONTINUE maps the page-cache page
 * read-only; a write then copies it without a fault message, and the file keeps its bytes.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fixture.h"
#include "minor_fixture.h"

void minor_private(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages;
	struct fx fx;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, FX_FILE_ALIAS, 0, 0, private_copy_hugepages(run)))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	if (!register_minor(&fx, 0))
		goto out;
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL) || !read_expect_minor(&fx, pages, n))
		return;
	check_present(r, "private-view-mapped", fx.a.base, fx.a.size, true);
	check_file_pages(&fx, "continue-maps-page-cache-page", true);
	check_data(&fx, "reads-see-file-bytes", fx.a.base, NULL, GEN_INITIAL);

	/* CONTINUE must have mapped the shared page read-only: a write copies it. */
	if (!write_expect_quiet(&fx, pages, n))
		return;
	check_private_copies(&fx);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}
