#define _GNU_SOURCE
#include "access.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

size_t *page_list(size_t npages, int which, uint64_t seed, size_t *n)
{
	size_t *v = malloc((npages ? npages : 1) * sizeof(*v));

	if (!v)
		abort();
	*n = 0;
	for (size_t i = 0; i < npages; i++)
		if (which == PAGES_ALL || i % 2 == 0)
			v[(*n)++] = i;
	if (seed)
		shuffle(v, *n, seed);
	return v;
}

char *first_touch(const struct area *a, const char *view, size_t page)
{
	size_t spp = subpages_per_page(a);

	return (char *)view + page * a->psize + (page % spp) * BASE_PAGE;
}

struct pool {
	struct result *r;
	const struct area *a;
	char *view;
	const size_t *pages;
	size_t n;
	unsigned nthreads;
	uint64_t seed;
	unsigned gen;
	bool write, timed;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned done;
};

struct worker {
	struct pool *p;
	unsigned idx;
	pthread_t thread;
};

void write_page(struct result *r, const struct area *a, char *view, size_t page, uint64_t seed, unsigned gen,
		bool timed)
{
	size_t spp = subpages_per_page(a), first = page * spp + page % spp;
	uint64_t t0 = now_ns();

	*stamp_at(view, first) = stamp(seed, gen, first);
	if (timed)
		lat_add(r, now_ns() - t0);
	for (size_t s = page * spp; s < (page + 1) * spp; s++)
		if (s != first)
			*stamp_at(view, s) = stamp(seed, gen, s);
}

void read_page(struct result *r, const struct area *a, const char *view, size_t page, bool timed)
{
	size_t spp = subpages_per_page(a), first = page * spp + page % spp;
	uint64_t t0 = now_ns();

	(void)*stamp_at(view, first);
	if (timed)
		lat_add(r, now_ns() - t0);
	for (size_t s = page * spp; s < (page + 1) * spp; s++)
		if (s != first)
			(void)*stamp_at(view, s);
}

static void touch_page(struct pool *p, size_t page)
{
	if (p->write)
		write_page(p->r, p->a, p->view, page, p->seed, p->gen, p->timed);
	else
		read_page(p->r, p->a, p->view, page, p->timed);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->p;

	for (size_t i = w->idx; i < p->n; i += p->nthreads)
		touch_page(p, p->pages[i]);
	pthread_mutex_lock(&p->mu);
	p->done++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static bool run_pool(struct pool *p, unsigned timeout_ms)
{
	struct worker *w;
	struct timespec until;
	unsigned started = 0;
	bool ok;

	if (p->nthreads > p->n)
		p->nthreads = p->n ? (unsigned)p->n : 1;
	if (!p->nthreads)
		p->nthreads = 1;
	/* Leaked on timeout, on purpose: stuck threads may still touch the pool. */
	w = calloc(p->nthreads, sizeof(*w));
	if (!w)
		abort();
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (unsigned i = 0; i < p->nthreads; i++) {
		w[i] = (struct worker){ .p = p, .idx = i };
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]))
			break;
		started++;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->mu);
	while (p->done < started)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT)
			break;
	ok = p->done == started && started == p->nthreads;
	pthread_mutex_unlock(&p->mu);
	if (p->done < started) {
		p->r->stuck = true;
		return false;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	free(w);
	return ok;
}

bool write_pages(struct result *r, const struct area *a, char *view, const size_t *pages, size_t n,
		 unsigned threads, uint64_t seed, unsigned gen, bool timed, unsigned timeout_ms)
{
	/* On the heap: after a timeout the stuck threads still use it, so it is leaked. */
	struct pool *p = calloc(1, sizeof(*p));
	bool ok;

	if (!p)
		abort();
	*p = (struct pool){ .r = r, .a = a, .view = view, .pages = pages, .n = n, .nthreads = threads,
			    .seed = seed, .gen = gen, .write = true, .timed = timed };
	ok = run_pool(p, timeout_ms);
	if (!r->stuck)
		free(p);
	return ok;
}

bool read_pages(struct result *r, const struct area *a, const char *view, const size_t *pages, size_t n,
		unsigned threads, bool timed, unsigned timeout_ms)
{
	struct pool *p = calloc(1, sizeof(*p));
	bool ok;

	if (!p)
		abort();
	*p = (struct pool){ .r = r, .a = a, .view = (char *)view, .pages = pages, .n = n, .nthreads = threads,
			    .timed = timed };
	ok = run_pool(p, timeout_ms);
	if (!r->stuck)
		free(p);
	return ok;
}

static void *solo_main(void *arg)
{
	struct solo *s = arg;

	__atomic_store_n(&s->tid, agent_gettid(), __ATOMIC_RELEASE);
	if (s->write) {
		write_page(s->r, s->a, s->view, s->page, s->seed, s->gen, false);
	} else {
		read_page(s->r, s->a, s->view, s->page, false);
		s->bad = area_mismatches(s->a, s->view, s->page, s->page + 1, s->seed, NULL, s->gen, NULL);
	}
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct solo *solo_start(struct result *r, const struct area *a, char *view, size_t page, uint64_t seed,
			unsigned gen, bool write, int *err)
{
	struct solo *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	*s = (struct solo){ .r = r, .a = a, .view = view, .page = page, .seed = seed, .gen = gen, .write = write };
	*err = pthread_create(&s->thread, NULL, solo_main, s);
	if (*err) {
		free(s);
		return NULL;
	}
	return s;
}

/* Blocked in handle_userfault(): interruptible ('S') for user faults, 'D' if killable. */
bool solo_blocked(struct solo *s, unsigned ms)
{
	uint64_t until = now_ns() + ms * 1000000ULL;
	pid_t tid;

	while (!(tid = __atomic_load_n(&s->tid, __ATOMIC_ACQUIRE)) && now_ns() < until)
		sleep_ms(1);
	for (; tid && now_ns() < until; sleep_ms(1)) {
		char st = thread_state(tid);

		if (st == 'S' || st == 'D')
			return true;
	}
	return false;
}

bool solo_finished(struct solo *s, unsigned ms)
{
	for (uint64_t until = now_ns() + ms * 1000000ULL; now_ns() < until; sleep_ms(1))
		if (__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			return true;
	return __atomic_load_n(&s->done, __ATOMIC_ACQUIRE);
}

void solo_free(struct solo *s)
{
	pthread_join(s->thread, NULL);
	free(s);
}
