/*
 * minor-private: MODE_MINOR on a private file mapping. CONTINUE maps the page-cache page
 * read-only; a write then copies it without a fault message, and the file keeps its bytes.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "fixture.h"
#include "minor_fixture.h"
#include "pagemap.h"

/* Pagemap bit 61 tells a page-cache page from the private copy a COW makes. */
static void check_file_pages(struct fx *fx, const char *name, bool file)
{
	struct pm_counts c;
	int rc = pagemap_count(fx->a.base, fx->a.size, &c);

	if (rc) {
		check_errno(fx->r, name, -rc, 0, "read /proc/self/pagemap");
		return;
	}
	check_value(fx->r, name, (long long)c.file, file ? (long long)c.entries : 0,
		    "4K entries (of %zu, %zu present) mapping a page-cache page (pagemap bit 61)", c.entries,
		    c.present);
}

void minor_private(struct run *run)
{
	/* A private hugetlb mapping reserves its own pages for the copies, beside the file's. */
	size_t extra = mem_info(run->mem)->hugetlb ? run->pages : 0;
	struct result *r = run->r;
	size_t n, *pages;
	struct fx fx;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, FX_FILE_ALIAS, 0, 0, extra))
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
	check_file_pages(&fx, "write-replaces-with-private-copy", false);
	check_data(&fx, "private-view-sees-writes", fx.a.base, NULL, GEN_WRITTEN);
	check_data(&fx, "file-unchanged-by-writes", fx.a.alias, NULL, GEN_INITIAL);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}
