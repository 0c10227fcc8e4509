/*
 * continue-errors: UFFDIO_CONTINUE's error returns and the mapped field they write: EFAULT
 * on a page-cache hole, ENOENT off registered ranges, EINVAL for bad arguments, EEXIST once
 * mapped, EAGAIN in the mmap_changing window; and what it does where MODE_MINOR was not
 * registered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "minor_fixture.h"
#include "mmap_changing.h"
#include "uffd.h"
#include "util.h"

/* A CONTINUE that must fail with want; mapped_name (if any) checks the mapped field too. */
static void expect_fail(struct fx *fx, const char *name, const char *mapped_name, char *addr, size_t len,
			uint64_t mode, int want, const char *what)
{
	int64_t mapped = 0;
	int rc = uffd_continue(fx->uffd, addr, len, mode, &mapped);

	check_errno(fx->r, name, -rc, want, "UFFDIO_CONTINUE %s", what);
	if (mapped_name)
		check_value(fx->r, mapped_name, mapped, -want, "the mapped field of CONTINUE %s", what);
}

static void bad_arguments(struct fx *fx)
{
	char *base = fx->a.base;
	size_t ps = fx->a.psize;

	expect_fail(fx, "unknown-mode-bit-is-einval", NULL, base, ps, 1ULL << 2, EINVAL, "with mode bit 2");
	expect_fail(fx, "high-mode-bit-is-einval", NULL, base, ps, 1ULL << 63, EINVAL, "with mode bit 63");
	expect_fail(fx, "zero-length-is-einval", NULL, base, 0, 0, EINVAL, "of length 0");
	expect_fail(fx, "unaligned-start-is-einval", NULL, base + 1, ps, 0, EINVAL, "starting 1 byte into a page");
	expect_fail(fx, "unaligned-length-is-einval", NULL, base, ps + 1, 0, EINVAL, "of one page plus 1 byte");
	/* Page aligned, so only the wrap itself can be what is wrong. */
	expect_fail(fx, "wrapping-range-is-einval", NULL, base, ~(size_t)(BASE_PAGE - 1), 0, EINVAL,
		    "whose start+len wraps around");
	if (!mem_info(fx->a.type)->hugetlb)
		return;
	expect_fail(fx, "hugetlb-partial-length-is-einval", NULL, base, BASE_PAGE, 0, EINVAL,
		    "of 4K of a hugetlb page");
	expect_fail(fx, "hugetlb-unaligned-start-is-einval", NULL, base + BASE_PAGE, ps - BASE_PAGE, 0, EINVAL,
		    "of the tail of a hugetlb page, 4K in");
}

/*
 * Only REGISTER's bitmask says CONTINUE needs MODE_MINOR; what the ioctl itself does
 * there is recorded, and must agree with what the page table then shows.
 */
static void missing_only_view(struct fx *fx)
{
	struct result *r = fx->r;
	char *view = mmap(NULL, fx->a.size, PROT_READ | PROT_WRITE, MAP_SHARED, fx->a.fd, 0);
	uint64_t ioctls = 0;
	int64_t mapped = 0;
	int rc;

	if (!check_errno(r, "map-third-view", view == MAP_FAILED ? errno : 0, 0, "mmap a third view of the memfd"))
		return;
	rc = uffd_register(fx->uffd, view, fx->a.size, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (check_errno(r, "register-missing-view", -rc, 0, "UFFDIO_REGISTER(MODE_MISSING) of the third view")) {
		check_value(r, "missing-ioctls-lack-continue", !!(ioctls & CONTINUE_IOCTL), 0,
			    "CONTINUE in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)ioctls);
		rc = uffd_continue(fx->uffd, view, fx->a.psize, 0, &mapped);
		note(r, "UFFDIO_CONTINUE on a range registered without MODE_MINOR: %s (mapped %lld)", errno_name(-rc),
		     (long long)mapped);
		check_present(r, rc ? "refused-continue-maps-nothing" : "accepted-continue-maps-page", view, fx->a.psize,
			      !rc);
	}
	munmap(view, fx->a.size);
}

struct pending_continue {
	int uffd;
	char *addr;
	size_t len;
	int rc;
	int64_t mapped;
};

static void continue_op(void *arg)
{
	struct pending_continue *pc = arg;

	pc->rc = uffd_continue(pc->uffd, pc->addr, pc->len, 0, &pc->mapped);
}

/*
 * CONTINUE while a REMOVE event is pending: EAGAIN, and mapped says so. The ioctl checks
 * the window on entry, before the memory type matters: shmem alone runs this part.
 */
static void mmap_changing(struct fx *fx)
{
	struct result *r = fx->r;
	char *view = mmap(NULL, fx->a.psize, PROT_READ | PROT_WRITE, MAP_SHARED, fx->a.fd, 0);
	struct pending_continue pc = { .addr = view, .len = fx->a.psize };
	char source[48];
	int rc;

	if (!(fx->run->features & UFFD_FEATURE_EVENT_REMOVE)) {
		note(r, "mmap-changing part not run: kernel lacks UFFD_FEATURE_EVENT_REMOVE");
		return;
	}
	if (!check_errno(r, "map-fourth-view", view == MAP_FAILED ? errno : 0, 0, "mmap a view of page 0"))
		return;
	pc.uffd = uffd_new(UFFD_FEATURE_EVENT_REMOVE, NULL, source, sizeof(source));
	if (check_errno(r, "open-event-uffd", pc.uffd < 0 ? -pc.uffd : 0, 0, "userfaultfd + UFFDIO_API(EVENT_REMOVE)")) {
		rc = uffd_register(pc.uffd, view, fx->a.psize, UFFDIO_REGISTER_MODE_MINOR, NULL);
		if (check_errno(r, "register-view-minor", -rc, 0, "UFFDIO_REGISTER(MODE_MINOR) of the view") &&
		    while_mmap_changing(r, pc.uffd, view, fx->a.psize, continue_op, &pc)) {
			check_errno(r, "mmap-changing-is-eagain", -pc.rc, EAGAIN,
				    "UFFDIO_CONTINUE while a REMOVE event is unread");
			check_value(r, "mmap-changing-mapped-is-eagain", pc.mapped, -EAGAIN, "its mapped field");
		}
		close(pc.uffd);
	}
	if (!r->stuck)
		munmap(view, fx->a.psize);
}

void continue_errors(struct run *run)
{
	struct result *r = run->r;
	int64_t mapped = 0;
	struct fx fx;
	int rc;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MINOR, 0))
		return;
	set_phase(r, "CONTINUE on a page-cache hole");
	expect_fail(&fx, "hole-is-efault", "hole-mapped-is-efault", fx.a.base, fx.a.psize, 0, EFAULT,
		    "on a page-cache hole");
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL))
		return;
	set_phase(r, "error contract");
	bad_arguments(&fx);
	expect_fail(&fx, "unregistered-range-is-enoent", "unregistered-mapped-is-enoent", fx.a.alias, fx.a.psize, 0,
		    ENOENT, "on a range no uffd registered");
	check_present(r, "failed-calls-map-nothing", fx.a.base, fx.a.size, false);

	set_phase(r, "valid CONTINUE, then again");
	rc = uffd_continue(fx.uffd, fx.a.base, fx.a.psize, 0, &mapped);
	if (check_errno(r, "valid-continue", -rc, 0, "UFFDIO_CONTINUE of page 0 after the failures"))
		check_value(r, "valid-continue-mapped", mapped, (long long)fx.a.psize, "its mapped field");
	expect_fail(&fx, "repeat-is-eexist", "repeat-mapped-is-eexist", fx.a.base, fx.a.psize, 0, EEXIST,
		    "of a page it already mapped");
	/* Page 0 only: reading any other page through the registered mapping would fault. */
	check_value(r, "continued-page-has-file-bytes",
		    (long long)area_mismatches(&fx.a, fx.a.base, 0, 1, run->seed, NULL, GEN_INITIAL, NULL), 0,
		    "4K subpages of page 0 without the alias's bytes");

	missing_only_view(&fx);
	if (run->mem == MEM_SHMEM)
		mmap_changing(&fx);
	if (r->stuck)
		return;
	check_value(r, "no-fault-messages", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages (nothing here touches the registered mapping first)");
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
