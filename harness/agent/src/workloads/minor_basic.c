/*
 * minor-basic, minor-private, minor-anon-rejected, minor-fallocate: the minor-fault
 * contract. The page is already in the page cache; a registered mapping touching it
 * for the first time raises a MINOR message; UFFDIO_CONTINUE maps that very page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "fixture.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

/* minor-basic repeats every CONTINUE: the page is then mapped, so it must be EEXIST. */
struct again {
	struct fx *fx;
	uint64_t not_eexist, mapped_wrong;
	int last_rc;
	int64_t last_mapped;
};

static void continue_twice(struct handler *h, int fd, const struct uffd_msg *m)
{
	struct again *ag = h->user;
	size_t unit = ag->fx->a.psize;
	void *start = (void *)(uintptr_t)(m->arg.pagefault.address & ~(uint64_t)(unit - 1));
	int64_t mapped = 0;
	int rc;

	handler_resolve(h, fd, m);
	if (!(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR))
		return;
	rc = uffd_continue(fd, start, unit, 0, &mapped);
	if (rc != -EEXIST) {
		__atomic_fetch_add(&ag->not_eexist, 1, __ATOMIC_RELAXED);
		ag->last_rc = -rc;
	}
	if (mapped != -EEXIST) {
		__atomic_fetch_add(&ag->mapped_wrong, 1, __ATOMIC_RELAXED);
		ag->last_mapped = mapped;
	}
}

/* Read every page through the registered mapping; false if the readers got stuck. */
static bool read_all(struct fx *fx, const size_t *pages, size_t n)
{
	struct result *r = fx->r;
	struct hstats before = handler_stats(&fx->h);
	bool ok;

	set_phase(r, "read %zu pages through the registered mapping", n);
	ok = read_pages(r, &fx->a, fx->a.base, pages, n, fx->run->threads, true, pool_wait_ms(n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", pool_wait_ms(n));
	if (!ok)
		return false;
	check_minor_reads(fx, "one-minor-fault-per-page", before, n);
	return true;
}

void minor_basic(struct run *run)
{
	struct result *r = run->r;
	struct again ag = { 0 };
	size_t n, *pages;
	struct fx fx;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, 0, run->features & UFFD_FEATURE_EXACT_ADDRESS, 0, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	if (!register_minor(&fx, 0))
		goto out;
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL) || !alias_writes(&fx, "alias-modify", GEN_WRITTEN))
		return;
	check_present(r, "registered-view-unmapped", fx.a.base, fx.a.size, false);
	ag.fx = &fx;
	fx.h.user = &ag;
	fx.h.on_fault = continue_twice;
	if (!read_all(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "fault-addresses-match-reads", 0, pages, n);
	check_value(r, "second-continue-is-eexist", (long long)ag.not_eexist, 0,
		    "repeated CONTINUEs not failing with EEXIST (the last: %s)", errno_name(ag.last_rc));
	check_value(r, "second-continue-mapped-is-eexist", (long long)ag.mapped_wrong, 0,
		    "repeated CONTINUEs whose mapped was not -EEXIST (the last: %lld)", (long long)ag.last_mapped);
	check_present(r, "registered-view-mapped", fx.a.base, fx.a.size, true);
	check_data(&fx, "reads-see-alias-bytes", fx.a.base, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}

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
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL) || !read_all(&fx, pages, n))
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

void minor_anon_rejected(struct run *run)
{
	const uint64_t minor = UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM;
	struct result *r = run->r;
	size_t n, *even;
	uint64_t ioctls = 0;
	int64_t mapped = 0;
	struct fx fx;
	int rc;

	/* Without MODE_MINOR anywhere, EINVAL would prove nothing about anonymous memory. */
	if (!(run->features & minor)) {
		skip(r, "kernel lacks UFFD_FEATURE MINOR_HUGETLBFS and MINOR_SHMEM: no MODE_MINOR to reject");
		return;
	}
	if (!fx_setup(&fx, run, 0, 0, 0, 0, 0))
		return;
	even = page_list(fx.a.npages, PAGES_EVEN, run->seed, &n);
	set_phase(r, "register minor on anonymous memory");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MINOR, NULL);
	check_errno(r, "register-minor-is-einval", -rc, EINVAL, "UFFDIO_REGISTER(MODE_MINOR) of anonymous memory");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
			   NULL);
	check_errno(r, "register-missing-minor-is-einval", -rc, EINVAL,
		    "UFFDIO_REGISTER(MODE_MISSING|MODE_MINOR) of anonymous memory");

	/* Half-applied, the rejected MISSING|MINOR would make these writes fault. */
	set_phase(r, "write after the rejected registrations");
	if (!write_expect_quiet(&fx, even, n))
		goto out;

	set_phase(r, "CONTINUE on anonymous memory");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (check_errno(r, "register-missing", -rc, 0, "UFFDIO_REGISTER(MODE_MISSING)")) {
		check_value(r, "missing-ioctls-lack-continue", !!(ioctls & CONTINUE_IOCTL), 0,
			    "CONTINUE in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)ioctls);
		/* Page 1: odd, so never written above. */
		rc = uffd_continue(fx.uffd, fx.a.base + fx.a.psize, fx.a.psize, 0, &mapped);
		check_errno(r, "continue-is-einval", -rc, EINVAL, "UFFDIO_CONTINUE on registered anonymous memory");
		check_value(r, "continue-mapped-is-einval", mapped, -EINVAL, "its mapped field");
	}
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(even);
}

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
	if (!read_all(&fx, pages, n))
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
