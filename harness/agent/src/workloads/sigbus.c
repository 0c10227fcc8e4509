/*
 * sigbus: with UFFD_FEATURE_SIGBUS a missing fault raises SIGBUS in the faulting thread
 * instead of a message. Every first touch (loads from even pages, stores to odd ones)
 * must raise SIGBUS at the touched address; after UFFDIO_COPY the same touch succeeds.
 * With UFFD_FEATURE_EVENT_FORK the child's registration keeps the mode: its touches of
 * missing pages raise SIGBUS too, and no message reaches the child's uffd. Where uffd-wp
 * is available, a store to a page COPY'd with COPY_MODE_WP raises SIGBUS too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

static sigjmp_buf *bus_jmp;
static volatile uintptr_t bus_addr;
static volatile int bus_code;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_addr = (uintptr_t)si->si_addr;
	bus_code = si->si_code;
	siglongjmp(*bus_jmp, 1);
}

/* One load or store; true if it raised SIGBUS. Async-signal-safe: the child uses it. */
static bool touch(char *p, bool store, uint64_t v)
{
	sigjmp_buf env;

	bus_jmp = &env;
	if (sigsetjmp(env, 1))
		return true;
	if (store)
		*(volatile uint64_t *)p = v;
	else
		(void)*(volatile uint64_t *)p;
	return false;
}

struct tally {
	size_t sigbus, wrong_addr, wrong_code, copy_errors, retry_sigbus;
	int copy_errno;
};

/* Fault page p in by hand: touch (SIGBUS), UFFDIO_COPY generation GEN_INITIAL, touch again. */
static void serve_by_hand(struct fx *fx, size_t p, char *src, struct tally *t)
{
	const struct area *a = &fx->a;
	size_t spp = subpages_per_page(a), first = p * spp + p % spp;
	char *addr = first_touch(a, a->base, p);
	uint64_t v = stamp(fx->run->seed, GEN_WRITTEN, first);
	bool store = p % 2;
	int rc;

	bus_addr = 0;
	bus_code = 0;
	if (touch(addr, store, v)) {
		t->sigbus++;
		t->wrong_addr += bus_addr != (uintptr_t)addr;
		t->wrong_code += bus_code != BUS_ADRERR;
	}
	for (size_t s = 0; s < spp; s++)
		*stamp_at(src, s) = stamp(fx->run->seed, GEN_INITIAL, p * spp + s);
	rc = uffd_copy(fx->uffd, a->base + p * a->psize, src, a->psize, 0, NULL);
	if (rc) {
		t->copy_errors++;
		t->copy_errno = -rc;
	}
	if (touch(addr, store, v)) {
		t->retry_sigbus++;
		return;
	}
	for (size_t s = p * spp; store && s < (p + 1) * spp; s++)
		*stamp_at(a->base, s) = stamp(fx->run->seed, GEN_WRITTEN, s);
}

static void parent_touches(struct fx *fx)
{
	struct result *r = fx->r;
	struct tally t = { 0 };
	size_t n, *pages = page_list(fx->a.npages, PAGES_ALL, fx->run->seed, &n);
	char *src = calloc(1, fx->a.psize);
	unsigned *gens = malloc(fx->a.npages * sizeof(*gens));

	if (!src || !gens)
		abort();
	set_phase(r, "touch every page, expecting SIGBUS");
	for (size_t i = 0; i < n; i++)
		serve_by_hand(fx, pages[i], src, &t);
	check_value(r, "every-touch-sigbus", (long long)t.sigbus, (long long)n, "SIGBUS on first touches of %zu pages", n);
	check_value(r, "sigbus-at-touched-address", (long long)t.wrong_addr, 0, "SIGBUS whose si_addr was not the touch");
	check_value(r, "sigbus-code-is-adrerr", (long long)t.wrong_code, 0, "SIGBUS whose si_code was not BUS_ADRERR");
	check_errno(r, "copies-succeed", t.copy_errors ? t.copy_errno : 0, 0, "UFFDIO_COPY after each SIGBUS (%zu failed)",
		    t.copy_errors);
	check_value(r, "retries-succeed", (long long)t.retry_sigbus, 0, "SIGBUS on touches after UFFDIO_COPY");
	check_value(r, "no-fault-messages", (long long)handler_stats(&fx->h).received, 0,
		    "uffd messages (SIGBUS mode sends none)");
	for (size_t i = 0; i < fx->a.npages; i++)
		gens[i] = i % 2 ? GEN_WRITTEN : GEN_INITIAL;
	check_data(fx, "data-intact", fx->a.base, gens, 0);
	free(gens);
	free(src);
	free(pages);
}

/* Drop every page again, so the child starts from missing pages. */
static bool zap(struct fx *fx)
{
	bool shared = mem_info(fx->a.type)->shared;
	int rc = madvise(fx->a.base, fx->a.size, shared ? MADV_REMOVE : MADV_DONTNEED) ? errno : 0;

	return check_errno(fx->r, "zap", rc, 0, "madvise(%s)", shared ? "MADV_REMOVE" : "MADV_DONTNEED");
}

static void child_touches(struct fx *fx)
{
	struct result *r = fx->r;
	uint64_t count = 0;
	int pipefd[2], status = 0;
	struct hstats s;
	pid_t pid;
	bool ok;

	check_prefix(r, "child-");
	if (!zap(fx) || !check_errno(r, "pipe", pipe2(pipefd, O_CLOEXEC) ? errno : 0, 0, "pipe2"))
		return;
	set_phase(r, "fork; the child touches every page");
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (size_t p = 0; p < fx->a.npages; p++)
			count += touch(first_touch(&fx->a, fx->a.base, p), false, 0);
		_exit(write(pipefd[1], &count, sizeof(count)) == (ssize_t)sizeof(count) ? 0 : 1);
	}
	close(pipefd[1]);
	if (!check_errno(r, "fork", pid < 0 ? errno : 0, 0, "fork()")) {
		close(pipefd[0]);
		return;
	}
	ok = read_within(pipefd[0], &count, sizeof(count), WAIT_MS);
	close(pipefd[0]);
	if (!check_value(r, "reports", ok, 1, "the child's report within %u ms%s%s", WAIT_MS, ok ? "" : ": ",
			 ok ? "" : child_fate(pid))) {
		kill(pid, SIGKILL);
		reap_child(pid, &status, WAIT_MS);
		return;
	}
	check_value(r, "exits", reap_child(pid, &status, WAIT_MS), 1, "child exited within %u ms", WAIT_MS);
	check_value(r, "every-touch-sigbus", (long long)count, (long long)fx->a.npages,
		    "SIGBUS on the child's first touches of %zu pages", fx->a.npages);
	handler_wait_event(&fx->h, UFFD_EVENT_FORK, 1, WAIT_MS);
	s = handler_stats(&fx->h);
	check_value(r, "fork-event-delivered", (long long)s.forks, 1, "UFFD_EVENT_FORK messages");
	check_value(r, "no-fault-messages", (long long)s.child_faults, 0, "fault messages on the child's uffd");
}

/*
 * SIGBUS mode covers write-protect faults too: a page COPY'd with COPY_MODE_WP (bit 57
 * set) raises SIGBUS on a store, at the stored address, and none on a load; once
 * unprotected the store goes through.
 */
static void wp_touches(struct fx *fx)
{
	struct result *r = fx->r;
	const struct area *a = &fx->a;
	char *src = calloc(1, a->psize), *addr = a->base + 8;
	uint64_t before = handler_stats(&fx->h).received; /* the child part's FORK event */
	int rc;

	if (!src)
		abort();
	set_phase(r, "store to a write-protected page, expecting SIGBUS");
	check_prefix(r, "wp-");
	if (!zap(fx))
		goto out;
	rc = uffd_register(fx->uffd, a->base, a->size, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL);
	if (!check_errno(r, "register", -rc, 0, "UFFDIO_REGISTER(MISSING|WP) over the SIGBUS-mode range"))
		goto out;
	rc = uffd_copy(fx->uffd, a->base, src, a->psize, UFFDIO_COPY_MODE_WP, NULL);
	if (!check_errno(r, "copy", -rc, 0, "UFFDIO_COPY_MODE_WP of page 0"))
		goto out;
	check_wp_bits(r, "bit-set", a->base, a->psize, true);
	check_value(r, "load-no-sigbus", touch(addr, false, 0), 0, "SIGBUS on a load from the protected page");
	bus_addr = 0;
	bus_code = 0;
	check_value(r, "store-sigbus", touch(addr, true, 1), 1, "SIGBUS on a store to the protected page");
	check_value(r, "sigbus-at-stored-address", bus_addr == (uintptr_t)addr, 1, "si_addr of that SIGBUS (0x%llx)",
		    (unsigned long long)bus_addr);
	check_value(r, "sigbus-code-is-adrerr", bus_code, BUS_ADRERR, "si_code of that SIGBUS");
	if (fx_protect(fx, "unprotect", a->base, a->psize, false)) {
		check_value(r, "store-after-unprotect", touch(addr, true, 1), 0, "SIGBUS on a store after unprotecting");
		check_value(r, "store-lands", *(volatile uint64_t *)addr, 1, "the stored value read back");
	}
	check_value(r, "no-fault-messages", (long long)(handler_stats(&fx->h).received - before), 0,
		    "uffd messages during this part (SIGBUS mode sends none)");
out:
	check_prefix(r, "");
	free(src);
}

void sigbus(struct run *run)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	const char *no_fork = fork_event_unusable(run);
	uint64_t features = UFFD_FEATURE_SIGBUS | (no_fork ? 0 : UFFD_FEATURE_EVENT_FORK);
	struct fx fx;

	if (!need_features(run, UFFD_FEATURE_SIGBUS | missing_features(run->mem)) ||
	    !fx_setup(&fx, run, 0, 0, features, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	sigemptyset(&sa.sa_mask);
	if (!check_errno(run->r, "install-handler", sigaction(SIGBUS, &sa, NULL) ? errno : 0, 0, "sigaction(SIGBUS)"))
		goto out;
	parent_touches(&fx);
	if (no_fork)
		note(run->r, "child- part not run: %s", no_fork);
	else
		child_touches(&fx);
	check_prefix(run->r, "");
	if (wp_usable(run))
		wp_touches(&fx);
	else
		note(run->r, "wp- part not run: kernel lacks uffd-wp for this memory type");
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
}
