/*
 * stress: uffd-stress-like bounces (see stress.c). Shared between the orchestration
 * (stress.c) and the three kinds of threads (stress_threads.c).
 */
#ifndef AGENT_STRESS_H
#define AGENT_STRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mem.h"
#include "result.h"
#include "workloads.h"

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

void stress_locker(struct stress *st, unsigned t);
void stress_copier(struct stress *st, unsigned t);
void stress_handler(struct stress *st, unsigned t);
void stress_fail(struct stress *st, struct failure *f, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
uint64_t stress_tag(const struct stress *st, size_t page);

#endif
