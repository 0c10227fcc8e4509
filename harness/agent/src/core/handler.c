#define _GNU_SOURCE
#include "handler.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "uffd.h"
#include "util.h"

/* Map generation copy_gen's stamps for the unit at start (the page's own subpage numbers). */
static int copy_stamps(struct handler *h, int fd, uint64_t start, size_t unit, int64_t *out)
{
	size_t first = (start - (uintptr_t)h->a->base) / BASE_PAGE;
	int rc;

	/* Only the handler thread uses the buffer: it is built on first use. */
	if (!h->copy_src) {
		h->copy_src = mmap(NULL, unit, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (h->copy_src == MAP_FAILED) {
			h->copy_src = NULL;
			return -ENOMEM;
		}
		h->copy_src_size = unit;
	}
	if (unit > h->copy_src_size)
		return -EOVERFLOW;
	memset(h->copy_src, 0, unit);
	for (size_t s = 0; s < unit / BASE_PAGE; s++)
		*stamp_at(h->copy_src, s) = stamp(h->seed, h->copy_gen, first + s);
	rc = uffd_copy(fd, (void *)(uintptr_t)start, h->copy_src, unit, h->copy_mode, out);
	/* Someone else filled it first: the faulting thread still needs its wake-up. */
	if (rc == -EEXIST) {
		*out = (int64_t)unit;
		return uffd_wake(fd, (void *)(uintptr_t)start, unit);
	}
	return rc;
}

void handler_resolve(struct handler *h, int fd, const struct uffd_msg *m)
{
	uint64_t flags = m->arg.pagefault.flags;
	int64_t out = 0;
	void *start;
	size_t unit;
	int rc;

	if (sabotaged(h->r, "stall-handler"))
		return;
	pthread_mutex_lock(&h->mu);
	unit = h->unit;
	pthread_mutex_unlock(&h->mu);
	start = (void *)(uintptr_t)(m->arg.pagefault.address & ~(uint64_t)(unit - 1));
	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		rc = uffd_writeprotect(fd, start, unit, 0);
		out = (int64_t)unit;
	} else if (flags & UFFD_PAGEFAULT_FLAG_MINOR) {
		rc = uffd_continue(fd, start, unit, h->continue_mode, &out);
	} else if (h->missing_op == MISSING_ZEROPAGE) {
		rc = uffd_zeropage(fd, start, unit, 0, &out);
	} else {
		rc = copy_stamps(h, fd, (uintptr_t)start, unit, &out);
	}
	pthread_mutex_lock(&h->mu);
	if (rc) {
		h->s.resolve_errors++;
		h->s.resolve_errno = -rc;
	} else if (out != (int64_t)unit) {
		h->s.short_resolves++;
		h->s.short_out = out;
	}
	pthread_mutex_unlock(&h->mu);
}

void handler_hold(struct handler *h, int fd, const struct uffd_msg *m)
{
	(void)h;
	(void)fd;
	(void)m;
}

static void add_fd(struct handler *h, int fd)
{
	if (h->nfds < HANDLER_MAX_FDS)
		h->fds[h->nfds++] = fd;
}

static void record_fault(struct handler *h, int idx, const struct uffd_msg *m)
{
	uint64_t flags = m->arg.pagefault.flags, addr = m->arg.pagefault.address;

	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		h->s.wp++;
		h->s.bad_flags += !(flags & UFFD_PAGEFAULT_FLAG_WRITE);
	} else if (flags & UFFD_PAGEFAULT_FLAG_MINOR) {
		h->s.minor++;
	} else {
		h->s.missing++;
	}
	if (idx) {
		h->s.child_faults++;
		return;
	}
	if (addr < (uintptr_t)h->a->base || addr >= (uintptr_t)h->a->base + h->a->size)
		h->s.outside++;
	if (h->naddrs == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->addrs = realloc(h->addrs, h->cap * sizeof(*h->addrs));
		if (!h->addrs)
			abort();
	}
	h->addrs[h->naddrs++] = addr;
}

static void dispatch(struct handler *h, int fd, int idx, const struct uffd_msg *m)
{
	bool fault = m->event == UFFD_EVENT_PAGEFAULT;

	pthread_mutex_lock(&h->mu);
	h->s.received++;
	if (fault) {
		record_fault(h, idx, m);
	} else {
		if (h->nevents < HANDLER_MAX_EVENTS)
			h->events[h->nevents++] = *m;
		if (m->event == UFFD_EVENT_FORK) {
			h->s.forks++;
			h->s.fork_fd = (int)m->arg.fork.ufd;
			add_fd(h, h->s.fork_fd);
		} else if (m->event < UFFD_EVENT_PAGEFAULT || m->event >= UFFD_EVENT_PAGEFAULT + 32 ||
			   !(h->expect_events & EVENT_BIT(m->event))) {
			h->s.other_events++;
		}
	}
	pthread_mutex_unlock(&h->mu);

	if (fault)
		(h->on_fault ? h->on_fault : handler_resolve)(h, fd, m);

	pthread_mutex_lock(&h->mu);
	h->s.handled++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void drain(struct handler *h, int fd, int idx)
{
	struct uffd_msg m;

	for (;;) {
		ssize_t got = read(fd, &m, sizeof(m));

		if (got == (ssize_t)sizeof(m)) {
			dispatch(h, fd, idx, &m);
			continue;
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		pthread_mutex_lock(&h->mu);
		h->s.read_errors++;
		h->s.read_errno = got < 0 ? errno : EIO;
		pthread_mutex_unlock(&h->mu);
		return;
	}
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;

	for (;;) {
		struct pollfd p[HANDLER_MAX_FDS + 1];
		int n = 0, nfds = h->nfds;

		p[n++] = (struct pollfd){ .fd = h->stop[0], .events = POLLIN };
		for (int i = 0; i < nfds; i++)
			p[n++] = (struct pollfd){ .fd = h->fds[i], .events = POLLIN };
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		for (int i = 0; i < nfds; i++)
			if (p[i + 1].revents & POLLIN)
				drain(h, h->fds[i], i);
	}
	return NULL;
}

int handler_start(struct handler *h, struct result *r, const struct area *a, int fd, size_t unit, uint64_t seed)
{
	int rc;

	memset(h, 0, sizeof(*h));
	h->r = r;
	h->a = a;
	h->unit = unit;
	h->seed = seed;
	h->copy_gen = GEN_INITIAL;
	h->s.fork_fd = -1;
	h->fds[h->nfds++] = fd;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pipe2(h->stop, O_CLOEXEC))
		return -errno;
	rc = pthread_create(&h->thread, NULL, handler_main, h);
	if (rc)
		return -rc;
	h->running = true;
	return 0;
}

void handler_stop(struct handler *h)
{
	if (!h->running)
		return;
	if (write(h->stop[1], "x", 1) != 1)
		abort();
	pthread_join(h->thread, NULL);
	close(h->stop[0]);
	close(h->stop[1]);
	h->running = false;
}

void handler_free(struct handler *h)
{
	handler_stop(h);
	for (int i = 1; i < h->nfds; i++)
		close(h->fds[i]);
	h->nfds = 0;
	free(h->addrs);
	h->addrs = NULL;
	if (h->copy_src)
		munmap(h->copy_src, h->copy_src_size);
	h->copy_src = NULL;
}

static struct timespec deadline(unsigned timeout_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

bool handler_wait(struct handler *h, uint64_t n, unsigned timeout_ms)
{
	struct timespec until = deadline(timeout_ms);
	bool ok;

	pthread_mutex_lock(&h->mu);
	while (h->s.handled < n)
		if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
			break;
	ok = h->s.handled >= n;
	pthread_mutex_unlock(&h->mu);
	return ok;
}

static size_t count_events(const struct handler *h, uint8_t event)
{
	size_t n = 0;

	for (size_t i = 0; i < h->nevents; i++)
		n += h->events[i].event == event;
	return n;
}

bool handler_wait_event(struct handler *h, uint8_t event, size_t n, unsigned timeout_ms)
{
	struct timespec until = deadline(timeout_ms);
	bool ok;

	pthread_mutex_lock(&h->mu);
	while (count_events(h, event) < n)
		if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
			break;
	ok = count_events(h, event) >= n;
	pthread_mutex_unlock(&h->mu);
	return ok;
}

struct hstats handler_stats(struct handler *h)
{
	struct hstats s;

	pthread_mutex_lock(&h->mu);
	s = h->s;
	pthread_mutex_unlock(&h->mu);
	return s;
}

size_t handler_events(struct handler *h, uint8_t event, struct uffd_msg *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->nevents; i++)
		if (h->events[i].event == event && n < max)
			out[n++] = h->events[i];
	pthread_mutex_unlock(&h->mu);
	return n;
}

void handler_set_unit(struct handler *h, size_t unit)
{
	pthread_mutex_lock(&h->mu);
	h->unit = unit;
	pthread_mutex_unlock(&h->mu);
}
