/*
 * detach: a registration going away must release the faults waiting on it, and mremap
 * without UFFD_FEATURE_EVENT_REMAP takes the moved range out of the registration.
 *
 * Per fs/userfaultfd.c (6.1 and later):
 * - UFFDIO_UNREGISTER of a MISSING range wakes its pending faults (wake_userfault over the
 *   range), which retry as ordinary faults: the reader completes and sees a new, zeroed
 *   page, without anyone resolving the fault and without SIGBUS;
 * - close() of the uffd (userfaultfd_release) wakes every pending fault the same way;
 * - mremap of part of a registered range, by a uffd without EVENT_REMAP, clears the
 *   moved VMA's registration (mremap_userfaultfd_prep): the moved pages fault like any
 *   memory, no message; the part left behind stays registered.
 * Each part uses its own uffd, with no handler: a message stays unread in its queue.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

#define NPAGES 6

/* A fresh uffd with the area registered MISSING, or -1 after recording why. */
static int registered_uffd(struct fx *fx, const char *part)
{
	struct result *r = fx->r;
	char source[48], name[48];
	int fd = uffd_new(0, NULL, source, sizeof(source)), rc;

	snprintf(name, sizeof(name), "%s-uffd", part);
	if (!check_errno(r, name, fd < 0 ? -fd : 0, 0, "userfaultfd + UFFDIO_API"))
		return -1;
	rc = uffd_register(fd, fx->a.base, fx->a.size, UFFDIO_REGISTER_MODE_MISSING, NULL);
	snprintf(name, sizeof(name), "%s-register", part);
	if (!check_errno(r, name, -rc, 0, "UFFDIO_REGISTER(MODE_MISSING) of the area")) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool message_queued(int fd, unsigned ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, (int)ms) == 1 && (p.revents & POLLIN);
}

/* The first 8 bytes of each 4K subpage of page, all zero? Read by this thread. */
static bool page_zeroed(const struct fx *fx, size_t page)
{
	size_t spp = subpages_per_page(&fx->a);

	for (size_t s = page * spp; s < (page + 1) * spp; s++)
		if (*stamp_at(fx->a.base, s))
			return false;
	return true;
}

/*
 * A reader of page blocks on uffd fd (its message queued, unread); release(fd) must let
 * it finish on a zeroed page. False: the reader is stuck, the run must end.
 */
static bool released_reader(struct fx *fx, int fd, size_t page, const char *prefix, const char *how,
			    int (*release)(struct fx *, int))
{
	struct result *r = fx->r;
	struct solo *s;
	int rc;

	set_phase(r, "read page %zu, then %s", page, how);
	check_prefix(r, prefix);
	s = solo_start(r, &fx->a, fx->a.base, page, fx->run->seed, GEN_INITIAL, false, &rc);
	/* Control follows what happened, not the check: --inject-fail must not leave a
	 * started reader behind to fault on the next part's uffd. */
	check_errno(r, "start-reader", rc, 0, "pthread_create");
	if (!s) {
		release(fx, fd); /* the next part registers the same range */
		goto out;
	}
	check_value(r, "fault-message-queued", message_queued(fd, WAIT_MS), 1,
		    "a MISSING message readable on the uffd within %u ms of the read", WAIT_MS);
	check_value(r, "reader-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "reader thread asleep in the fault within %u ms", WAIT_MS);
	rc = release(fx, fd);
	check_errno(r, "succeeds", rc, 0, "%s", how);
	if (!check_value(r, "wakes-reader", solo_finished(s, WAIT_MS), 1, "reader finished within %u ms of %s",
			 WAIT_MS, how)) {
		r->stuck = true;
		check_prefix(r, "");
		return false;
	}
	check_value(r, "reader-sees-new-zeroed-page", page_zeroed(fx, page), 1,
		    "page %zu reads as zeros after the reader finished", page);
	solo_free(s);
out:
	check_prefix(r, "");
	return true;
}

static int unregister_all(struct fx *fx, int fd)
{
	return -uffd_unregister(fd, fx->a.base, fx->a.size);
}

static int close_uffd(struct fx *fx, int fd)
{
	(void)fx;
	return close(fd) ? errno : 0;
}

/* Pages 2-3 move; page 4 stays behind, registered. */
static bool mremap_drops_registration(struct fx *fx)
{
	struct result *r = fx->r;
	size_t ps = fx->a.psize;
	char *to, *moved;
	struct solo *s;
	int fd, rc;
	bool ok = true;

	set_phase(r, "mremap pages 2-3 without EVENT_REMAP");
	fd = registered_uffd(fx, "remap");
	if (fd < 0)
		return true;
	check_prefix(r, "remap-");
	to = mmap(NULL, 2 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!check_errno(r, "reserve-target", to == MAP_FAILED ? errno : 0, 0, "mmap a target range"))
		goto out;
	moved = mremap(fx->a.base + 2 * ps, 2 * ps, 2 * ps, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (!check_errno(r, "mremap", moved == MAP_FAILED ? errno : 0, 0, "mremap(MAYMOVE|FIXED) of pages 2-3")) {
		munmap(to, 2 * ps);
		goto out;
	}
	/* Read through a thread: were the range still registered, the read would wait for
	 * a handler that never comes. The solo's view is placed so its page 2 is `moved`. */
	s = solo_start(r, &fx->a, moved - 2 * ps, 2, fx->run->seed, GEN_INITIAL, false, &rc);
	check_errno(r, "start-moved-reader", rc, 0, "pthread_create");
	if (!s)
		goto out;
	if (!check_value(r, "moved-read-completes", solo_finished(s, WAIT_MS), 1,
			 "a read of a moved page finished within %u ms", WAIT_MS)) {
		r->stuck = true;
		ok = false;
		goto out;
	}
	solo_free(s);
	check_value(r, "moved-read-zeros", *(volatile uint64_t *)moved == 0, 1, "the moved page reads as zeros");
	check_value(r, "moved-raise-no-message", message_queued(fd, QUIET_MS), 0,
		    "a message on the uffd within %u ms of touching a moved page", QUIET_MS);
	munmap(moved, 2 * ps);

	s = solo_start(r, &fx->a, fx->a.base, 4, fx->run->seed, GEN_INITIAL, false, &rc);
	check_errno(r, "start-reader", rc, 0, "pthread_create");
	if (!s)
		goto out;
	check_value(r, "rest-still-registered", message_queued(fd, WAIT_MS), 1,
		    "a MISSING message within %u ms of reading page 4, which did not move", WAIT_MS);
	close(fd);
	fd = -1;
	if (!check_value(r, "rest-reader-released", solo_finished(s, WAIT_MS), 1,
			 "the page-4 reader finished within %u ms of close()", WAIT_MS)) {
		r->stuck = true;
		ok = false;
		goto out;
	}
	solo_free(s);
out:
	if (fd >= 0)
		close(fd);
	check_prefix(r, "");
	return ok;
}

void detach(struct run *run)
{
	struct fx fx;
	int fd;

	if (!need_features(run, missing_features(run->mem)) || !fx_setup(&fx, run, NPAGES, 0, 0, 0, 0))
		return;
	fd = registered_uffd(&fx, "unregister");
	if (fd >= 0) {
		bool ok = released_reader(&fx, fd, 0, "unregister-", "UFFDIO_UNREGISTER of the area", unregister_all);

		close(fd);
		if (!ok)
			return;
	}
	fd = registered_uffd(&fx, "close");
	if (fd >= 0 && !released_reader(&fx, fd, 1, "close-", "close() of the uffd", close_uffd))
		return;
	if (!mem_info(run->mem)->hugetlb && !mremap_drops_registration(&fx))
		return;
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
