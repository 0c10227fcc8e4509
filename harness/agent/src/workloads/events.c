/*
 * events: the non-cooperative events, each variant on a fresh area registered for
 * MISSING faults, with its own check prefix:
 *   fork-    the child's uffd arrives in UFFD_EVENT_FORK and serves the child's faults
 *            (the parent's pages stay as they were); the area is two VMAs by then (its
 *            second half read-only), which share that one uffd: one event;
 *   remap-   mremap() reports from/to/len, and the registration moves with the pages;
 *   remove-  MADV_DONTNEED (private) or MADV_REMOVE (shared) reports the range, the
 *            pages are gone, and touching them faults again;
 *   unmap-   munmap() reports the range.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

static size_t private_hugetlb_pages(struct run *run)
{
	const struct mem_info *mi = mem_info(run->mem);

	return mi->hugetlb && !mi->shared ? run->pages : 0;
}

static bool setup(struct fx *fx, struct run *run, uint64_t feature, uint8_t event, size_t extra_hugepages)
{
	if (!fx_setup(fx, run, 0, 0, feature, UFFDIO_REGISTER_MODE_MISSING, extra_hugepages))
		return false;
	fx->h.expect_events = EVENT_BIT(event);
	return true;
}

/* Read every page once, each read faulting; false if the readers got stuck. */
static bool read_expect_faults(struct fx *fx, const char *name, size_t from, size_t to)
{
	struct result *r = fx->r;
	uint64_t before = handler_stats(&fx->h).missing;
	size_t n = to - from, *pages = malloc((n ? n : 1) * sizeof(*pages)), first;
	bool ok;

	if (!pages)
		abort();
	pthread_mutex_lock(&fx->h.mu);
	first = fx->h.naddrs;
	pthread_mutex_unlock(&fx->h.mu);
	for (size_t i = 0; i < n; i++)
		pages[i] = from + i;
	set_phase(r, "read pages %zu-%zu", from, to);
	ok = read_pages(r, &fx->a, fx->a.base, pages, n, fx->run->threads, true, pool_wait_ms(n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", pool_wait_ms(n));
	if (!ok)
		return false; /* stuck: the run ends here */
	check_fault_addrs(fx, name, first, pages, n);
	check_value(r, "one-fault-per-read-page", (long long)(handler_stats(&fx->h).missing - before), (long long)n,
		    "MISSING fault messages for first reads of %zu pages", n);
	free(pages);
	return true;
}

/* The one event of a kind the workload provoked: true if it is there. */
static bool one_event(struct fx *fx, uint8_t event, const char *what, struct uffd_msg *m)
{
	handler_wait_event(&fx->h, event, 1, WAIT_MS);
	return check_value(fx->r, "event-delivered", (long long)handler_events(&fx->h, event, m, 1), 1,
			   "UFFD_EVENT_%s messages", what);
}

static void check_addr(struct fx *fx, const char *name, uint64_t got, const void *want, const char *what)
{
	check_value(fx->r, name, (long long)(got - (uintptr_t)want), 0, "%s minus the expected address", what);
}

/* msync() fails with ENOMEM exactly where nothing is mapped. */
static void check_unmapped(struct fx *fx, const char *name, void *addr, size_t len)
{
	check_errno(fx->r, name, msync(addr, len, MS_ASYNC) ? errno : 0, ENOMEM, "msync() of the old range");
}

struct child_report {
	uint64_t bad;
};

static void fork_variant(struct run *run)
{
	struct result *r = run->r;
	struct child_report rep = { 0 };
	int pipefd[2], status = 0;
	size_t half;
	struct hstats s;
	struct fx fx;
	pid_t pid;
	bool ok;

	if (!setup(&fx, run, UFFD_FEATURE_EVENT_FORK, UFFD_EVENT_FORK, private_hugetlb_pages(run)))
		return;
	/* Two VMAs on one uffd (the child only reads): dup_userfaultfd() must give both one new
	 * uffd, so one fork event. */
	half = fx.a.npages / 2 * fx.a.psize;
	if (half && !check_errno(r, "split-area", mprotect(fx.a.base + half, fx.a.size - half, PROT_READ) ? errno : 0,
				 0, "mprotect(PROT_READ) of the area's second half (two VMAs on one uffd)"))
		goto out;
	if (!check_errno(r, "pipe", pipe2(pipefd, O_CLOEXEC) ? errno : 0, 0, "pipe2"))
		goto out;
	set_phase(r, "fork; the child reads every page");
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls: every read faults on the child's uffd. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		rep.bad = area_mismatches(&fx.a, fx.a.base, 0, fx.a.npages, run->seed, NULL, GEN_INITIAL, NULL);
		_exit(write(pipefd[1], &rep, sizeof(rep)) == (ssize_t)sizeof(rep) ? 0 : 1);
	}
	close(pipefd[1]);
	if (!check_errno(r, "fork", pid < 0 ? errno : 0, 0, "fork()")) {
		close(pipefd[0]);
		goto out;
	}
	ok = read_within(pipefd[0], &rep, sizeof(rep), WAIT_MS);
	close(pipefd[0]);
	if (!check_value(r, "child-reports", ok, 1, "the child's report within %u ms%s%s", WAIT_MS, ok ? "" : ": ",
			 ok ? "" : child_fate(pid))) {
		kill(pid, SIGKILL);
		reap_child(pid, &status, WAIT_MS);
		goto out;
	}
	check_value(r, "child-exits", reap_child(pid, &status, WAIT_MS), 1, "child exited within %u ms", WAIT_MS);
	check_value(r, "child-exit-status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), 0,
		    "child exit status (128+N: killed by signal N)");
	handler_wait_event(&fx.h, UFFD_EVENT_FORK, 1, WAIT_MS);
	s = handler_stats(&fx.h);
	check_value(r, "event-delivered", (long long)s.forks, 1, "UFFD_EVENT_FORK messages (for %d VMAs on one uffd)",
		    half ? 2 : 1);
	check_value(r, "child-faults-on-child-uffd", (long long)s.child_faults, (long long)fx.a.npages,
		    "MISSING faults read from the uffd the fork event delivered");
	check_value(r, "child-sees-copied-bytes", (long long)rep.bad, 0,
		    "4K subpages the child read without the bytes its faults were served");
	check_value(r, "no-parent-faults", (long long)(s.missing - s.child_faults), 0,
		    "fault messages on the parent's own uffd");
	if (fx.a.alias)
		check_data(&fx, "parent-sees-child-copies", fx.a.alias, NULL, GEN_INITIAL);
	else
		check_present(r, "parent-pages-untouched", fx.a.base, fx.a.size, false);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}

static void remap_variant(struct run *run)
{
	struct result *r = run->r;
	struct uffd_msg m;
	char *old, *raw, *to;
	struct fx fx;
	void *got;

	if (!setup(&fx, run, UFFD_FEATURE_EVENT_REMAP, UFFD_EVENT_REMAP, 0))
		return;
	if (!read_expect_faults(&fx, "fault-address-before-move", 0, 1))
		return;
	set_phase(r, "mremap");
	/* A free, page-size-aligned destination (hugetlb mremap wants alignment). */
	raw = mmap(NULL, fx.a.size + fx.a.psize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!check_errno(r, "reserve-destination", raw == MAP_FAILED ? errno : 0, 0, "mmap PROT_NONE"))
		goto out;
	to = (char *)(((uintptr_t)raw + fx.a.psize - 1) & ~(uintptr_t)(fx.a.psize - 1));
	if (to > raw)
		munmap(raw, (size_t)(to - raw));
	munmap(to + fx.a.size, (size_t)(raw + fx.a.psize - to));
	old = fx.a.base;
	got = mremap(old, fx.a.size, fx.a.size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (!check_errno(r, "mremap", got == MAP_FAILED ? errno : 0, 0, "mremap(MAYMOVE|FIXED) of the area")) {
		munmap(to, fx.a.size);
		goto out;
	}
	pthread_mutex_lock(&fx.h.mu);
	fx.a.base = to;
	pthread_mutex_unlock(&fx.h.mu);
	if (one_event(&fx, UFFD_EVENT_REMAP, "REMAP", &m)) {
		check_addr(&fx, "event-from", m.arg.remap.from, old, "remap.from");
		check_addr(&fx, "event-to", m.arg.remap.to, to, "remap.to");
		check_value(r, "event-len", (long long)m.arg.remap.len, (long long)fx.a.size, "remap.len");
	}
	check_unmapped(&fx, "old-range-unmapped", old, fx.a.size);
	check_prefix(r, "remap-moved-");
	if (!read_expect_faults(&fx, "fault-addresses-follow-move", 1, fx.a.npages))
		return;
	check_prefix(r, "remap-");
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_INITIAL);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}

static void remove_variant(struct run *run)
{
	struct result *r = run->r;
	bool shared = mem_info(run->mem)->shared;
	struct uffd_msg m;
	unsigned *gens;
	size_t k;
	struct fx fx;
	char *zap;
	int rc;

	if (!setup(&fx, run, UFFD_FEATURE_EVENT_REMOVE, UFFD_EVENT_REMOVE, 0))
		return;
	if (!read_expect_faults(&fx, "fault-addresses-match-reads", 0, fx.a.npages))
		return;
	k = fx.a.npages / 2;
	zap = fx.a.base + k * fx.a.psize;
	set_phase(r, "%s the second half", shared ? "MADV_REMOVE" : "MADV_DONTNEED");
	rc = madvise(zap, fx.a.size - k * fx.a.psize, shared ? MADV_REMOVE : MADV_DONTNEED) ? errno : 0;
	if (!check_errno(r, "madvise", rc, 0, "madvise(%s) of the second half", shared ? "MADV_REMOVE" : "MADV_DONTNEED"))
		goto out;
	if (one_event(&fx, UFFD_EVENT_REMOVE, "REMOVE", &m)) {
		check_addr(&fx, "event-start", m.arg.remove.start, zap, "remove.start");
		check_addr(&fx, "event-end", m.arg.remove.end, fx.a.base + fx.a.size, "remove.end");
	}
	check_present(r, "removed-pages-gone", zap, fx.a.size - k * fx.a.psize, false);
	check_present(r, "other-pages-kept", fx.a.base, k * fx.a.psize, true);

	/* The refill carries new bytes, so stale pages surviving the removal would show. */
	fx.h.copy_gen = GEN_WRITTEN;
	check_prefix(r, "remove-refault-");
	if (!read_expect_faults(&fx, "fault-addresses-match-reads", k, fx.a.npages))
		return;
	check_prefix(r, "remove-");
	gens = malloc(fx.a.npages * sizeof(*gens));
	if (!gens)
		abort();
	for (size_t i = 0; i < fx.a.npages; i++)
		gens[i] = i < k ? GEN_INITIAL : GEN_WRITTEN;
	check_data(&fx, "data-after-refault", fx.a.base, gens, 0);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-refills", fx.a.alias, gens, 0);
	free(gens);
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}

static void unmap_variant(struct run *run)
{
	struct result *r = run->r;
	struct uffd_msg m;
	size_t k, bad;
	struct fx fx;
	char *gone;

	if (!setup(&fx, run, UFFD_FEATURE_EVENT_UNMAP, UFFD_EVENT_UNMAP, 0))
		return;
	if (!read_expect_faults(&fx, "fault-addresses-match-reads", 0, fx.a.npages))
		return;
	k = fx.a.npages / 2;
	gone = fx.a.base + k * fx.a.psize;
	set_phase(r, "munmap the second half");
	if (!check_errno(r, "munmap", munmap(gone, fx.a.size - k * fx.a.psize) ? errno : 0, 0,
			 "munmap() of the second half"))
		goto out;
	if (one_event(&fx, UFFD_EVENT_UNMAP, "UNMAP", &m)) {
		check_addr(&fx, "event-start", m.arg.remove.start, gone, "unmap start");
		check_addr(&fx, "event-end", m.arg.remove.end, fx.a.base + fx.a.size, "unmap end");
	}
	check_unmapped(&fx, "range-unmapped", gone, fx.a.size - k * fx.a.psize);
	bad = area_mismatches(&fx.a, fx.a.base, 0, k, run->seed, NULL, GEN_INITIAL, NULL);
	check_value(r, "kept-pages-intact", (long long)bad, 0, "4K subpages of the first half with a wrong stamp");
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}

void events(struct run *run)
{
	static const struct {
		const char *prefix;
		uint64_t feature;
		void (*fn)(struct run *run);
	} variants[] = {
		{ "fork-", UFFD_FEATURE_EVENT_FORK, fork_variant },
		{ "remap-", UFFD_FEATURE_EVENT_REMAP, remap_variant },
		{ "remove-", UFFD_FEATURE_EVENT_REMOVE, remove_variant },
		{ "unmap-", UFFD_FEATURE_EVENT_UNMAP, unmap_variant },
	};
	char missing[256] = "";
	size_t len = 0, ran = 0;

	if (!need_features(run, missing_features(run->mem)))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(variants) && !run->r->stuck; i++) {
		char names[64];
		const char *why = NULL;

		if (variants[i].feature == UFFD_FEATURE_EVENT_FORK) {
			why = fork_event_unusable(run);
		} else if (!(run->features & variants[i].feature)) {
			uffd_feature_names(variants[i].feature, names, sizeof(names));
			snprintf(names + strlen(names), sizeof(names) - strlen(names), " missing");
			why = names;
		}
		if (why) {
			len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s%s: %s", len ? "; " : "",
						variants[i].prefix, why);
			continue;
		}
		check_prefix(run->r, variants[i].prefix);
		variants[i].fn(run);
		ran++;
	}
	if (!ran)
		skip(run->r, "no event variant can run: %s", missing);
	else if (missing[0])
		note(run->r, "variants not run: %s", missing);
}
