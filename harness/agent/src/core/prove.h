/*
 * `uffd-agent prove`: every check a workload records can fail. One run as asked, then one
 * run per check it recorded with that check's expectation perturbed (--inject-fail); a
 * check is proven when its perturbed run fails with exactly that check failed, marked
 * perturbed. All in one exec, so a guest pays one SSH round trip per workload x memory
 * type rather than one per check.
 *
 * The runs go through run_one() like `suite`'s: each is a fresh runner process forked
 * from this one, so workloads need not be re-entrant (their globals, threads, mappings
 * and uffds die with their runner), and a hung or crashed perturbed run is a reason, not
 * the end of the proof.
 */
#ifndef AGENT_PROVE_H
#define AGENT_PROVE_H

#include "json.h"
#include "result.h"
#include "run.h"
#include "workloads.h"

struct prove_opts {
	/* Comma-separated check names. known: may fail unperturbed (a known kernel bug); they
	 * are reported unproven and tolerated in the other runs. skip: proven elsewhere (on
	 * another memory type): reported, not rerun. Either may be NULL. */
	const char *known;
	const char *skip;
};

/* Writes one JSON object to w; the status is the plain run's, failed also when a check
 * that is neither known nor skipped was not proven. */
enum status prove(const struct workload *wl, enum mem_type m, const struct opts *o, const struct prove_opts *p,
		  struct jw *w);

#endif
