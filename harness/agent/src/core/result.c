#define _GNU_SOURCE
#include "result.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void set_phase(struct result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->phase, sizeof(r->phase), fmt, ap);
	va_end(ap);
}

void skip(struct result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->skip_reason, sizeof(r->skip_reason), fmt, ap);
	va_end(ap);
	r->skipped = true;
}

void note(struct result *r, const char *fmt, ...)
{
	size_t len = strlen(r->note);
	va_list ap;

	if (len && len + 2 < sizeof(r->note)) {
		memcpy(r->note + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(r->note + len, sizeof(r->note) - len, fmt, ap);
	va_end(ap);
}

void check_prefix(struct result *r, const char *prefix)
{
	snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
}

static bool injected(struct result *r, const char *name)
{
	size_t n = strlen(r->prefix);

	if (!r->inject[0] || strncmp(r->inject, r->prefix, n) || strcmp(r->inject + n, name))
		return false;
	r->inject_hits++;
	return true;
}

static bool record(struct result *r, const char *name, bool ok, const char *detail, bool perturbed)
{
	struct check *c;

	if (r->nchecks >= MAX_CHECKS) {
		r->checks_dropped++;
		return ok;
	}
	c = &r->checks[r->nchecks++];
	snprintf(c->name, sizeof(c->name), "%s%.40s", r->prefix, name);
	/* Keep the marker even when the detail is long: a reader must see it. */
	if (perturbed)
		snprintf(c->detail, sizeof(c->detail), "[expectation perturbed by --inject-fail] %.200s", detail);
	else
		snprintf(c->detail, sizeof(c->detail), "%s", detail);
	c->ok = ok;
	return ok;
}

bool check_value(struct result *r, const char *name, long long got, long long want, const char *fmt, ...)
{
	char what[160], detail[256];
	bool perturbed = injected(r, name);
	va_list ap;

	if (perturbed)
		want = want == 0 ? 1 : want == 1 ? 0 : want + 1;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(detail, sizeof(detail), "%s: got %lld, want %lld", what, got, want);
	return record(r, name, got == want, detail, perturbed);
}

bool check_errno(struct result *r, const char *name, int got, int want, const char *fmt, ...)
{
	char what[160], detail[256], gotname[24];
	bool perturbed = injected(r, name);
	va_list ap;

	if (perturbed)
		want = want == EINVAL ? ENOENT : EINVAL;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(gotname, sizeof(gotname), "%s", errno_name(got));
	snprintf(detail, sizeof(detail), "%s: got %s, want %s", what, gotname, errno_name(want));
	return record(r, name, got == want, detail, perturbed);
}

void sample_add(struct lat_sample *s, uint64_t ns, uint64_t *rng)
{
	uint64_t i = s->seen++;

	if (i < KIND_LATENCIES) {
		s->ns[s->n++] = ns;
		return;
	}
	*rng = mix64(*rng);
	if (*rng % (i + 1) < KIND_LATENCIES)
		s->ns[*rng % (i + 1)] = ns;
}

void lat_add(struct result *r, uint64_t ns)
{
	unsigned i = __atomic_fetch_add(&r->nlat, 1, __ATOMIC_RELAXED);

	if (i < MAX_LATENCIES)
		r->lat_ns[i] = ns;
}

bool sabotaged(const struct result *r, const char *what)
{
	return !strcmp(r->sabotage, what);
}

enum status result_status(const struct result *r, char *reason, size_t n)
{
	unsigned nfail = 0;
	const struct check *first = NULL;

	for (unsigned i = 0; i < r->nchecks; i++) {
		if (!r->checks[i].ok && !nfail++)
			first = &r->checks[i];
	}
	if (r->failure[0]) {
		snprintf(reason, n, "%s", r->failure);
		return ST_FAIL;
	}
	if (first) {
		snprintf(reason, n, "%s: %s%s", first->name, first->detail,
			 nfail > 1 ? " (and more failed checks)" : "");
		return ST_FAIL;
	}
	if (r->checks_dropped) {
		/* A check that could not be recorded may be one that failed. */
		snprintf(reason, n, "%u checks not recorded: more than the %d a result holds", r->checks_dropped,
			 MAX_CHECKS);
		return ST_FAIL;
	}
	if (r->inject[0] && !r->inject_hits) {
		snprintf(reason, n, "--inject-fail %s: no check of that name ran", r->inject);
		return ST_FAIL;
	}
	if (r->skipped) {
		snprintf(reason, n, "%s", r->skip_reason);
		return ST_SKIP;
	}
	if (!r->nchecks) {
		snprintf(reason, n, "no checks ran");
		return ST_FAIL;
	}
	snprintf(reason, n, "%s", r->note);
	return ST_PASS;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* {samples, p50, p99, max} in microseconds over the n values kept of `samples` seen. */
static void percentiles_json(struct jw *w, uint64_t samples, const uint64_t *ns, unsigned n)
{
	uint64_t *v;

	if (!n) {
		jw_null(w);
		return;
	}
	v = malloc(n * sizeof(*v));
	if (!v)
		abort();
	memcpy(v, ns, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_u64);
	jw_obj(w);
	jw_key(w, "samples");
	jw_uint(w, samples);
	jw_key(w, "p50");
	jw_double(w, (double)v[(n - 1) / 2] / 1000.0);
	jw_key(w, "p99");
	jw_double(w, (double)v[(size_t)((n - 1) * 99ULL / 100)] / 1000.0);
	jw_key(w, "max");
	jw_double(w, (double)v[n - 1] / 1000.0);
	jw_end_obj(w);
	free(v);
}

static const char *const kind_names[NKINDS] = { [KIND_MISSING] = "missing", [KIND_WP] = "wp", [KIND_MINOR] = "minor" };

static void rates_json(const struct rates *rt, struct jw *w)
{
	jw_key(w, "rates");
	jw_obj(w);
	jw_key(w, "seconds");
	jw_double(w, rt->seconds);
	jw_key(w, "bounces");
	jw_uint(w, rt->bounces);
	jw_key(w, "faults_per_s");
	jw_obj(w);
	for (int k = 0; k < NKINDS; k++) {
		jw_key(w, kind_names[k]);
		jw_double(w, (double)rt->faults[k] / rt->seconds);
	}
	jw_end_obj(w);
	jw_key(w, "latency_us");
	jw_obj(w);
	for (int k = 0; k < NKINDS; k++) {
		jw_key(w, kind_names[k]);
		percentiles_json(w, rt->lat[k].seen, rt->lat[k].ns, rt->lat[k].n);
	}
	jw_end_obj(w);
	jw_end_obj(w);
}

void result_json(const struct result *r, struct jw *w)
{
	static const char *const names[] = { "pass", "fail", "skip" };
	char reason[512];
	enum status st = result_status(r, reason, sizeof(reason));

	jw_obj(w);
	jw_key(w, "workload");
	jw_str(w, r->workload);
	jw_key(w, "mem");
	jw_str(w, r->mem);
	jw_key(w, "status");
	jw_str(w, names[st]);
	jw_key(w, "reason");
	jw_str(w, reason);
	jw_key(w, "phase");
	jw_str(w, r->phase);
	jw_key(w, "checks");
	jw_arr(w);
	for (unsigned i = 0; i < r->nchecks; i++) {
		jw_obj(w);
		jw_key(w, "name");
		jw_str(w, r->checks[i].name);
		jw_key(w, "ok");
		jw_bool(w, r->checks[i].ok);
		jw_key(w, "detail");
		jw_str(w, r->checks[i].detail);
		jw_end_obj(w);
	}
	jw_end_arr(w);
	if (r->probe_error[0]) {
		jw_key(w, "probe_error");
		jw_str(w, r->probe_error);
	}
	if (r->checks_dropped) {
		jw_key(w, "checks_dropped");
		jw_uint(w, r->checks_dropped);
	}
	jw_key(w, "faults");
	jw_obj(w);
	jw_key(w, "wp");
	jw_uint(w, r->faults_wp);
	jw_key(w, "missing");
	jw_uint(w, r->faults_missing);
	jw_key(w, "minor");
	jw_uint(w, r->faults_minor);
	jw_end_obj(w);
	jw_key(w, "events");
	jw_obj(w);
	jw_key(w, "fork");
	jw_uint(w, r->events_fork);
	jw_end_obj(w);
	jw_key(w, "latency_us");
	percentiles_json(w, r->nlat, r->lat_ns, r->nlat < MAX_LATENCIES ? r->nlat : MAX_LATENCIES);
	if (r->rates.seconds > 0)
		rates_json(&r->rates, w);
	jw_key(w, "duration_s");
	jw_double(w, r->duration_s);
	jw_key(w, "params");
	jw_obj(w);
	jw_key(w, "pages");
	jw_uint(w, r->npages);
	jw_key(w, "page_size");
	jw_uint(w, r->page_size);
	jw_key(w, "threads");
	jw_uint(w, r->threads);
	jw_key(w, "seed");
	jw_uint(w, r->seed);
	jw_key(w, "uffd_source");
	jw_str(w, r->uffd_source);
	if (r->inject[0]) {
		jw_key(w, "inject_fail");
		jw_str(w, r->inject);
	}
	if (r->sabotage[0]) {
		jw_key(w, "sabotage");
		jw_str(w, r->sabotage);
	}
	if (r->seconds) {
		jw_key(w, "seconds");
		jw_uint(w, r->seconds);
	}
	jw_end_obj(w);
	jw_end_obj(w);
}
