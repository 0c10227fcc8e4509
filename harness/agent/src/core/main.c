/*
 * uffd-agent: the guest side of uffd-harness. Runs userfaultfd workloads on the kernel
 * it finds itself on and reports JSON. Exit codes follow kselftest: 0 pass, 1 fail,
 * 4 skip; 2 is a usage error.
 */
#define _GNU_SOURCE
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "features.h"
#include "json.h"
#include "prove.h"
#include "run.h"
#include "workloads.h"

enum { EXIT_PASS = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_SKIP = 4 };

static const char usage[] =
	"usage: uffd-agent features\n"
	"       uffd-agent list\n"
	"       uffd-agent run WORKLOAD --mem TYPE [--pages N] [--threads N] [--seed N] [--seconds S]\n"
	"                      [--timeout S] [--inject-fail CHECK]\n"
	"                      [--sabotage no-protect|stall-handler|misplace-copy]\n"
	"       uffd-agent prove WORKLOAD --mem TYPE [--known-failing CHECK,...] [--skip-proven CHECK,...]\n"
	"                        [--pages N] [--threads N] [--seed N] [--seconds S] [--timeout S]\n"
	"       uffd-agent suite [--filter GLOB] [--mem TYPE] [--threads N] [--seed N] [--seconds S]\n"
	"                        [--timeout S]\n"
	"\n"
	"--filter matches a workload name, or WORKLOAD:MEM when the pattern has a ':'.\n"
	"--seconds is how long timed workloads (stress) run, default 3; --timeout is the\n"
	"watchdog beyond that, default 60.\n"
	"--inject-fail perturbs the expectation of one named check, which must then fail;\n"
	"--sabotage perturbs what the workload does (self-tests of the agent's checks).\n"
	"prove runs the workload, then once per check it recorded with --inject-fail that\n"
	"check, and prints one JSON object saying which checks were proven able to fail;\n"
	"--known-failing names checks a known kernel bug makes fail (tolerated, unproven),\n"
	"--skip-proven checks already proven elsewhere (not rerun).\n";

static void emit(struct jw *w)
{
	fputs(w->buf, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	jw_free(w);
}

static int cmd_list(void)
{
	struct jw w;

	jw_init(&w);
	jw_arr(&w);
	for (size_t i = 0; i < nworkloads; i++) {
		jw_obj(&w);
		jw_key(&w, "name");
		jw_str(&w, workloads[i].name);
		jw_key(&w, "mem");
		jw_arr(&w);
		for (int t = 0; t < MEM_NTYPES; t++)
			if (workloads[i].mems & MEMBIT(t))
				jw_str(&w, mem_info((enum mem_type)t)->name);
		jw_end_arr(&w);
		jw_key(&w, "summary");
		jw_str(&w, workloads[i].summary);
		jw_end_obj(&w);
	}
	jw_end_arr(&w);
	emit(&w);
	return EXIT_PASS;
}

static int cmd_features(void)
{
	struct jw w;

	jw_init(&w);
	features_json(&w);
	emit(&w);
	return EXIT_PASS;
}

static struct result *new_result(void)
{
	struct result *r = malloc(sizeof(*r));

	if (!r) {
		perror("malloc");
		exit(EXIT_FAIL);
	}
	return r;
}

static int cmd_run(const struct workload *w, int mem, const struct opts *o)
{
	static const int codes[] = { [ST_PASS] = EXIT_PASS, [ST_FAIL] = EXIT_FAIL, [ST_SKIP] = EXIT_SKIP };
	struct result *r = new_result();
	char reason[512];
	struct jw j;
	int code;

	if (!(w->mems & MEMBIT(mem))) {
		fprintf(stderr, "uffd-agent: %s does not run on %s (see `uffd-agent list`)\n", w->name,
			mem_info((enum mem_type)mem)->name);
		free(r);
		return EXIT_USAGE;
	}
	run_one(w, (enum mem_type)mem, o, r);
	jw_init(&j);
	result_json(r, &j);
	emit(&j);
	code = codes[result_status(r, reason, sizeof(reason))];
	free(r);
	return code;
}

static int cmd_prove(const struct workload *w, int mem, const struct opts *o, const struct prove_opts *p)
{
	static const int codes[] = { [ST_PASS] = EXIT_PASS, [ST_FAIL] = EXIT_FAIL, [ST_SKIP] = EXIT_SKIP };
	struct jw j;
	enum status st;

	if (!(w->mems & MEMBIT(mem))) {
		fprintf(stderr, "uffd-agent: %s does not run on %s (see `uffd-agent list`)\n", w->name,
			mem_info((enum mem_type)mem)->name);
		return EXIT_USAGE;
	}
	jw_init(&j);
	st = prove(w, (enum mem_type)mem, o, p, &j);
	emit(&j);
	return codes[st];
}

static bool selected(const struct workload *w, int mem, const char *filter, int only_mem)
{
	char both[80];

	if (only_mem >= 0 && mem != only_mem)
		return false;
	if (!filter)
		return true;
	if (!strchr(filter, ':'))
		return !fnmatch(filter, w->name, 0);
	snprintf(both, sizeof(both), "%s:%s", w->name, mem_info((enum mem_type)mem)->name);
	return !fnmatch(filter, both, 0);
}

static int cmd_suite(const char *filter, int only_mem, const struct opts *o)
{
	static const char *const names[] = { "pass", "fail", "skip" };
	unsigned counts[3] = { 0 }, total = 0, done = 0;
	struct result *r = new_result();
	bool first = true;

	for (size_t i = 0; i < nworkloads; i++)
		for (int t = 0; t < MEM_NTYPES; t++)
			total += (workloads[i].mems & MEMBIT(t)) && selected(&workloads[i], t, filter, only_mem);
	fputs("[\n", stdout);
	for (size_t i = 0; i < nworkloads; i++) {
		for (int t = 0; t < MEM_NTYPES; t++) {
			const struct workload *w = &workloads[i];
			char reason[512];
			enum status st;
			struct jw j;

			if (!(w->mems & MEMBIT(t)) || !selected(w, t, filter, only_mem))
				continue;
			run_one(w, (enum mem_type)t, o, r);
			st = result_status(r, reason, sizeof(reason));
			counts[st]++;
			jw_init(&j);
			result_json(r, &j);
			fputs(first ? "" : ",\n", stdout);
			fputs(j.buf, stdout);
			fflush(stdout);
			jw_free(&j);
			first = false;
			fprintf(stderr, "[%u/%u] %s %s: %s (%.2f s)%s%s\n", ++done, total, w->name,
				mem_info((enum mem_type)t)->name, names[st], r->duration_s, reason[0] ? ": " : "", reason);
		}
	}
	fputs(first ? "]\n" : "\n]\n", stdout);
	printf("%u passed, %u failed, %u skipped\n", counts[ST_PASS], counts[ST_FAIL], counts[ST_SKIP]);
	free(r);
	return counts[ST_FAIL] ? EXIT_FAIL : EXIT_PASS;
}

static bool parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return false;
	*out = strtoull(s, &end, 0);
	return !*end && *out <= max;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' },	   { "pages", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },   { "seed", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 'T' },   { "filter", required_argument, NULL, 'f' },
		{ "inject-fail", required_argument, NULL, 'i' }, { "sabotage", required_argument, NULL, 'S' },
		{ "seconds", required_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ "known-failing", required_argument, NULL, 'K' }, { "skip-proven", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .threads = 4, .seed = 1, .timeout_s = 60 };
	struct prove_opts po = { 0 };
	const char *cmd, *filter = NULL;
	bool run_only = false, self_test = false, prove_only = false;
	unsigned long long v;
	int mem = -1, c;

	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mem = mem_by_name(optarg);
			if (mem < 0) {
				fprintf(stderr, "uffd-agent: unknown memory type %s\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
		case 't':
		case 's':
		case 'T':
		case 'd':
			if (!parse_num(optarg, c == 's' ? ~0ULL : 1ULL << 20, &v) || (c != 's' && !v)) {
				fprintf(stderr, "uffd-agent: bad number %s\n", optarg);
				return EXIT_USAGE;
			}
			run_only |= c == 'p';
			if (c == 'p')
				o.pages = (size_t)v;
			else if (c == 't')
				o.threads = (unsigned)v;
			else if (c == 's')
				o.seed = v;
			else if (c == 'd')
				o.seconds = (unsigned)v;
			else
				o.timeout_s = (unsigned)v;
			break;
		case 'f':
			filter = optarg;
			break;
		case 'i':
			o.inject = optarg;
			run_only = self_test = true;
			break;
		case 'K':
			po.known = optarg;
			prove_only = true;
			break;
		case 'P':
			po.skip = optarg;
			prove_only = true;
			break;
		case 'S':
			if (strcmp(optarg, "no-protect") && strcmp(optarg, "stall-handler") &&
			    strcmp(optarg, "misplace-copy")) {
				fprintf(stderr, "uffd-agent: unknown sabotage %s\n", optarg);
				return EXIT_USAGE;
			}
			o.sabotage = optarg;
			run_only = self_test = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return EXIT_PASS;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!strcmp(cmd, "features") && optind == argc)
		return cmd_features();
	if (!strcmp(cmd, "list") && optind == argc)
		return cmd_list();
	/* --pages means different sizes per memory type, and self-tests are one case each. */
	if (!strcmp(cmd, "suite") && optind == argc && !run_only && !prove_only)
		return cmd_suite(filter, mem, &o);
	/* prove makes its own perturbations: a self-test mode on top would prove nothing. */
	if ((!strcmp(cmd, "run") || (!strcmp(cmd, "prove") && !self_test)) && optind == argc - 1 && !filter &&
	    (!prove_only || !strcmp(cmd, "prove"))) {
		const struct workload *w = workload_by_name(argv[optind]);

		if (!w) {
			fprintf(stderr, "uffd-agent: unknown workload %s (see `uffd-agent list`)\n", argv[optind]);
			return EXIT_USAGE;
		}
		if (mem < 0) {
			fprintf(stderr, "uffd-agent: %s needs --mem TYPE\n", cmd);
			return EXIT_USAGE;
		}
		return strcmp(cmd, "prove") ? cmd_run(w, mem, &o) : cmd_prove(w, mem, &o, &po);
	}
	fputs(usage, stderr);
	return EXIT_USAGE;
}
