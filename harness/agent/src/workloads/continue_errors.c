/*
 * continue-errors, continue-dontwake, continue-wp: the UFFDIO_CONTINUE contract beyond
 * the plain round trip: its error returns (and the mapped field they write), DONTWAKE
 * with an explicit UFFDIO_WAKE, and CONTINUE_MODE_WP (6.4).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
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

void continue_dontwake(struct run *run)
{
	struct result *r = run->r;
	struct solo *s;
	int64_t mapped = 0;
	struct fx fx;
	int rc;

	if (!need_minor(run) || !fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MINOR, 0))
		return;
	if (!alias_writes(&fx, "alias-fill", GEN_WRITTEN))
		return;
	fx.h.on_fault = handler_hold;

	set_phase(r, "read page 0 and hold the fault");
	s = solo_start(r, &fx.a, fx.a.base, 0, run->seed, GEN_WRITTEN, false, &rc);
	if (!check_errno(r, "start-reader", rc, 0, "pthread_create"))
		goto out;
	if (!check_value(r, "fault-delivered", handler_wait(&fx.h, 1, WAIT_MS), 1,
			 "fault message within %u ms of reading through the registered mapping", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	check_value(r, "fault-is-minor", (long long)handler_stats(&fx.h).minor, 1, "MINOR fault messages");
	check_value(r, "reader-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "reader thread asleep in the fault within %u ms", WAIT_MS);

	set_phase(r, "CONTINUE with DONTWAKE");
	rc = uffd_continue(fx.uffd, fx.a.base, fx.a.psize, UFFDIO_CONTINUE_MODE_DONTWAKE, &mapped);
	if (check_errno(r, "continue-dontwake", -rc, 0, "UFFDIO_CONTINUE mode DONTWAKE"))
		check_value(r, "continue-dontwake-mapped", mapped, (long long)fx.a.psize, "its mapped field");
	check_present(r, "mapped-before-wake", fx.a.base, fx.a.psize, true);
	check_value(r, "reader-still-blocked", solo_finished(s, QUIET_MS), 0,
		    "reader finished within %u ms of a CONTINUE with DONTWAKE", QUIET_MS);

	set_phase(r, "wake");
	check_errno(r, "wake", -uffd_wake(fx.uffd, fx.a.base, fx.a.psize), 0, "UFFDIO_WAKE");
	if (!check_value(r, "reader-completes-after-wake", solo_finished(s, WAIT_MS), 1,
			 "reader finished within %u ms of UFFDIO_WAKE", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	check_value(r, "reader-sees-alias-bytes", (long long)s->bad, 0,
		    "4K subpages of page 0 the reader saw without the alias's bytes");
	solo_free(s);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}

/* REGISTER offers CONTINUE_MODE_WP only implicitly: it must fail where WP is not registered. */
static void continue_wp_needs_wp(struct fx *fx)
{
	struct result *r = fx->r;
	char *view = mmap(NULL, fx->a.size, PROT_READ | PROT_WRITE, MAP_SHARED, fx->a.fd, 0);
	int rc;

	if (!check_errno(r, "map-third-view", view == MAP_FAILED ? errno : 0, 0, "mmap a third view of the memfd"))
		return;
	rc = uffd_register(fx->uffd, view, fx->a.size, UFFDIO_REGISTER_MODE_MINOR, NULL);
	if (check_errno(r, "register-minor-view", -rc, 0, "UFFDIO_REGISTER(MODE_MINOR) of the third view")) {
		rc = uffd_continue(fx->uffd, view, fx->a.psize, UFFDIO_CONTINUE_MODE_WP, NULL);
		check_errno(r, "continue-wp-without-wp-is-einval", -rc, EINVAL,
			    "UFFDIO_CONTINUE mode WP on a range registered without MODE_WP");
	}
	munmap(view, fx->a.size);
}

void continue_wp(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages;
	struct hstats before;
	struct fx fx;
	bool ok;

	if (!need_minor(run) || !need_wp(run, 0))
		return;
	/* The mode has no feature bit; the selftests take WP_UNPOPULATED, from the same release. */
	if (!(run->features & UFFD_FEATURE_WP_UNPOPULATED)) {
		skip(r, "kernel lacks UFFDIO_CONTINUE_MODE_WP (6.4; no feature bit of its own, and "
			"UFFD_FEATURE_WP_UNPOPULATED from the same release is missing)");
		return;
	}
	if (!fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	fx.h.continue_mode = UFFDIO_CONTINUE_MODE_WP;
	if (!alias_writes(&fx, "alias-fill", GEN_INITIAL))
		return;
	set_phase(r, "read through the registered mapping");
	before = handler_stats(&fx.h);
	ok = read_pages(r, &fx.a, fx.a.base, pages, n, run->threads, true, pool_wait_ms(n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", pool_wait_ms(n));
	if (!ok)
		return;
	check_minor_reads(&fx, "one-minor-fault-per-page", before, n);
	check_present(r, "registered-view-mapped", fx.a.base, fx.a.size, true);
	check_wp_bits(r, "continue-wp-sets-wp-bit", fx.a.base, fx.a.size, true);
	check_data(&fx, "reads-see-alias-bytes", fx.a.base, NULL, GEN_INITIAL);

	if (!write_expect_faults(&fx, pages, n))
		return;
	check_fault_addrs(&fx, "wp-fault-addresses-match-writes", n, pages, n);
	check_wp_bits(r, "wp-bit-clear-after-writes", fx.a.base, fx.a.size, false);
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	continue_wp_needs_wp(&fx);
	check_handler_clean(&fx);
	fx_teardown(&fx);
	free(pages);
}
