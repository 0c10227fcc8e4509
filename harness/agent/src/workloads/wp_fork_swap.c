/*
 * wp-fork-swap: fork() while the protected pages are not present, so the uffd-wp bit
 * is carried by the non-present entries copy_nonpresent_pte() (and, for hugetlb,
 * copy_hugetlb_page_range()) copies: swap entries on anonymous memory (protect, then
 * MADV_PAGEOUT: needs swap), PTE markers on file memory (protect, then MADV_DONTNEED).
 * wp-fork-cow covers present ptes and PMDs; this is the rest.
 *
 * Two variants, each on a fresh area and uffd, each with its own check prefix:
 *   noevent-  fork without UFFD_FEATURE_EVENT_FORK: the child must not keep the bit,
 *             neither on the swap entries it inherits (cleared in the copy) nor as
 *             markers (not copied: "mm/uffd: fix pte marker when fork() without fork
 *             event"); after reading the pages back it has none either, and its writes
 *             complete.
 *   event-    fork with EVENT_FORK: the child's entries keep the bit (pagemap bit 57 on
 *             entries that are not present), reading them back keeps it (do_swap_page
 *             or the marker's fault-in in the child), and each of the child's writes
 *             raises one WP fault on the uffd the fork event delivered.
 * In both, the parent's own entries keep the bit across the fork, and reading them back
 * after the child is gone raises no message and shows the parent's bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"
#include "wp_evict.h"

enum variant { V_NOEVENT, V_EVENT };

/* What the child saw, sent once when it is done. */
struct report {
	int32_t pm_err;	    /* errno reading the child's pagemap, the first that failed */
	uint64_t entries;   /* the child's 4K entries over the area */
	uint64_t present;   /* ... present right after fork */
	uint64_t wp;	    /* ... with bit 57 right after fork */
	uint64_t wp_read;   /* ... with bit 57 after the child read every page */
	uint64_t bad_read;  /* subpages the child read without the expected bytes */
	uint64_t wp_written; /* ... with bit 57 after the child wrote every page */
	uint64_t bad_written; /* subpages without the child's bytes after its writes */
};

/* Hugetlb-private pages dropped by MADV_DONTNEED are gone: they read back as zeros. */
static bool data_dropped(enum mem_type t)
{
	return t == MEM_HUGETLB_PRIVATE;
}

static size_t mismatches(const struct area *a, uint64_t seed, unsigned gen)
{
	size_t bad = 0;

	if (gen)
		return area_mismatches(a, a->base, 0, a->npages, seed, NULL, gen, NULL);
	for (size_t s = 0; s < a->size / BASE_PAGE; s++)
		bad += *stamp_at(a->base, s) != 0;
	return bad;
}

/* Runs in the forked child: only async-signal-safe calls from here on. */
static void child_main(struct fx *fx, int c2p)
{
	const struct area *a = &fx->a;
	uint64_t seed = fx->run->seed;
	struct report rep = { 0 };
	size_t spp = subpages_per_page(a);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pagemap_count_into(a->base, a->size, &rep.pm_err, &rep.entries, &rep.wp, &rep.present);
	rep.bad_read = mismatches(a, seed, data_dropped(a->type) ? 0 : GEN_INITIAL);
	pagemap_count_into(a->base, a->size, &rep.pm_err, &rep.entries, &rep.wp_read, NULL);
	/* With EVENT_FORK each page's first store faults on the child's own uffd. */
	for (size_t p = 0; p < a->npages; p++)
		for (size_t s = p * spp; s < (p + 1) * spp; s++)
			*stamp_at(a->base, s) = stamp(seed, GEN_CHILD, s);
	pagemap_count_into(a->base, a->size, &rep.pm_err, &rep.entries, &rep.wp_written, NULL);
	rep.bad_written = mismatches(a, seed, GEN_CHILD);
	_exit(write(c2p, &rep, sizeof(rep)) == (ssize_t)sizeof(rep) ? 0 : 1);
}

/* Take the protected pages away; false if they are not all away with the bit. */
static bool evict(struct fx *fx)
{
	struct result *r = fx->r;
	bool anon = mem_info(fx->a.type)->anon;
	struct pm_counts c;
	int rc;

	set_phase(r, anon ? "MADV_PAGEOUT" : "MADV_DONTNEED");
	rc = anon ? wp_page_out(fx) : madvise(fx->a.base, fx->a.size, MADV_DONTNEED) ? errno : 0;
	if (!check_errno(r, anon ? "madv-pageout" : "madv-dontneed", rc, 0, "madvise(%s)",
			 anon ? "MADV_PAGEOUT" : "MADV_DONTNEED"))
		return false;
	if (!check_errno(r, "read-pagemap", -pagemap_count(fx->a.base, fx->a.size, &c), 0, "read /proc/self/pagemap"))
		return false;
	if (!check_value(r, "evicted", (long long)c.present, 0, "4K entries present (pagemap bit 63), of %zu",
			 c.entries))
		return false;
	if (anon && !check_value(r, "swap-entries", (long long)c.swapped, (long long)c.entries,
				 "4K entries (of %zu) that are swap entries (pagemap bit 62)", c.entries))
		return false;
	return check_value(r, "parent-wp-bit-set-before-fork", (long long)c.wp, (long long)c.entries,
			   "4K entries (of %zu) with pagemap bit 57 while %s", c.entries,
			   anon ? "swapped out" : "zapped (PTE markers)");
}

/* Returns true once the child has been reaped: its pid may then belong to someone else. */
static bool child_checks(struct fx *fx, enum variant v, pid_t pid, int c2p)
{
	struct result *r = fx->r;
	size_t spp = subpages_per_page(&fx->a), nsub = fx->a.size / BASE_PAGE;
	struct report rep;
	int status = 0;
	bool ok;

	set_phase(r, "wait for the child's report");
	ok = read_within(c2p, &rep, sizeof(rep), pool_wait_ms(fx->a.npages * spp));
	if (!check_value(r, "child-reports", ok, 1, "the child's report (after its reads and writes) within %u ms%s%s",
			 pool_wait_ms(fx->a.npages * spp), ok ? "" : ": ", ok ? "" : child_fate(pid)))
		return false;
	if (!check_value(r, "child-exits", reap_child(pid, &status, WAIT_MS), 1, "child exited within %u ms", WAIT_MS))
		return false;
	check_value(r, "child-exit-status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), 0,
		    "child exit status (128+N: killed by signal N)");
	check_errno(r, "child-reads-pagemap", rep.pm_err, 0, "the child reading /proc/self/pagemap");
	check_value(r, "child-entries-not-present", (long long)rep.present, 0,
		    "child's 4K entries (of %llu) present right after fork", (unsigned long long)rep.entries);
	if (v == V_EVENT) {
		check_value(r, "fork-event-delivered", (long long)handler_stats(&fx->h).forks, 1,
			    "UFFD_EVENT_FORK messages");
		check_value(r, "child-wp-bit-set", (long long)rep.wp, (long long)rep.entries,
			    "child's non-present 4K entries (of %llu) with pagemap bit 57 after fork with EVENT_FORK",
			    (unsigned long long)rep.entries);
		check_value(r, "child-wp-bit-kept-after-read", (long long)rep.wp_read, (long long)rep.entries,
			    "child's 4K entries (of %llu) with bit 57 after it read every page back",
			    (unsigned long long)rep.entries);
		check_value(r, "child-writes-fault-on-child-uffd", (long long)handler_stats(&fx->h).child_faults,
			    (long long)fx->a.npages, "WP faults read from the uffd the fork event delivered, for %zu "
			    "pages the child read then wrote", fx->a.npages);
	} else {
		check_value(r, "child-wp-bit-clear", (long long)rep.wp, 0,
			    "child's 4K entries (of %llu) with pagemap bit 57 after fork without EVENT_FORK",
			    (unsigned long long)rep.entries);
		check_value(r, "child-wp-bit-clear-after-read", (long long)rep.wp_read, 0,
			    "child's 4K entries (of %llu) with bit 57 after it read every page back",
			    (unsigned long long)rep.entries);
	}
	check_value(r, "child-reads-expected-bytes", (long long)rep.bad_read, 0,
		    "4K subpages (of %zu) the child read without the %s", nsub,
		    data_dropped(fx->a.type) ? "zeros of a dropped page" : "initial bytes");
	check_value(r, "child-wp-bit-clear-after-writes", (long long)rep.wp_written, 0,
		    "child's 4K entries (of %llu) with bit 57 after it wrote every page", (unsigned long long)rep.entries);
	check_value(r, "child-writes-land", (long long)rep.bad_written, 0,
		    "4K subpages (of %zu) without the child's bytes after its writes", nsub);
	return true;
}

/* The parent's side after the child is gone: its entries kept the bit, its bytes. */
static void parent_checks(struct fx *fx)
{
	struct result *r = fx->r;
	bool shared = mem_info(fx->a.type)->shared;
	unsigned gen = shared ? GEN_CHILD : data_dropped(fx->a.type) ? 0 : GEN_INITIAL;
	uint64_t before = handler_stats(&fx->h).wp - handler_stats(&fx->h).child_faults;

	set_phase(r, "parent checks after the child");
	check_wp_bits(r, "parent-wp-bit-kept-after-fork", fx->a.base, fx->a.size, true);
	check_value(r, "parent-reads-expected-bytes", (long long)mismatches(&fx->a, fx->run->seed, gen), 0,
		    "4K subpages the parent read without the %s",
		    shared ? "child's bytes (shared)" : gen ? "initial bytes" : "zeros of a dropped page");
	check_value(r, "parent-reads-raise-no-fault",
		    (long long)(handler_stats(&fx->h).wp - handler_stats(&fx->h).child_faults - before), 0,
		    "WP faults on the parent's uffd while it read its pages back");
	check_wp_bits(r, "parent-wp-bit-kept-after-read", fx->a.base, fx->a.size, true);
}

static void run_variant(struct run *run, enum variant v)
{
	static const char *const prefixes[] = { "noevent-", "event-" };
	const struct mem_info *mi = mem_info(run->mem);
	struct result *r = run->r;
	/* Hugetlb: a few pages are enough. Private ones are dropped, then refilled by child and parent. */
	size_t npages = mi->hugetlb ? (run->pages < 4 ? run->pages : 4) : 0;
	size_t extra = mi->hugetlb && !mi->shared ? 2 * npages : 0;
	int c2p[2] = { -1, -1 };
	struct fx fx;
	int status;
	pid_t pid;

	check_prefix(r, prefixes[v]);
	if (!fx_setup(&fx, run, npages, FX_POPULATE, v == V_EVENT ? UFFD_FEATURE_EVENT_FORK : 0,
		      UFFDIO_REGISTER_MODE_WP, extra))
		return;
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true) || !evict(&fx))
		goto out;
	if (!check_errno(r, "pipe", pipe2(c2p, O_CLOEXEC) ? errno : 0, 0, "pipe2"))
		goto out;
	set_phase(r, "fork (%s)", prefixes[v]);
	pid = fork();
	if (pid == 0) {
		close(c2p[0]);
		child_main(&fx, c2p[1]);
	}
	if (!check_errno(r, "fork", pid < 0 ? errno : 0, 0, "fork()"))
		goto out;
	close(c2p[1]);
	c2p[1] = -1;
	/* A child stuck in a fault must not linger (and spin) into the next variant. */
	if (!child_checks(&fx, v, pid, c2p[0])) {
		kill(pid, SIGKILL);
		reap_child(pid, &status, WAIT_MS);
	}
	parent_checks(&fx);
	check_handler_clean(&fx);
out:
	for (int i = 0; i < 2; i++)
		if (c2p[i] >= 0)
			close(c2p[i]);
	fx_teardown(&fx);
}

void wp_fork_swap(struct run *run)
{
	const char *why;

	if (!need_wp(run, 0))
		return;
	if (mem_info(run->mem)->anon && !swap_active()) {
		skip(run->r, "no swap: /proc/swaps lists no active swap area (anonymous pages keep the bit "
			     "off-pte only in swap entries)");
		return;
	}
	run_variant(run, V_NOEVENT);
	if (run->r->stuck)
		return;
	why = fork_event_unusable(run);
	if (why) {
		note(run->r, "event- variant not run: %s", why);
		return;
	}
	run_variant(run, V_EVENT);
}
