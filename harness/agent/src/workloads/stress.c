/*
 * stress: uffd-stress-like bounces. Two areas take turns as source and destination;
 * every page carries a pthread mutex, a counter and a tag naming the page. In each
 * bounce the destination is emptied and registered, then at once:
 *   lockers   (--threads) lock pages of the destination in a seeded order, check the
 *             counter against the count of increments made so far, increment both;
 *   handlers  (--threads) resolve the faults that raises: MISSING by UFFDIO_COPY from
 *             the source (write-protected where the kernel can), WP by unprotecting,
 *             MINOR (shared memory, odd bounces: the page cache is kept and only the
 *             registered mapping emptied) by writing through the alias and CONTINUE;
 *   copiers   (--threads) fill their slice of the destination the same way, racing
 *             the faults, and write-protect it half way through.
 * After each bounce every counter, tag and mutex is verified and the areas swap. Any
 * lost, duplicated or misplaced page shows as a wrong counter or tag. The operations
 * each thread chooses follow from --seed and the bounce number alone; --seconds only
 * decides how many bounces run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

#define STRESS_MAX_THREADS 64

/* Every page: a pthread mutex at offset 0, then these words; the tag also ends it. */
#define OFF_COUNT 64 /* locked increments so far */
#define OFF_TAG 72   /* which page this is */
#define OFF_TOUCH 80 /* stored to (adding 0) to take a WP fault before locking */

/* A bounce's mode, from its number: the sequence depends on nothing else. */
enum {
	B_MINOR = 1 << 0,  /* shared memory: keep the page cache, resolve MINOR faults */
	B_RANDOM = 1 << 1, /* seeded random page order, else sequential */
	B_RACING = 1 << 2, /* every locker follows the same order */
	B_READ = 1 << 3,   /* handlers block in read(), else poll() */
};

/* What a locker is touching now, so a handler can tell it which fault it took. */
struct slot {
	uint64_t page;
	uint32_t kinds; /* 1 << enum fault_kind */
	pid_t tid;
} __attribute__((aligned(64)));

struct failure {
	uint64_t count;
	int err;
	char what[64];
};

struct stress {
	struct run *run;
	struct result *r;
	struct area areas[2];
	int src; /* index of the source area; the other is the destination */
	int uffd;
	size_t npages, psize;
	unsigned nthreads;
	bool wp, minor, continue_wp, thread_id;
	uint64_t *expect; /* increments made to each page, across bounces */

	/* This bounce. */
	unsigned bounce, mode;
	char *dst, *dst_alias, *srcp;
	uint8_t *claim; /* MINOR: 0 free, 1 being filled, 2 mapped */
	int stop[2];

	struct slot slots[STRESS_MAX_THREADS];
	pthread_mutex_t mu; /* the failures, the counters below and the latency samples */
	struct failure ioctls, reads, mismatch;
	uint64_t faults[NKINDS], outside, unexpected, sampled, rng;
};

/* The three kinds of threads: lockers, copiers and fault handlers. */

static __attribute__((format(printf, 4, 5))) void stress_fail(struct stress *st, struct failure *f, int err,
							      const char *fmt, ...)
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

static uint64_t stress_tag(const struct stress *st, size_t page)
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
static void stress_handler(struct stress *st, unsigned t)
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

static void stress_locker(struct stress *st, unsigned t)
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

static void stress_copier(struct stress *st, unsigned t)
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

/* The bounces that run them. */

#define DEFAULT_SECONDS 3
#define BOUNCE_MS 30000

struct team;

struct member {
	struct team *team;
	unsigned idx;
	pthread_t thread;
};

struct team {
	struct stress *st;
	void (*fn)(struct stress *st, unsigned t);
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned started, done;
	struct member m[STRESS_MAX_THREADS];
};

/* Verdicts across all bounces: the first failure of each kind says where. */
struct verdicts {
	struct failure bounce_ioctls, threads, counts, tags, locks, absent, wp_bits;
	unsigned started, completed;
};

static void *member_main(void *arg)
{
	struct member *m = arg;
	struct team *tm = m->team;

	tm->fn(tm->st, m->idx);
	pthread_mutex_lock(&tm->mu);
	tm->done++;
	pthread_cond_broadcast(&tm->cv);
	pthread_mutex_unlock(&tm->mu);
	return NULL;
}

/* On the heap: if its threads get stuck they still use it, and it is leaked. */
static struct team *team_start(struct stress *st, struct verdicts *v, void (*fn)(struct stress *, unsigned))
{
	struct team *tm = calloc(1, sizeof(*tm));

	if (!tm)
		abort();
	tm->st = st;
	tm->fn = fn;
	pthread_mutex_init(&tm->mu, NULL);
	pthread_cond_init(&tm->cv, NULL);
	for (unsigned i = 0; i < st->nthreads; i++) {
		int rc;

		tm->m[i] = (struct member){ .team = tm, .idx = i };
		rc = pthread_create(&tm->m[i].thread, NULL, member_main, &tm->m[i]);
		if (rc) {
			stress_fail(st, &v->threads, rc, "pthread_create in bounce %u", st->bounce);
			break;
		}
		tm->started++;
	}
	return tm;
}

static bool team_wait(struct team *tm, const struct timespec *until)
{
	bool ok;

	pthread_mutex_lock(&tm->mu);
	while (tm->done < tm->started)
		if (pthread_cond_timedwait(&tm->cv, &tm->mu, until) == ETIMEDOUT)
			break;
	ok = tm->done == tm->started;
	pthread_mutex_unlock(&tm->mu);
	return ok;
}

static void team_join(struct team *tm, bool cancel)
{
	for (unsigned i = 0; i < tm->started; i++) {
		if (cancel)
			pthread_cancel(tm->m[i].thread);
		pthread_join(tm->m[i].thread, NULL);
	}
	free(tm);
}

static unsigned bounce_mode(const struct stress *st, unsigned k)
{
	unsigned mode = 0;

	if ((k & 1) && st->minor)
		mode |= B_MINOR;
	if (k & 2)
		mode |= B_RANDOM;
	if (k & 4)
		mode |= B_RACING;
	if (k & 8)
		mode |= B_READ;
	return mode;
}

/*
 * Empty the destination: only its mapping for a MINOR bounce, the pages themselves else.
 * A private file mapping's file must be emptied too: a page left there (a store through
 * the mapping creates one behind its private copy) is mapped on the next touch, no fault.
 */
static int release(struct stress *st)
{
	const struct area *dst = &st->areas[!st->src];
	bool shared = mem_info(st->run->mem)->shared;
	int advice = (st->mode & B_MINOR) || !shared ? MADV_DONTNEED : MADV_REMOVE;

	if (madvise(dst->base, dst->size, advice))
		return errno;
	if (!shared && dst->fd >= 0 && fallocate(dst->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)dst->size))
		return errno;
	return 0;
}

static bool prepare(struct stress *st, struct verdicts *v)
{
	size_t size = st->npages * st->psize;
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING;
	int rc;

	rc = release(st);
	if (rc) {
		stress_fail(st, &v->bounce_ioctls, rc, "madvise emptying the destination, bounce %u", st->bounce);
		return false;
	}
	memset(st->claim, 0, st->npages);
	rc = fcntl(st->uffd, F_SETFL, st->mode & B_READ ? 0 : O_NONBLOCK) ? errno : 0;
	if (rc) {
		stress_fail(st, &v->bounce_ioctls, rc, "fcntl(F_SETFL) of the uffd, bounce %u", st->bounce);
		return false;
	}
	mode |= st->mode & B_MINOR ? UFFDIO_REGISTER_MODE_MINOR : 0;
	mode |= st->wp ? UFFDIO_REGISTER_MODE_WP : 0;
	rc = uffd_register(st->uffd, st->dst, size, mode, NULL);
	if (rc)
		stress_fail(st, &v->bounce_ioctls, -rc, "UFFDIO_REGISTER mode 0x%llx, bounce %u",
			    (unsigned long long)mode, st->bounce);
	return !rc;
}

static void finish(struct stress *st, struct verdicts *v)
{
	size_t size = st->npages * st->psize;
	int rc;

	/* Unprotecting also wakes anything still waiting on a WP fault. */
	if (st->wp && (rc = uffd_writeprotect(st->uffd, st->dst, size, 0)))
		stress_fail(st, &v->bounce_ioctls, -rc, "unprotecting the destination, bounce %u", st->bounce);
	rc = uffd_unregister(st->uffd, st->dst, size);
	if (rc)
		stress_fail(st, &v->bounce_ioctls, -rc, "UFFDIO_UNREGISTER, bounce %u", st->bounce);
}

static void verify(struct stress *st, struct verdicts *v)
{
	struct pm_counts c;
	int rc = pagemap_count(st->dst, st->npages * st->psize, &c);

	if (rc)
		stress_fail(st, &v->absent, -rc, "reading /proc/self/pagemap, bounce %u", st->bounce);
	else if (c.present != c.entries)
		stress_fail(st, &v->absent, 0, "%zu of %zu 4K entries absent after bounce %u", c.entries - c.present,
			    c.entries, st->bounce);
	if (!rc && st->wp && c.wp)
		stress_fail(st, &v->wp_bits, 0, "%zu 4K entries with bit 57 after bounce %u", c.wp, st->bounce);
	for (size_t p = 0; p < st->npages; p++) {
		char *page = st->dst + p * st->psize;
		uint64_t count = *(uint64_t *)(page + OFF_COUNT), tag = stress_tag(st, p);

		if (count != st->expect[p])
			stress_fail(st, &v->counts, 0, "page %zu counter %llu, expected %llu, bounce %u", p,
				    (unsigned long long)count, (unsigned long long)st->expect[p], st->bounce);
		if (*(uint64_t *)(page + OFF_TAG) != tag || *(uint64_t *)(page + st->psize - 8) != tag)
			stress_fail(st, &v->tags, 0, "page %zu carries another page's tag, bounce %u", p, st->bounce);
		if (pthread_mutex_trylock((pthread_mutex_t *)page))
			stress_fail(st, &v->locks, 0, "page %zu mutex held after bounce %u", p, st->bounce);
		else
			pthread_mutex_unlock((pthread_mutex_t *)page);
	}
}

/* One bounce; false if its threads got stuck (the run must end) or it could not start. */
static bool bounce(struct stress *st, struct verdicts *v)
{
	struct area *src = &st->areas[st->src], *dst = &st->areas[!st->src];
	struct team *handlers, *lockers, *copiers;
	struct timespec until;
	bool ok;
	char c;

	st->dst = dst->base;
	st->dst_alias = dst->alias;
	st->srcp = src->base;
	set_phase(st->r, "bounce %u (mode 0x%x)", st->bounce, st->mode);
	if (!prepare(st, v))
		return false;
	v->started++;
	handlers = team_start(st, v, stress_handler);
	lockers = team_start(st, v, stress_locker);
	copiers = team_start(st, v, stress_copier);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += BOUNCE_MS / 1000;
	ok = team_wait(copiers, &until) && team_wait(lockers, &until);
	if (!ok) {
		st->r->stuck = true;
		return false;
	}
	team_join(copiers, false);
	team_join(lockers, false);
	if (st->mode & B_READ) {
		team_join(handlers, true);
	} else {
		if (write(st->stop[1], "x", 1) != 1)
			abort();
		team_join(handlers, false);
		if (read(st->stop[0], &c, 1) != 1)
			abort();
	}
	finish(st, v);
	verify(st, v);
	v->completed++;
	st->src = !st->src;
	return true;
}

/* Small enough for a few bounces a second under TCG (a 2 MiB copy is slow there). */
static size_t default_pages(enum mem_type t)
{
	return mem_info(t)->hugetlb ? 8 : 512;
}

/* Area 0 is the first source: every page gets its mutex, a zero count and its tag. */
static void init_pages(struct stress *st)
{
	for (size_t p = 0; p < st->npages; p++) {
		char *page = st->areas[0].base + p * st->psize;

		pthread_mutex_init((pthread_mutex_t *)page, NULL);
		*(uint64_t *)(page + OFF_COUNT) = 0;
		*(uint64_t *)(page + OFF_TAG) = stress_tag(st, p);
		*(uint64_t *)(page + st->psize - 8) = stress_tag(st, p);
	}
}

static bool setup(struct stress *st)
{
	struct run *run = st->run;
	const struct mem_info *mi = mem_info(run->mem);
	/* Private hugetlb pages dropped by MADV_DONTNEED come back without a reservation. */
	size_t extra = mi->hugetlb && !mi->shared ? st->npages : 0;
	uint64_t features = run->features & UFFD_FEATURE_THREAD_ID;
	char why[256];
	int rc;

	set_phase(st->r, "allocate two %s areas", mi->name);
	for (int i = 0; i < 2; i++) {
		rc = area_alloc(&st->areas[i], run->mem, st->npages, i ? extra : 0, 0, why, sizeof(why));
		if (rc > 0)
			skip(st->r, "%s", why);
		if (rc < 0)
			check_value(st->r, "setup-memory", 0, 1, "%s", why);
		if (rc)
			return false;
	}
	st->r->page_size = st->psize = st->areas[0].psize;
	st->r->npages = st->npages;
	init_pages(st);
	if (st->wp && mi->anon)
		features |= run->features & UFFD_FEATURE_WP_UNPOPULATED;
	rc = uffd_new(features, NULL, st->r->uffd_source, sizeof(st->r->uffd_source));
	if (!check_errno(st->r, "setup-uffd", rc < 0 ? -rc : 0, 0, "userfaultfd + UFFDIO_API"))
		return false;
	st->uffd = rc;
	st->expect = calloc(st->npages, sizeof(*st->expect));
	st->claim = calloc(st->npages, 1);
	if (!st->expect || !st->claim)
		abort();
	return check_errno(st->r, "setup-stop-pipe", pipe2(st->stop, O_CLOEXEC) ? errno : 0, 0, "pipe2");
}

static void check_failure(struct result *r, const char *name, const struct failure *f, const char *what)
{
	check_value(r, name, (long long)f->count, 0, "%s%s%s%s%s", what, f->count ? "; the first: " : "", f->what,
		    f->err ? ": " : "", f->err ? errno_name(f->err) : "");
}

static void report(struct stress *st, struct verdicts *v)
{
	struct result *r = st->r;

	check_value(r, "bounces-complete", v->completed, v->started, "bounces whose threads finished within %u ms",
		    BOUNCE_MS);
	check_failure(r, "bounce-ioctls-succeed", &v->bounce_ioctls, "failed madvise/fcntl/REGISTER/UNREGISTER calls");
	check_failure(r, "threads-start", &v->threads, "threads that could not be created");
	check_failure(r, "resolving-ioctls-succeed", &st->ioctls, "failed COPY/CONTINUE/WRITEPROTECT/WAKE calls");
	check_failure(r, "uffd-reads-succeed", &st->reads, "failed reads of uffd messages");
	check_value(r, "fault-addresses-in-area", (long long)st->outside, 0, "fault messages outside the destination");
	check_value(r, "no-unexpected-messages", (long long)st->unexpected, 0,
		    "events, and MINOR (MISSING) faults in MISSING (MINOR) bounces");
	check_failure(r, "counters-match-when-locked", &st->mismatch, "counters a locker found wrong");
	check_failure(r, "counters-match-after-bounce", &v->counts, "counters wrong after a bounce");
	check_failure(r, "pages-in-place", &v->tags, "pages whose tag named another page");
	check_failure(r, "mutexes-unlocked", &v->locks, "page mutexes left locked");
	check_failure(r, "all-pages-transferred", &v->absent, "bounces leaving destination pages absent");
	if (st->wp)
		check_failure(r, "wp-bits-cleared", &v->wp_bits, "bounces leaving bit 57 set after unprotecting");
}

static void record_rates(struct stress *st, double seconds)
{
	struct rates *rt = &st->r->rates;

	rt->seconds = seconds;
	memcpy(rt->faults, st->faults, sizeof(rt->faults));
	st->r->faults_missing = st->faults[KIND_MISSING];
	st->r->faults_wp = st->faults[KIND_WP];
	st->r->faults_minor = st->faults[KIND_MINOR];
	note(st->r, "%u bounces in %.2f s with %u threads each of lockers, copiers, handlers%s%s%s", rt->bounces,
	     seconds, st->nthreads, st->wp ? "; write-protecting" : "", st->minor ? "; MINOR bounces" : "",
	     st->thread_id ? "" : "; no latencies by kind (kernel lacks UFFD_FEATURE_THREAD_ID)");
}

void stress(struct run *run)
{
	const struct mem_info *mi = mem_info(run->mem);
	uint64_t minor = mi->hugetlb ? UFFD_FEATURE_MINOR_HUGETLBFS : UFFD_FEATURE_MINOR_SHMEM;
	unsigned seconds = run->r->seconds ? run->r->seconds : DEFAULT_SECONDS;
	struct stress *st;
	struct verdicts v = { 0 };
	unsigned min_bounces;
	uint64_t t0;

	if (!need_features(run, missing_features(run->mem)))
		return;
	/* On the heap: stuck threads would still use it. */
	st = calloc(1, sizeof(*st));
	if (!st)
		abort();
	st->run = run;
	st->r = run->r;
	st->uffd = st->stop[0] = st->stop[1] = -1;
	st->areas[0].fd = st->areas[1].fd = -1;
	st->npages = run->r->pages ? run->r->pages : default_pages(run->mem);
	st->nthreads = run->threads < STRESS_MAX_THREADS ? run->threads : STRESS_MAX_THREADS;
	st->wp = (run->features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) &&
		 (mi->anon || (run->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
	st->minor = mi->shared && (run->features & minor);
	/* CONTINUE_MODE_WP has no feature bit; WP_UNPOPULATED came with it (6.4). */
	st->continue_wp = st->minor && st->wp && (run->features & UFFD_FEATURE_WP_UNPOPULATED);
	st->thread_id = run->features & UFFD_FEATURE_THREAD_ID;
	st->rng = mix64(run->seed);
	run->r->threads = st->nthreads;
	pthread_mutex_init(&st->mu, NULL);
	if (!setup(st))
		goto out;

	/* At least one MINOR bounce where there can be one, however slow the machine. */
	min_bounces = st->minor ? 2 : 1;
	t0 = now_ns();
	for (st->bounce = 0;; st->bounce++) {
		st->mode = bounce_mode(st, st->bounce);
		if (!bounce(st, &v))
			break;
		if (st->bounce + 1 >= min_bounces && now_ns() - t0 >= seconds * 1000000000ULL)
			break;
	}
	st->r->rates.bounces = v.completed;
	record_rates(st, (double)(now_ns() - t0) / 1e9);
	report(st, &v);
	if (st->r->stuck)
		return;
out:
	for (int i = 0; i < 2; i++)
		if (st->stop[i] >= 0)
			close(st->stop[i]);
	if (st->uffd >= 0)
		close(st->uffd);
	area_free(&st->areas[0]);
	area_free(&st->areas[1]);
	free(st->expect);
	free(st->claim);
	free(st);
}
