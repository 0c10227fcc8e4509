/*
 * wp-fork-cow: uffd-wp across fork() and its interplay with copy-on-write.
 *
 * Three variants, each on a fresh area and uffd, each with its own check prefix:
 *   noevent-  protect, fork without UFFD_FEATURE_EVENT_FORK: the child's pagemap bit 57
 *             must be clear (the child has no uffd; a leftover bit is the bug fixed by
 *             "mm/uffd: fix pte marker when fork() without fork event" and, for private
 *             hugetlb, "mm/hugetlb: fix uffd-wp during fork()").
 *   event-    protect, fork with EVENT_FORK: the event delivers the child's uffd, the
 *             child's pages stay protected, and the child's write faults on that uffd.
 *   cow-      fork first so the pages are shared copy-on-write, then protect in the parent.
 * In all three the parent then writes every page: the WP fault comes first (the handler
 * sees the old bytes), and once resolved the write completes through COW: a private
 * child keeps the old bytes, a shared child sees the new ones.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

enum variant { V_NOEVENT, V_EVENT, V_COW };

struct report {
	uint32_t stage;	    /* 1: first look after fork; 2: after the parent's writes; 3: after its own */
	int32_t pm_err;	    /* errno reading the child's pagemap */
	uint64_t entries;   /* the child's 4K entries over the area */
	uint64_t wp;	    /* ... with bit 57, right after fork */
	uint64_t bad_before; /* subpages not holding the initial bytes */
	uint64_t bad_after; /* subpages not as expected after the parent wrote */
	uint32_t wrote;	    /* the child's own write completed */
};

struct forkctx {
	struct fx *fx;
	uint64_t early; /* WP faults whose page already held the new bytes */
};

/* The fault must be reported before the write lands: look at the word being written. */
static void fork_fault(struct handler *h, int fd, const struct uffd_msg *m)
{
	struct forkctx *fc = h->user;
	const struct area *a = &fc->fx->a;
	uint64_t addr = m->arg.pagefault.address;

	if (fd == h->fds[0] && addr >= (uintptr_t)a->base && addr < (uintptr_t)a->base + a->size) {
		size_t page = (addr - (uintptr_t)a->base) / a->psize;
		char *ft = first_touch(a, a->base, page);
		size_t sub = (size_t)(ft - a->base) / BASE_PAGE;

		if (*stamp_at(a->base, sub) == stamp(fc->fx->run->seed, GEN_WRITTEN, sub))
			__atomic_fetch_add(&fc->early, 1, __ATOMIC_RELAXED);
	}
	handler_resolve(h, fd, m);
}

static bool send_report(int fd, const struct report *rep)
{
	return write(fd, rep, sizeof(*rep)) == (ssize_t)sizeof(*rep);
}

/* Runs in the forked child: only async-signal-safe calls from here on. */
static void child_main(struct fx *fx, int c2p, int p2c)
{
	const struct area *a = &fx->a;
	uint64_t seed = fx->run->seed;
	struct report rep = { .stage = 1 };
	struct pm_counts c;
	char go;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rep.pm_err = -pagemap_count(a->base, a->size, &c);
	rep.entries = c.entries;
	rep.wp = c.wp;
	rep.bad_before = area_mismatches(a, a->base, 0, a->npages, seed, NULL, GEN_INITIAL, NULL);
	if (!send_report(c2p, &rep) || read(p2c, &go, 1) != 1)
		_exit(1);
	rep.bad_after = area_mismatches(a, a->base, 0, a->npages, seed, NULL,
					mem_info(a->type)->shared ? GEN_WRITTEN : GEN_INITIAL, NULL);
	rep.stage = 2;
	if (!send_report(c2p, &rep))
		_exit(1);
	/* With EVENT_FORK this faults on the child's own uffd, served by the parent. */
	*stamp_at(a->base, 0) = stamp(seed, GEN_CHILD, 0);
	rep.wrote = 1;
	rep.stage = 3;
	_exit(send_report(c2p, &rep) ? 0 : 1);
}

static bool recv_report(int fd, struct report *rep, unsigned ms)
{
	return read_within(fd, rep, sizeof(*rep), ms);
}

/* Whether the writes were made: the child's checks that follow depend on them. */
static bool parent_writes(struct fx *fx, struct forkctx *fc, enum variant v)
{
	struct result *r = fx->r;
	size_t n, *pages;

	if (v == V_COW) {
		set_phase(r, "protect after fork");
		if (!fx_protect(fx, "protect-all", fx->a.base, fx->a.size, true))
			return false;
		check_wp_bits(r, "parent-wp-bit-set", fx->a.base, fx->a.size, true);
	}
	pages = page_list(fx->a.npages, PAGES_ALL, fx->run->seed, &n);
	if (!write_expect_faults(fx, pages, n))
		return false;
	check_value(r, "fault-before-write-lands", (long long)__atomic_load_n(&fc->early, __ATOMIC_RELAXED), 0,
		    "WP faults whose page already held the new bytes");
	check_fault_addrs(fx, "fault-addresses-match-writes", 0, pages, n);
	check_data(fx, "parent-sees-new-bytes", fx->a.base, NULL, GEN_WRITTEN);
	free(pages);
	return true;
}

/* Returns true once the child has been reaped: its pid may then belong to someone else. */
static bool child_checks(struct fx *fx, enum variant v, pid_t pid, int c2p, int p2c)
{
	struct result *r = fx->r;
	bool shared = mem_info(fx->a.type)->shared;
	struct report rep;
	int status = 0;
	bool ok;

	set_phase(r, "wait for the child's first report");
	ok = recv_report(c2p, &rep, WAIT_MS);
	if (!check_value(r, "child-reports-after-fork", ok, 1, "the child's first report within %u ms%s%s", WAIT_MS,
			 ok ? "" : ": ", ok ? "" : child_fate(pid)))
		return false;
	check_errno(r, "child-reads-pagemap", rep.pm_err, 0, "the child reading /proc/self/pagemap");
	if (v == V_EVENT) {
		handler_wait(&fx->h, 1, WAIT_MS);
		check_value(r, "fork-event-delivered", (long long)handler_stats(&fx->h).forks, 1,
			    "UFFD_EVENT_FORK messages");
	}
	if (v == V_NOEVENT)
		check_value(r, "child-wp-bit-clear", (long long)rep.wp, 0,
			    "child's 4K entries (of %llu) with pagemap bit 57 after fork without EVENT_FORK",
			    (unsigned long long)rep.entries);
	if (v == V_EVENT)
		check_value(r, "child-wp-bit-set", (long long)rep.wp, (long long)rep.entries,
			    "child's 4K entries (of %llu) with pagemap bit 57 after fork with EVENT_FORK",
			    (unsigned long long)rep.entries);
	check_value(r, "child-sees-initial-bytes", (long long)rep.bad_before, 0,
		    "4K subpages the child saw without the initial bytes");

	if (!parent_writes(fx, (struct forkctx *)fx->h.user, v))
		return false;

	set_phase(r, "child checks after the parent's writes");
	ok = write(p2c, "g", 1) == 1 && recv_report(c2p, &rep, WAIT_MS);
	if (!check_value(r, "child-reports-after-writes", ok, 1, "the child's second report within %u ms%s%s", WAIT_MS,
			 ok ? "" : ": ", ok ? "" : child_fate(pid)))
		return false;
	check_value(r, shared ? "child-sees-shared-write" : "child-keeps-old-bytes", (long long)rep.bad_after, 0,
		    "4K subpages the child saw with other than the %s bytes", shared ? "parent's new" : "initial");
	set_phase(r, "child writes");
	ok = recv_report(c2p, &rep, WAIT_MS) && rep.wrote;
	if (!check_value(r, "child-write-completes", ok, 1, "the child's own write to page 0 within %u ms%s%s", WAIT_MS,
			 ok ? "" : ": ", ok ? "" : child_fate(pid)))
		return false;
	if (v == V_EVENT)
		check_value(r, "child-write-faults-on-child-uffd", (long long)handler_stats(&fx->h).child_faults, 1,
			    "WP faults read from the uffd the fork event delivered");
	if (!check_value(r, "child-exits", reap_child(pid, &status, WAIT_MS), 1, "child exited within %u ms", WAIT_MS))
		return false;
	check_value(r, "child-exit-status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), 0,
		    "child exit status (128+N: killed by signal N)");
	return true;
}

static void run_variant(struct run *run, enum variant v, size_t extra_hugepages)
{
	static const char *const prefixes[] = { "noevent-", "event-", "cow-" };
	struct result *r = run->r;
	struct forkctx fc = { 0 };
	int c2p[2] = { -1, -1 }, p2c[2] = { -1, -1 };
	struct fx fx;
	int status;
	pid_t pid;

	check_prefix(r, prefixes[v]);
	if (!fx_setup(&fx, run, 0, FX_POPULATE, v == V_EVENT ? UFFD_FEATURE_EVENT_FORK : 0, UFFDIO_REGISTER_MODE_WP,
		      extra_hugepages))
		return;
	fc.fx = &fx;
	fx.h.user = &fc;
	fx.h.on_fault = fork_fault;
	if (v != V_COW) {
		set_phase(r, "protect before fork");
		if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
			goto out;
		check_wp_bits(r, "parent-wp-bit-set", fx.a.base, fx.a.size, true);
	}
	if (!check_errno(r, "pipes", pipe2(c2p, O_CLOEXEC) || pipe2(p2c, O_CLOEXEC) ? errno : 0, 0, "pipe2"))
		goto out;
	set_phase(r, "fork (%s)", prefixes[v]);
	pid = fork();
	if (pid == 0) {
		close(c2p[0]);
		close(p2c[1]);
		child_main(&fx, c2p[1], p2c[0]);
	}
	if (!check_errno(r, "fork", pid < 0 ? errno : 0, 0, "fork()"))
		goto out;
	close(c2p[1]);
	close(p2c[0]);
	c2p[1] = p2c[0] = -1;
	/* A child stuck in a fault must not linger (and spin) into the next variant. */
	if (!child_checks(&fx, v, pid, c2p[0], p2c[1])) {
		kill(pid, SIGKILL);
		reap_child(pid, &status, WAIT_MS);
	}
	if (r->stuck)
		return;
	check_handler_clean(&fx);
out:
	for (int i = 0; i < 2; i++) {
		if (c2p[i] >= 0)
			close(c2p[i]);
		if (p2c[i] >= 0)
			close(p2c[i]);
	}
	fx_teardown(&fx);
}

void wp_fork_cow(struct run *run)
{
	const struct mem_info *mi = mem_info(run->mem);
	/* Private hugetlb copies on write: the parent's writes need a second set of pages. */
	size_t extra = mi->hugetlb && !mi->shared ? run->pages + 1 : 0;
	const char *why;

	if (!need_wp(run, 0))
		return;
	run_variant(run, V_NOEVENT, extra);
	if (run->r->stuck)
		return;
	run_variant(run, V_COW, extra);
	if (run->r->stuck)
		return;
	why = fork_event_unusable(run);
	if (why) {
		note(run->r, "event- variant not run: %s", why);
		return;
	}
	run_variant(run, V_EVENT, extra);
}
