/* The three kinds of stress threads: lockers, copiers and fault handlers. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"
#include "uffd.h"
#include "util.h"

void stress_fail(struct stress *st, struct failure *f, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&st->mu);
	if (!f->count++) {
		f->err = err;
		va_start(ap, fmt);
		vsnprintf(f->what, sizeof(f->what), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&st->mu);
}

uint64_t stress_tag(const struct stress *st, size_t page)
{
	return mix64(st->run->seed ^ 0x7461670000000000ULL ^ page);
}

static char *src_page(struct stress *st, size_t p)
{
	/* --sabotage misplace-copy: page 1 gets page 0's bytes, which verification must see. */
	if (p == 1 && sabotaged(st->r, "misplace-copy"))
		p = 0;
	return st->srcp + p * st->psize;
}

/* MISSING: copy the source page in. EEXIST: another thread was first. */
static int fill_copy(struct stress *st, size_t p)
{
	uint64_t mode = st->wp ? UFFDIO_COPY_MODE_WP : 0;
	int rc = uffd_copy(st->uffd, st->dst + p * st->psize, src_page(st, p), st->psize, mode, NULL);

	return rc == -EEXIST ? 1 : rc;
}

/*
 * MINOR: whoever claims the page first writes the source bytes through the alias and
 * maps them with CONTINUE; the others must not write it again (it may be in use by
 * then). A handler that lost the race waits for the mapping and wakes its thread.
 */
static int fill_minor(struct stress *st, size_t p, bool wake)
{
	uint64_t mode = st->continue_wp ? UFFDIO_CONTINUE_MODE_WP : 0;
	uint8_t free_ = 0;
	int rc;

	if (__atomic_compare_exchange_n(&st->claim[p], &free_, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		memcpy(st->dst_alias + p * st->psize, src_page(st, p), st->psize);
		rc = uffd_continue(st->uffd, st->dst + p * st->psize, st->psize, mode, NULL);
		__atomic_store_n(&st->claim[p], 2, __ATOMIC_RELEASE);
		return rc;
	}
	if (!wake)
		return 0;
	for (uint64_t until = now_ns() + 10000000000ULL; __atomic_load_n(&st->claim[p], __ATOMIC_ACQUIRE) != 2;) {
		if (now_ns() > until)
			return -ETIMEDOUT;
		sched_yield();
	}
	return uffd_wake(st->uffd, st->dst + p * st->psize, st->psize);
}

static void mark_slot(struct stress *st, uint32_t ptid, uint64_t page, int kind)
{
	for (unsigned t = 0; st->thread_id && t < st->nthreads; t++) {
		struct slot *sl = &st->slots[t];

		if (__atomic_load_n(&sl->tid, __ATOMIC_RELAXED) == (pid_t)ptid &&
		    __atomic_load_n(&sl->page, __ATOMIC_ACQUIRE) == page)
			__atomic_fetch_or(&sl->kinds, 1U << kind, __ATOMIC_RELEASE);
	}
}

static void handle(struct stress *st, const struct uffd_msg *m)
{
	uint64_t addr = m->arg.pagefault.address, flags = m->arg.pagefault.flags;
	size_t size = st->npages * st->psize, p;
	int kind, rc;

	if (m->event != UFFD_EVENT_PAGEFAULT) {
		__atomic_fetch_add(&st->unexpected, 1, __ATOMIC_RELAXED);
		return;
	}
	if (addr < (uintptr_t)st->dst || addr >= (uintptr_t)st->dst + size) {
		__atomic_fetch_add(&st->outside, 1, __ATOMIC_RELAXED);
		return;
	}
	p = (addr - (uintptr_t)st->dst) / st->psize;
	kind = flags & UFFD_PAGEFAULT_FLAG_WP ? KIND_WP : flags & UFFD_PAGEFAULT_FLAG_MINOR ? KIND_MINOR : KIND_MISSING;
	/* Marked before resolving: the locker looks once its access completes. */
	mark_slot(st, m->arg.pagefault.feat.ptid, (uintptr_t)st->dst + p * st->psize, kind);
	__atomic_fetch_add(&st->faults[kind], 1, __ATOMIC_RELAXED);
	if ((kind == KIND_MINOR) != !!(st->mode & B_MINOR) && kind != KIND_WP)
		__atomic_fetch_add(&st->unexpected, 1, __ATOMIC_RELAXED);
	if (kind == KIND_WP)
		rc = uffd_writeprotect(st->uffd, st->dst + p * st->psize, st->psize, 0);
	else if (kind == KIND_MINOR)
		rc = fill_minor(st, p, true);
	else if ((rc = fill_copy(st, p)) == 1)
		rc = uffd_wake(st->uffd, st->dst + p * st->psize, st->psize);
	if (rc)
		stress_fail(st, &st->ioctls, -rc, "handler resolving a %s fault on page %zu",
			    kind == KIND_WP ? "WP" : kind == KIND_MINOR ? "MINOR" : "MISSING", p);
}

/* Returns false once told to stop. */
static bool read_messages(struct stress *st)
{
	struct uffd_msg m;

	for (;;) {
		ssize_t got = read(st->uffd, &m, sizeof(m));

		if (got == (ssize_t)sizeof(m)) {
			handle(st, &m);
			if (st->mode & B_READ)
				return true;
			continue;
		}
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			return true;
		stress_fail(st, &st->reads, got < 0 ? errno : EIO, "read() of uffd messages");
		return false;
	}
}

/* Poll mode returns when the stop pipe is written; read mode is cancelled in read(). */
void stress_handler(struct stress *st, unsigned t)
{
	(void)t;
	for (;;) {
		struct pollfd p[2] = { { .fd = st->stop[0], .events = POLLIN }, { .fd = st->uffd, .events = POLLIN } };

		if (!(st->mode & B_READ)) {
			if (poll(p, 2, 1000) < 0 && errno != EINTR)
				return;
			if (p[0].revents)
				return;
			if (!(p[1].revents & POLLIN))
				continue;
		}
		if (!read_messages(st))
			return;
	}
}

/* One load or store of a page, timed and attributed to the fault kinds it took. */
static void timed_touch(struct stress *st, unsigned t, char *page, bool store)
{
	struct slot *sl = &st->slots[t];
	uint64_t t0, dt;
	uint32_t kinds;

	__atomic_store_n(&sl->kinds, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sl->page, (uintptr_t)page, __ATOMIC_RELEASE);
	t0 = now_ns();
	if (store)
		__atomic_fetch_add((uint64_t *)(page + OFF_TOUCH), 0, __ATOMIC_RELAXED);
	else
		(void)*(volatile uint64_t *)(page + OFF_COUNT);
	dt = now_ns() - t0;
	__atomic_store_n(&sl->page, 0, __ATOMIC_RELEASE);
	kinds = __atomic_load_n(&sl->kinds, __ATOMIC_ACQUIRE);
	if (!kinds)
		return;
	pthread_mutex_lock(&st->mu);
	for (int k = 0; k < NKINDS; k++)
		if (kinds & (1U << k))
			sample_add(&st->r->rates.lat[k], dt, &st->rng);
	/* The overall sample, reservoir-style like the per-kind ones. */
	if (st->sampled < MAX_LATENCIES) {
		st->r->lat_ns[st->sampled] = dt;
	} else {
		st->rng = mix64(st->rng);
		if (st->rng % (st->sampled + 1) < MAX_LATENCIES)
			st->r->lat_ns[st->rng % (st->sampled + 1)] = dt;
	}
	st->r->nlat = (unsigned)++st->sampled;
	pthread_mutex_unlock(&st->mu);
}

/* The page order of thread t in this bounce: a function of the seed and the mode only. */
static size_t next_page(struct stress *st, unsigned t, size_t i, uint64_t *rng)
{
	if (st->mode & B_RANDOM) {
		*rng = mix64(*rng);
		return (size_t)(*rng % st->npages);
	}
	return (i + (st->mode & B_RACING ? 0 : t * st->npages / st->nthreads)) % st->npages;
}

void stress_locker(struct stress *st, unsigned t)
{
	uint64_t rng = mix64(st->run->seed ^ ((uint64_t)st->bounce << 32) ^ (st->mode & B_RACING ? 0 : t + 1));

	__atomic_store_n(&st->slots[t].tid, agent_gettid(), __ATOMIC_RELAXED);
	for (size_t i = 0; i < st->npages; i++) {
		size_t p = next_page(st, t, i, &rng);
		char *page = st->dst + p * st->psize;
		uint64_t *count = (uint64_t *)(page + OFF_COUNT);

		timed_touch(st, t, page, false);
		timed_touch(st, t, page, true);
		pthread_mutex_lock((pthread_mutex_t *)page);
		if (*count != st->expect[p])
			stress_fail(st, &st->mismatch, 0, "page %zu counter %llu, expected %llu, bounce %u", p,
				    (unsigned long long)*count, (unsigned long long)st->expect[p], st->bounce);
		(*count)++;
		st->expect[p]++;
		pthread_mutex_unlock((pthread_mutex_t *)page);
	}
}

void stress_copier(struct stress *st, unsigned t)
{
	size_t from = t * st->npages / st->nthreads, to = (t + 1) * st->npages / st->nthreads, n = to - from;
	uint64_t seed = st->run->seed ^ ((uint64_t)st->bounce << 32) ^ ((uint64_t)(t + 1) << 16);
	size_t *order = malloc((n ? n : 1) * sizeof(*order));

	if (!order)
		abort();
	for (size_t i = 0; i < n; i++)
		order[i] = from + i;
	if (st->mode & B_RANDOM)
		shuffle(order, n, seed);
	for (size_t i = 0; i < n; i++) {
		int rc;

		/* Half way, protect the whole slice: pages still to come are protected as they
		 * arrive (COPY_MODE_WP), those already in use fault on their next store. */
		if (i == n / 2 && st->wp) {
			rc = uffd_writeprotect(st->uffd, st->dst + from * st->psize, n * st->psize,
					       UFFDIO_WRITEPROTECT_MODE_WP);
			if (rc)
				stress_fail(st, &st->ioctls, -rc, "copier protecting pages %zu-%zu", from, to);
		}
		rc = st->mode & B_MINOR ? fill_minor(st, order[i], false) : fill_copy(st, order[i]);
		if (rc < 0)
			stress_fail(st, &st->ioctls, -rc, "copier filling page %zu", order[i]);
	}
	free(order);
}
