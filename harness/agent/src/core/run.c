#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uffd.h"
#include "util.h"

static void runner(const struct workload *w, enum mem_type m, struct result *r)
{
	struct run run = {
		.r = r,
		.mem = m,
		.pages = r->pages ? r->pages : mem_info(m)->default_pages,
		.threads = r->threads,
		.seed = r->seed,
	};
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	set_phase(r, "probe userfaultfd");
	rc = uffd_probe(&run.features, NULL, r->uffd_source, sizeof(r->uffd_source));
	if (rc) {
		/* A skip here; the harness decides from the kernel's config whether it is a failure. */
		snprintf(r->probe_error, sizeof(r->probe_error), "%s", errno_name(-rc));
		skip(r, "userfaultfd unavailable: %s (%s)", errno_name(-rc),
		     rc == -ENOSYS ? "kernel built without CONFIG_USERFAULTFD"
				   : "needs CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or /dev/userfaultfd access");
		return;
	}
	w->fn(&run);
}

/* Wait for the runner to exit, without reaping it, for at most ms. */
static bool wait_exit(pid_t pid, unsigned ms)
{
	uint64_t until = now_ns() + ms * 1000000ULL;

	for (;;) {
		siginfo_t si = { 0 };

		if (!waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) && si.si_pid == pid)
			return true;
		if (now_ns() >= until)
			return false;
		sleep_ms(2);
	}
}

static void supervise(pid_t pid, const struct opts *o, struct result *r)
{
	bool exited = wait_exit(pid, (o->timeout_s + o->seconds) * 1000U);
	int status = 0;

	/* The runner's group (it and the children it forked) goes before the runner is
	 * reaped, so the group id cannot have been reused by then. */
	kill(-pid, SIGKILL);
	if (!exited) {
		bool died = wait_exit(pid, 5000);

		snprintf(r->failure, sizeof(r->failure), "timed out in %s after %u s%s",
			 r->phase[0] ? r->phase : "startup", o->timeout_s + o->seconds,
			 died ? "" : "; the runner did not die on SIGKILL (stuck in the kernel)");
		if (!died)
			return;
	}
	waitpid(pid, &status, 0);
	if (r->failure[0])
		return;
	if (WIFSIGNALED(status))
		snprintf(r->failure, sizeof(r->failure), "runner killed by %s in %s", signal_name(WTERMSIG(status)),
			 r->phase);
	else if (WEXITSTATUS(status))
		snprintf(r->failure, sizeof(r->failure), "runner exited with status %d in %s", WEXITSTATUS(status),
			 r->phase);
}

void run_one(const struct workload *w, enum mem_type m, const struct opts *o, struct result *out)
{
	struct result *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t t0 = now_ns();
	pid_t pid;

	if (r == MAP_FAILED) {
		memset(out, 0, sizeof(*out));
		snprintf(out->failure, sizeof(out->failure), "mmap of the result page: %s", errno_name(errno));
		return;
	}
	snprintf(r->workload, sizeof(r->workload), "%s", w->name);
	snprintf(r->mem, sizeof(r->mem), "%s", mem_info(m)->name);
	r->pages = o->pages;
	r->threads = o->threads;
	r->seed = o->seed;
	r->timeout_s = o->timeout_s;
	r->seconds = o->seconds;
	snprintf(r->inject, sizeof(r->inject), "%s", o->inject ? o->inject : "");
	snprintf(r->sabotage, sizeof(r->sabotage), "%s", o->sabotage ? o->sabotage : "");

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		runner(w, m, r);
		_exit(0);
	}
	if (pid < 0) {
		snprintf(r->failure, sizeof(r->failure), "fork: %s", errno_name(errno));
	} else {
		setpgid(pid, pid);
		supervise(pid, o, r);
	}
	r->duration_s = (double)(now_ns() - t0) / 1e9;
	*out = *r;
	munmap(r, sizeof(*r));
}
