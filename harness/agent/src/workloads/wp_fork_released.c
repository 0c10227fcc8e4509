/*
 * wp-fork-released: fork with UFFD_FEATURE_EVENT_FORK while the protected pages of a shmem
 * area are uffd-wp PTE markers (protect, then MADV_DONTNEED), and close the uffd instead of
 * reading the fork event. The fork copied the markers into the child (its VMA was still
 * uffd-wp then); the release of the parent's uffd ends the fork's wait for the event, and
 * userfaultfd_event_wait_completion() unregisters the child's VMA without touching its
 * page tables. So the child owns markers in a VMA that is not uffd-wp: its first touch of
 * each must drop the marker (pte_marker_clear()) and map the page-cache page like any
 * fault: no SIGBUS, no hang, no message, the bytes of the file, no bit 57 after the read,
 * and its writes land in the file. The parent's own bits were reset by the release.
 *
 * The fork runs with CLONE_FILES so the child shares the parent's descriptor table: a
 * plain fork() would give the child a reference to the uffd, and closing the parent's
 * would not release it while the fork waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "pagemap.h"
#include "util.h"

#define CHILD_STACK (256 * 1024)

/* What the child saw, sent once when it is done. */
struct report {
	int32_t pm_err;	      /* errno reading the child's pagemap, the first that failed */
	uint64_t entries;     /* the child's 4K entries over the area */
	uint64_t present;     /* ... present before it touched them */
	uint64_t wp;	      /* ... with bit 57 before it touched them (inherited markers) */
	uint64_t wp_read;     /* ... with bit 57 after it read every page */
	uint64_t bad_read;    /* subpages read without the file's bytes */
	uint64_t wp_written;  /* ... with bit 57 after it wrote every page */
	uint64_t bad_written; /* subpages without the child's bytes after its writes */
};

struct forker {
	struct fx *fx;
	int c2p[2];
	char *stack;
	pid_t pid;
	int err;
	int done;
};

/* The child, on its own stack: only async-signal-safe calls. */
static int child_main(void *arg)
{
	struct forker *f = arg;
	const struct area *a = &f->fx->a;
	uint64_t seed = f->fx->run->seed;
	size_t nsub = a->size / BASE_PAGE;
	struct report rep = { 0 };

	/* No PR_SET_PDEATHSIG: its parent is the forking thread, which exits first. */
	pagemap_count_into(a->base, a->size, &rep.pm_err, &rep.entries, &rep.wp, &rep.present);
	rep.bad_read = area_mismatches(a, a->base, 0, a->npages, seed, NULL, GEN_INITIAL, NULL);
	pagemap_count_into(a->base, a->size, &rep.pm_err, &rep.entries, &rep.wp_read, NULL);
	for (size_t s = 0; s < nsub; s++)
		*stamp_at(a->base, s) = stamp(seed, GEN_CHILD, s);
	pagemap_count_into(a->base, a->size, &rep.pm_err, &rep.entries, &rep.wp_written, NULL);
	rep.bad_written = area_mismatches(a, a->base, 0, a->npages, seed, NULL, GEN_CHILD, NULL);
	_exit(write(f->c2p[1], &rep, sizeof(rep)) == (ssize_t)sizeof(rep) ? 0 : 1);
}

/* The forking thread: blocks in the kernel until the fork event is read or its uffd released. */
static void *forker_main(void *arg)
{
	struct forker *f = arg;

	f->pid = clone(child_main, f->stack + CHILD_STACK, CLONE_FILES | SIGCHLD, f);
	f->err = f->pid < 0 ? errno : 0;
	__atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool forker_done(struct forker *f, unsigned ms)
{
	uint64_t t0 = now_ns();

	while (!__atomic_load_n(&f->done, __ATOMIC_ACQUIRE)) {
		if (now_ns() - t0 > (uint64_t)ms * 1000000)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* Protect, zap, check the markers; false if something is off. */
static bool make_markers(struct fx *fx)
{
	struct result *r = fx->r;
	struct pm_counts c;

	if (!fx_protect(fx, "protect-all", fx->a.base, fx->a.size, true))
		return false;
	set_phase(r, "MADV_DONTNEED");
	if (!check_errno(r, "madv-dontneed", madvise(fx->a.base, fx->a.size, MADV_DONTNEED) ? errno : 0, 0,
			 "madvise(MADV_DONTNEED)"))
		return false;
	if (!check_errno(r, "read-pagemap", -pagemap_count(fx->a.base, fx->a.size, &c), 0, "read /proc/self/pagemap"))
		return false;
	return check_value(r, "parent-markers-before-fork", (long long)(c.wp - c.present), (long long)c.entries,
			   "4K entries (of %zu) not present with pagemap bit 57 (uffd-wp markers) after MADV_DONTNEED",
			   c.entries);
}

/* Returns true once the child has been reaped. */
static bool child_checks(struct fx *fx, struct forker *f)
{
	struct result *r = fx->r;
	size_t nsub = fx->a.size / BASE_PAGE;
	unsigned ms = pool_wait_ms(nsub);
	struct report rep;
	int status = 0;
	bool ok;

	set_phase(r, "wait for the child's report");
	ok = read_within(f->c2p[0], &rep, sizeof(rep), ms);
	if (!check_value(r, "child-reports", ok, 1, "the child's report (after its reads and writes) within %u ms%s%s",
			 ms, ok ? "" : ": ", ok ? "" : child_fate(f->pid)))
		return false;
	if (!check_value(r, "child-exits", reap_child(f->pid, &status, WAIT_MS), 1, "child exited within %u ms",
			 WAIT_MS))
		return false;
	check_value(r, "child-exit-status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), 0,
		    "child exit status (128+N: killed by signal N, 135 SIGBUS)");
	check_errno(r, "child-reads-pagemap", rep.pm_err, 0, "the child reading /proc/self/pagemap");
	note(r, "child inherited %llu of %llu entries with bit 57, %llu present", (unsigned long long)rep.wp,
	     (unsigned long long)rep.entries, (unsigned long long)rep.present);
	check_value(r, "child-reads-file-bytes", (long long)rep.bad_read, 0,
		    "4K subpages (of %zu) the child read without the file's bytes", nsub);
	check_value(r, "child-wp-bit-clear-after-read", (long long)rep.wp_read, 0,
		    "child's 4K entries (of %llu) with bit 57 after it read every page (its VMA is not uffd-wp)",
		    (unsigned long long)rep.entries);
	check_value(r, "child-wp-bit-clear-after-writes", (long long)rep.wp_written, 0,
		    "child's 4K entries (of %llu) with bit 57 after it wrote every page", (unsigned long long)rep.entries);
	check_value(r, "child-writes-land", (long long)rep.bad_written, 0,
		    "4K subpages (of %zu) without the child's bytes after its writes", nsub);
	return true;
}

void wp_fork_released(struct run *run)
{
	struct result *r = run->r;
	struct forker f = { .c2p = { -1, -1 } };
	const char *why;
	struct pollfd pfd;
	struct fx fx;
	int status, rc;
	pthread_t t;

	if (!need_wp(run, 0))
		return;
	why = fork_event_unusable(run);
	if (why) {
		skip(r, "%s", why);
		return;
	}
	if (!fx_setup(&fx, run, 0, FX_POPULATE, UFFD_FEATURE_EVENT_FORK, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	f.fx = &fx;
	if (!make_markers(&fx))
		goto out;
	if (!check_errno(r, "pipe", pipe2(f.c2p, O_CLOEXEC) ? errno : 0, 0, "pipe2"))
		goto out;
	f.stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!check_errno(r, "map-child-stack", f.stack == MAP_FAILED ? errno : 0, 0, "mmap the child's stack")) {
		f.stack = NULL;
		goto out;
	}
	/* Nobody may read the fork event: the handler goes first. */
	handler_stop(&fx.h);

	set_phase(r, "fork with CLONE_FILES, its event unread");
	rc = pthread_create(&t, NULL, forker_main, &f);
	if (!check_errno(r, "start-forker", rc, 0, "pthread_create"))
		goto out;
	pfd = (struct pollfd){ .fd = fx.uffd, .events = POLLIN };
	rc = poll(&pfd, 1, WAIT_MS);
	if (!check_value(r, "fork-event-pending", rc == 1 && (pfd.revents & POLLIN), 1,
			 "the uffd polls readable (the fork event) within %u ms (poll %d, revents 0x%x)", WAIT_MS, rc,
			 pfd.revents) ||
	    !check_value(r, "fork-waits-for-event", __atomic_load_n(&f.done, __ATOMIC_ACQUIRE), 0,
			 "fork() returned before its event was read or the uffd released")) {
		/* Release the forker, and a child it made. */
		close(fx.uffd);
		fx.uffd = -1;
		r->stuck = !forker_done(&f, WAIT_MS);
		if (r->stuck)
			return;
		pthread_join(t, NULL);
		if (f.pid > 0) {
			kill(f.pid, SIGKILL);
			reap_child(f.pid, &status, WAIT_MS);
		}
		goto out;
	}

	set_phase(r, "close the uffd");
	close(fx.uffd);
	fx.uffd = -1;
	if (!check_value(r, "fork-completes-after-close", forker_done(&f, WAIT_MS), 1,
			 "fork() returned within %u ms of closing the uffd", WAIT_MS)) {
		r->stuck = true;
		return;
	}
	pthread_join(t, NULL);
	if (!check_errno(r, "fork", f.err, 0, "clone(CLONE_FILES | SIGCHLD)"))
		goto out;
	if (!child_checks(&fx, &f)) {
		kill(f.pid, SIGKILL);
		reap_child(f.pid, &status, WAIT_MS);
	}

	set_phase(r, "parent checks after the child");
	check_wp_bits(r, "parent-wp-bit-clear-after-release", fx.a.base, fx.a.size, false);
	check_data(&fx, "parent-sees-child-writes", fx.a.base, NULL, GEN_CHILD);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-child-writes", fx.a.alias, NULL, GEN_CHILD);
	check_value(r, "handler-saw-nothing", (long long)handler_stats(&fx.h).received, 0,
		    "uffd messages before the handler stopped");
out:
	for (int i = 0; i < 2; i++)
		if (f.c2p[i] >= 0)
			close(f.c2p[i]);
	if (f.stack)
		munmap(f.stack, CHILD_STACK);
	fx_teardown(&fx);
}
