/*
 * One workload run's outcome. It lives in a MAP_SHARED page set up by the supervisor
 * (run.c) before it forks the runner, so whatever the runner recorded survives a
 * timeout or a crash, and the supervisor can say which phase it was in.
 */
#ifndef AGENT_RESULT_H
#define AGENT_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define MAX_CHECKS 160
#define MAX_LATENCIES 16384
#define KIND_LATENCIES 4096

enum fault_kind { KIND_MISSING, KIND_WP, KIND_MINOR, NKINDS };

/* A uniform sample (reservoir) of latencies out of `seen`. */
struct lat_sample {
	uint64_t seen;
	unsigned n;
	uint64_t ns[KIND_LATENCIES];
};

/* What a timed workload (stress) measured, by fault kind. */
struct rates {
	double seconds; /* the time the counts below were taken over; 0: not measured */
	unsigned bounces;
	uint64_t faults[NKINDS];
	struct lat_sample lat[NKINDS];
};

enum status { ST_PASS, ST_FAIL, ST_SKIP };

struct check {
	char name[64];
	char detail[256];
	bool ok;
};

struct result {
	/* Parameters, set by the supervisor. */
	char workload[32];
	char mem[24];
	size_t pages;	  /* 0: the memory type's default */
	unsigned threads;
	uint64_t seed;
	unsigned timeout_s;
	char inject[64];  /* --inject-fail: perturb this check's expectation */
	char sabotage[32]; /* --sabotage: perturb the workload's actions */
	unsigned seconds;  /* --seconds: how long a timed workload runs (0: its default) */

	/* Written by the runner. */
	char phase[64];
	char prefix[24]; /* prepended to check names: a workload's variants stay distinct */
	bool skipped;
	char skip_reason[256];
	char note[256];
	bool stuck; /* threads are blocked in faults: skip cleanup, just exit */
	unsigned nchecks, checks_dropped, inject_hits;
	struct check checks[MAX_CHECKS];
	size_t page_size, npages;
	char uffd_source[48];
	char probe_error[24]; /* errno name when the userfaultfd probe failed */
	uint64_t faults_wp, faults_missing, faults_minor, events_fork;
	unsigned nlat; /* atomically incremented by faulting threads */
	uint64_t lat_ns[MAX_LATENCIES];
	struct rates rates;

	/* Written by the supervisor. */
	char failure[320]; /* timeout or crash, overrides everything */
	double duration_s;
};

void set_phase(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void skip(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Notes accumulate, separated by "; ". */
void note(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Checks compare a measured value with an expectation. With --inject-fail NAME the
 * expectation of check NAME is perturbed (0<->1, else +1; another errno), so a test can
 * prove the check really compares something measured: it must then fail.
 */
bool check_value(struct result *r, const char *name, long long got, long long want, const char *fmt,
		 ...) __attribute__((format(printf, 5, 6)));
/* got/want are errno values, 0 meaning success. */
bool check_errno(struct result *r, const char *name, int got, int want, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Name the following checks "<prefix><name>" ("" to stop). */
void check_prefix(struct result *r, const char *prefix);
void lat_add(struct result *r, uint64_t ns);
/* Reservoir sampling; not thread-safe: callers serialise. */
void sample_add(struct lat_sample *s, uint64_t ns, uint64_t *rng);
enum status result_status(const struct result *r, char *reason, size_t n);
void result_json(const struct result *r, struct jw *w);
bool sabotaged(const struct result *r, const char *what);

#endif
