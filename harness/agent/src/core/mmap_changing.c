/*
 * The mmap_changing window. A non-cooperative event (here REMOVE, from MADV_DONTNEED on
 * a range registered with UFFD_FEATURE_EVENT_REMOVE) holds the madvise() caller until
 * the monitor reads the event; until then every resolving ioctl on that uffd must fail
 * with EAGAIN and say so in its output field too ("mm/userfaultfd: fix uninitialized
 * output field for -EAGAIN race": before it the field was left as the caller set it).
 */
#define _GNU_SOURCE
#include "mmap_changing.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "util.h"

struct zapper {
	char *addr;
	size_t len;
	int err;
	int done;
};

static void *zap_main(void *arg)
{
	struct zapper *z = arg;

	z->err = madvise(z->addr, z->len, MADV_DONTNEED) ? errno : 0;
	__atomic_store_n(&z->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

bool while_mmap_changing(struct result *r, int uffd, char *zap, size_t len, void (*op)(void *arg), void *arg)
{
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	struct zapper *z = calloc(1, sizeof(*z));
	struct uffd_msg m = { 0 };
	pthread_t thread;
	bool queued, ok;

	if (!z)
		abort();
	z->addr = zap;
	z->len = len;
	if (!check_errno(r, "mmap-changing-thread", pthread_create(&thread, NULL, zap_main, z), 0, "pthread_create")) {
		free(z);
		return false;
	}
	/* What follows depends on what was measured, not on the (perhaps perturbed) checks. */
	queued = poll(&p, 1, WAIT_MS) == 1;
	check_value(r, "mmap-changing-event-queued", queued, 1, "REMOVE event pending within %u ms of MADV_DONTNEED",
		    WAIT_MS);
	if (queued)
		op(arg);
	ok = queued && read(uffd, &m, sizeof(m)) == (ssize_t)sizeof(m);
	check_value(r, "mmap-changing-event-is-remove", ok ? m.event : 0, UFFD_EVENT_REMOVE,
		    "the event read to close the window");
	ok = false;
	for (uint64_t until = now_ns() + WAIT_MS * 1000000ULL; !ok && now_ns() < until; sleep_ms(1))
		ok = __atomic_load_n(&z->done, __ATOMIC_ACQUIRE);
	check_value(r, "mmap-changing-madvise-returns", ok, 1, "MADV_DONTNEED returned within %u ms", WAIT_MS);
	if (!ok) {
		r->stuck = true; /* the thread still uses z */
		return false;
	}
	pthread_join(thread, NULL);
	check_errno(r, "mmap-changing-madvise", z->err, 0, "madvise(MADV_DONTNEED)");
	free(z);
	return queued;
}
