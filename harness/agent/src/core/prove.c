#define _GNU_SOURCE
#include "prove.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const status_names[] = { "pass", "fail", "skip" };

/* Is name one of the comma-separated names in list? */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *s = list; s && *s;) {
		const char *end = strchrnul(s, ',');

		if ((size_t)(end - s) == n && !strncmp(s, name, n))
			return true;
		s = *end ? end + 1 : end;
	}
	return false;
}

static const struct check *find_check(const struct result *r, const char *name)
{
	for (unsigned i = 0; i < r->nchecks; i++)
		if (!strcmp(r->checks[i].name, name))
			return &r->checks[i];
	return NULL;
}

static bool seen_before(const struct result *r, unsigned i)
{
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(r->checks[j].name, r->checks[i].name))
			return true;
	return false;
}

/* Failed checks of r other than the known ones and `except`, comma-separated into buf;
 * their count. */
static unsigned unexpected_failures(const struct result *r, const char *known, const char *except, char *buf,
				    size_t n)
{
	unsigned count = 0;
	size_t len = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < r->nchecks; i++) {
		const struct check *c = &r->checks[i];

		if (c->ok || listed(known, c->name) || (except && !strcmp(c->name, except)) || seen_before(r, i))
			continue;
		count++;
		if (len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "", c->name);
	}
	return count;
}

/* Is name proven by its perturbed run pr? If not, why, into why. */
static bool proven_by(const struct result *pr, const char *name, const char *known, char *why, size_t n)
{
	char others[256], reason[512];
	const struct check *c = find_check(pr, name);
	enum status st = result_status(pr, reason, sizeof(reason));
	unsigned nbad = unexpected_failures(pr, known, name, others, sizeof(others));

	if (pr->failure[0]) {
		snprintf(why, n, "the perturbed run ended abnormally: %.400s", pr->failure);
		return false;
	}
	if (!c || !pr->inject_hits) {
		snprintf(why, n, "the perturbed run did not record it (it %s%s%.300s)",
			 st == ST_PASS ? "passed" : st == ST_FAIL ? "failed" : "skipped", reason[0] ? ": " : "", reason);
		return false;
	}
	if (c->ok) {
		snprintf(why, n, "still ok with its expectation perturbed: %.400s", c->detail);
		return false;
	}
	if (!strstr(c->detail, "perturbed")) {
		snprintf(why, n, "failed without the perturbed marker: %.400s", c->detail);
		return false;
	}
	if (nbad) {
		snprintf(why, n, "other checks failed too: %.400s", others);
		return false;
	}
	if (st != ST_FAIL) {
		snprintf(why, n, "the perturbed run's status is %s", status_names[st]);
		return false;
	}
	snprintf(why, n, "%.400s", c->detail);
	return true;
}

static struct result *alloc_result(void)
{
	struct result *r = malloc(sizeof(*r));

	if (!r) {
		perror("malloc");
		exit(1);
	}
	return r;
}

enum status prove(const struct workload *wl, enum mem_type m, const struct opts *o, const struct prove_opts *p,
		  struct jw *w)
{
	struct result *plain = alloc_result(), *pr = alloc_result();
	struct opts po = *o;
	char reason[512], bad[256] = "";
	unsigned runs = 1, nproven = 0, nunproven = 0, nknown = 0, nskipped = 0;
	uint64_t t0 = now_ns();
	enum status st;
	bool judged;

	po.inject = NULL;
	run_one(wl, m, &po, plain);
	st = result_status(plain, reason, sizeof(reason));
	/* Proofs only make sense after a run that passed, or failed only where it is known
	 * to: the perturbed runs are judged against it. */
	judged = !plain->failure[0] && plain->nchecks &&
		 (st == ST_PASS || (st == ST_FAIL && !unexpected_failures(plain, p->known, NULL, bad, sizeof(bad))));
	fprintf(stderr, "%s %s: plain run %s (%.2f s)%s%s\n", wl->name, mem_info(m)->name, status_names[st],
		plain->duration_s, reason[0] ? ": " : "", reason);

	jw_obj(w);
	jw_key(w, "workload");
	jw_str(w, wl->name);
	jw_key(w, "mem");
	jw_str(w, mem_info(m)->name);
	jw_key(w, "plain");
	result_json(plain, w);
	jw_key(w, "checks");
	jw_arr(w);
	for (unsigned i = 0; judged && i < plain->nchecks; i++) {
		const char *name = plain->checks[i].name;
		char why[512];
		bool ok = false;

		if (seen_before(plain, i))
			continue;
		jw_obj(w);
		jw_key(w, "name");
		jw_str(w, name);
		jw_key(w, "proven");
		if (listed(p->known, name) && !plain->checks[i].ok) {
			/* Already failing: a perturbed run cannot show that this check can fail. */
			jw_null(w);
			snprintf(why, sizeof(why), "fails unperturbed (--known-failing): %.400s", plain->checks[i].detail);
			nknown++;
		} else if (listed(p->skip, name)) {
			jw_null(w);
			snprintf(why, sizeof(why), "proven elsewhere (--skip-proven)");
			nskipped++;
		} else {
			po.inject = name;
			run_one(wl, m, &po, pr);
			runs++;
			ok = proven_by(pr, name, p->known, why, sizeof(why));
			jw_bool(w, ok);
			ok ? nproven++ : nunproven++;
			fprintf(stderr, "  %s: %s (%.2f s)%s%s\n", name, ok ? "proven" : "NOT PROVEN", pr->duration_s,
				ok ? "" : ": ", ok ? "" : why);
		}
		jw_key(w, "reason");
		jw_str(w, why);
		jw_end_obj(w);
	}
	jw_end_arr(w);
	if (judged)
		st = nunproven ? ST_FAIL : ST_PASS;
	if (judged && nunproven)
		snprintf(reason, sizeof(reason), "%u of %u checks not proven", nunproven,
			 nproven + nunproven + nknown + nskipped);
	else if (judged)
		snprintf(reason, sizeof(reason), "%u proven, %u known failing, %u proven elsewhere", nproven, nknown,
			 nskipped);
	else if (st == ST_FAIL && !plain->failure[0] && plain->nchecks && bad[0])
		snprintf(reason, sizeof(reason), "the plain run failed checks not --known-failing: %.400s", bad);
	/* else the plain run's own reason: a skip, a timeout, a crash, no checks. */
	jw_key(w, "status");
	jw_str(w, status_names[st]);
	jw_key(w, "reason");
	jw_str(w, reason);
	jw_key(w, "counts");
	jw_obj(w);
	jw_key(w, "proven");
	jw_uint(w, nproven);
	jw_key(w, "not_proven");
	jw_uint(w, nunproven);
	jw_key(w, "known_failing");
	jw_uint(w, nknown);
	jw_key(w, "skipped");
	jw_uint(w, nskipped);
	jw_end_obj(w);
	jw_key(w, "runs");
	jw_uint(w, runs);
	jw_key(w, "duration_s");
	jw_double(w, (double)(now_ns() - t0) / 1e9);
	jw_end_obj(w);
	free(plain);
	free(pr);
	return st;
}
