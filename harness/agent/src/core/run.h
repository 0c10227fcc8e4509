/*
 * The supervisor: runs one workload x memory type in a child process (the "runner")
 * under a watchdog. Why a child rather than alarm() in-process: a hung or crashed run
 * must still produce a result, and formatting JSON is not async-signal-safe. The
 * runner's result lives in shared memory, so after a timeout the supervisor still knows
 * the phase and the checks so far; it kills the runner's whole process group (including
 * any children a workload forked) and reports "timed out in <phase>".
 */
#ifndef AGENT_RUN_H
#define AGENT_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"
#include "workloads.h"

struct opts {
	size_t pages; /* 0: the memory type's default */
	unsigned threads;
	uint64_t seed;
	unsigned timeout_s; /* beyond seconds */
	unsigned seconds;   /* how long a timed workload runs; 0: its default */
	const char *inject;
	const char *sabotage;
};

void run_one(const struct workload *w, enum mem_type m, const struct opts *o, struct result *out);

#endif
