/*
 * Threads that touch pages the way a workload's "application" would. The first store
 * into each page is the one that may fault; its round trip (from the store to its
 * completion, in the faulting thread) is recorded as a latency sample.
 */
#ifndef AGENT_ACCESS_H
#define AGENT_ACCESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mem.h"
#include "result.h"

enum { PAGES_ALL, PAGES_EVEN };

/* Page indexes of one kind, shuffled by seed (0: in order). Caller frees. */
size_t *page_list(size_t npages, int which, uint64_t seed, size_t *n);
/* Address of the first store write_pages() makes into a page: a different 4 KiB
 * subpage per page, so a fault reported at the wrong subpage is caught. */
char *first_touch(const struct area *a, const char *view, size_t page);

/* Store generation gen's stamps into one page, first at first_touch(). */
void write_page(struct result *r, const struct area *a, char *view, size_t page, uint64_t seed, unsigned gen,
		bool timed);
/* Load every stamp of one page, first at first_touch(). */
void read_page(struct result *r, const struct area *a, const char *view, size_t page, bool timed);

/*
 * Store generation gen's stamps into every subpage of the listed pages through view,
 * spread over threads. timed: record the first store of each page as a latency sample.
 * Returns false if they did not all finish within timeout_ms; the blocked threads are
 * then left behind and r->stuck is set (the run must end without cleanup).
 */
bool write_pages(struct result *r, const struct area *a, char *view, const size_t *pages, size_t n,
		 unsigned threads, uint64_t seed, unsigned gen, bool timed, unsigned timeout_ms);
/* Load every stamp of the listed pages, same contract. */
bool read_pages(struct result *r, const struct area *a, const char *view, const size_t *pages, size_t n,
		unsigned threads, bool timed, unsigned timeout_ms);

/*
 * One thread touching one page (storing generation gen, or loading and counting the
 * stamps that differ from it), so a workload can watch it block in a fault and be woken.
 * On the heap: if it never finishes, it outlives the workload.
 */
struct solo {
	struct result *r;
	const struct area *a;
	char *view;
	size_t page;
	uint64_t seed;
	unsigned gen;
	bool write;
	pthread_t thread;
	pid_t tid;
	int done;
	size_t bad; /* reads: subpages whose stamp was not generation gen */
};

/* Started, or NULL with the pthread_create error in *err. */
struct solo *solo_start(struct result *r, const struct area *a, char *view, size_t page, uint64_t seed,
			unsigned gen, bool write, int *err);
/* Asleep in a fault within ms. */
bool solo_blocked(struct solo *s, unsigned ms);
/* Finished within ms. */
bool solo_finished(struct solo *s, unsigned ms);
/* Join a finished thread and free it. */
void solo_free(struct solo *s);

#endif
