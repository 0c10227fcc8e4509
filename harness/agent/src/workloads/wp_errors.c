/*
 * wp-errors: the error contract of UFFDIO_WRITEPROTECT (and of the REGISTER and API
 * calls it depends on). Nothing a failed call touches may end up protected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

/* TASK_SIZE of x86-64 with 4-level paging: REGISTER past it is EINVAL for the range alone. */
#define USER_TOP 0x7ffffffff000ULL
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* One page registered MISSING only, one not registered, then a hole where two were. */
static void foreign_ranges(struct fx *fx)
{
	struct result *r = fx->r;
	char *m = mmap(NULL, 4 * BASE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t wp = UFFDIO_WRITEPROTECT_MODE_WP;

	if (!check_errno(r, "map-helper-pages", m == MAP_FAILED ? errno : 0, 0, "mmap 4 anonymous pages"))
		return;
	if (check_errno(r, "register-missing-helper",
			-uffd_register(fx->uffd, m, BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, NULL), 0,
			"UFFDIO_REGISTER(MODE_MISSING) of a helper page"))
		check_errno(r, "wp-on-missing-only-range-is-enoent", -uffd_writeprotect(fx->uffd, m, BASE_PAGE, wp),
			    ENOENT, "WRITEPROTECT on a page registered without MODE_WP");
	check_errno(r, "wp-on-unregistered-range-is-enoent",
		    -uffd_writeprotect(fx->uffd, m + BASE_PAGE, BASE_PAGE, wp), ENOENT,
		    "WRITEPROTECT on a page no uffd registered");
	check_errno(r, "register-mode-zero-is-einval", -uffd_register(fx->uffd, m + BASE_PAGE, BASE_PAGE, 0, NULL),
		    EINVAL, "UFFDIO_REGISTER with mode 0");
	check_errno(r, "register-unknown-mode-is-einval",
		    -uffd_register(fx->uffd, m + BASE_PAGE, BASE_PAGE, 1ULL << 7, NULL), EINVAL,
		    "UFFDIO_REGISTER with mode bit 7");
	munmap(m + 2 * BASE_PAGE, 2 * BASE_PAGE);
	check_errno(r, "wp-on-unmapped-range-is-enoent",
		    -uffd_writeprotect(fx->uffd, m + 2 * BASE_PAGE, 2 * BASE_PAGE, wp), ENOENT,
		    "WRITEPROTECT on a range with no mapping");
	munmap(m, 2 * BASE_PAGE);
}

/* The end of the highest mapping below the 47-bit user limit (from /proc/self/maps), or 0. */
static uintptr_t top_of_mappings(void)
{
	size_t size = 1 << 20;
	char *text = malloc(size), *line;
	uintptr_t top = 0;

	if (!text)
		abort();
	if (read_text("/proc/self/maps", text, size) > 0)
		for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			unsigned long long from, to;

			if (sscanf(line, "%llx-%llx", &from, &to) == 2 && to <= USER_TOP && to > top)
				top = (uintptr_t)to;
		}
	free(text);
	return top;
}

/*
 * REGISTER and UNREGISTER of a page above every mapping: no VMA at all is found. EINVAL
 * (6.1 says ENOMEM: its lookup fails before the EINVAL is set); never success.
 */
static void above_every_mapping(struct fx *fx)
{
	struct result *r = fx->r;
	uintptr_t top = top_of_mappings();
	void *at = (void *)top;
	int rc;

	if (!top || top + BASE_PAGE > USER_TOP) {
		note(r, "no free page above every mapping (top 0x%llx): the no-VMA REGISTER not tried",
		     (unsigned long long)top);
		return;
	}
	rc = -uffd_register(fx->uffd, at, BASE_PAGE, UFFDIO_REGISTER_MODE_WP, NULL);
	check_value(r, "register-above-every-mapping-fails", rc == EINVAL || rc == ENOMEM, 1,
		    "UFFDIO_REGISTER of the page above every mapping: %s, want EINVAL (6.1: ENOMEM)",
		    rc ? errno_name(rc) : "success");
	rc = -uffd_unregister(fx->uffd, at, BASE_PAGE);
	check_value(r, "unregister-above-every-mapping-fails", rc == EINVAL || rc == ENOMEM, 1,
		    "UFFDIO_UNREGISTER of the page above every mapping: %s, want EINVAL (6.1: ENOMEM)",
		    rc ? errno_name(rc) : "success");
}

/*
 * A uffd whose process is gone: a child opens it, the parent takes a copy (pidfd_getfd),
 * the child exits. REGISTER and UNREGISTER on it find no mm to work on (mmget fails):
 * ENOMEM, never success.
 */
static void owner_gone(struct fx *fx)
{
	struct result *r = fx->r;
	int go[2], ready[2], pidfd = -1, fd = -1, status, rc;
	struct uffdio_api api = { .api = UFFD_API };
	pid_t pid;

	if (pipe2(go, O_CLOEXEC))
		return;
	if (pipe2(ready, O_CLOEXEC)) {
		close(go[0]);
		close(go[1]);
		return;
	}
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls: open a uffd, say its number, wait to be let go. */
		char c;
		int ufd;

		close(go[1]);
		close(ready[0]);
		ufd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

		if (ufd >= 0 && ioctl(ufd, UFFDIO_API, &api))
			ufd = -1;
		if (write(ready[1], &ufd, sizeof(ufd)) != (ssize_t)sizeof(ufd))
			_exit(1);
		_exit(read(go[0], &c, 1) < 0);
	}
	close(ready[1]);
	close(go[0]);
	if (!check_errno(r, "fork-uffd-owner", pid < 0 ? errno : 0, 0, "fork()"))
		goto out;
	if (read_within(ready[0], &fd, sizeof(fd), WAIT_MS) && fd >= 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	} else {
		fd = -1;
	}
	rc = fd < 0 ? errno : 0;
	close(go[1]);
	go[1] = -1;
	if (!check_value(r, "uffd-owner-exits", reap_child(pid, &status, WAIT_MS), 1,
			 "the uffd's owner exited within %u ms", WAIT_MS)) {
		kill(pid, SIGKILL);
		reap_child(pid, &status, WAIT_MS);
		goto out;
	}
	if (fd < 0) {
		note(r, "owner-gone part not run: no copy of the child's uffd (%s)", errno_name(rc));
		goto out;
	}
	rc = -uffd_register(fd, fx->a.base, fx->a.psize, UFFDIO_REGISTER_MODE_WP, NULL);
	check_value(r, "register-via-orphan-uffd-fails", rc == ENOMEM, 1,
		    "UFFDIO_REGISTER through a uffd whose process has exited: %s, want ENOMEM",
		    rc ? errno_name(rc) : "success");
	rc = -uffd_unregister(fd, fx->a.base, fx->a.psize);
	check_value(r, "unregister-via-orphan-uffd-fails", rc == ENOMEM, 1,
		    "UFFDIO_UNREGISTER through a uffd whose process has exited: %s, want ENOMEM",
		    rc ? errno_name(rc) : "success");
out:
	if (fd >= 0)
		close(fd);
	if (pidfd >= 0)
		close(pidfd);
	if (go[1] >= 0)
		close(go[1]);
	close(ready[0]);
}

static void bad_arguments(struct fx *fx)
{
	struct result *r = fx->r;
	char *base = fx->a.base;
	size_t ps = fx->a.psize;
	uint64_t wp = UFFDIO_WRITEPROTECT_MODE_WP;

	check_errno(r, "unknown-mode-bit-is-einval", -uffd_writeprotect(fx->uffd, base, ps, 1ULL << 2), EINVAL,
		    "WRITEPROTECT with mode bit 2");
	check_errno(r, "high-mode-bit-is-einval", -uffd_writeprotect(fx->uffd, base, ps, wp | 1ULL << 63), EINVAL,
		    "WRITEPROTECT with mode WP|bit 63");
	check_errno(r, "zero-length-is-einval", -uffd_writeprotect(fx->uffd, base, 0, wp), EINVAL,
		    "WRITEPROTECT of length 0");
	check_errno(r, "unaligned-start-is-einval", -uffd_writeprotect(fx->uffd, base + 1, ps, wp), EINVAL,
		    "WRITEPROTECT starting 1 byte into a page");
	/* Page aligned, so only the wrap itself can be what is wrong. */
	check_errno(r, "wrapping-range-is-einval", -uffd_writeprotect(fx->uffd, base, ~(size_t)(BASE_PAGE - 1), wp),
		    EINVAL, "WRITEPROTECT whose start+len wraps around");
	if (!mem_info(fx->a.type)->hugetlb)
		return;
	/* Inside the mapping: a range past its end is ENOENT on kernels that look the VMA up first. */
	check_errno(r, "hugetlb-unaligned-start-is-einval",
		    -uffd_writeprotect(fx->uffd, base + BASE_PAGE, ps - BASE_PAGE, wp), EINVAL,
		    "WRITEPROTECT of the last %zu kB of a %zu kB hugetlb page", (ps - BASE_PAGE) / KIB, ps / KIB);
	check_errno(r, "hugetlb-partial-length-is-einval", -uffd_writeprotect(fx->uffd, base, BASE_PAGE, wp), EINVAL,
		    "WRITEPROTECT of 4K of a %zu kB hugetlb page", ps / KIB);
	check_errno(r, "hugetlb-unaligned-register-is-einval",
		    -uffd_register(fx->uffd, base + BASE_PAGE, ps, UFFDIO_REGISTER_MODE_WP, NULL), EINVAL,
		    "UFFDIO_REGISTER starting 4K into a %zu kB hugetlb page", ps / KIB);
}

static void api_misuse(struct fx *fx)
{
	struct result *r = fx->r;
	char source[48];
	int fd;

	check_errno(r, "api-twice-is-einval", -uffd_api(fx->uffd, 0, NULL), EINVAL, "a second UFFDIO_API on one uffd");
	fd = uffd_open(source, sizeof(source));
	if (!check_errno(r, "open-second-uffd", fd < 0 ? -fd : 0, 0, "userfaultfd"))
		return;
	check_errno(r, "register-before-api-is-einval",
		    -uffd_register(fd, fx->a.base, fx->a.psize, UFFDIO_REGISTER_MODE_WP, NULL), EINVAL,
		    "UFFDIO_REGISTER before UFFDIO_API");
	close(fd);
}

void wp_errors(struct run *run)
{
	struct fx fx;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	set_phase(run->r, "error contract");
	foreign_ranges(&fx);
	above_every_mapping(&fx);
	owner_gone(&fx);
	bad_arguments(&fx);
	api_misuse(&fx);
	check_wp_bits(run->r, "failed-calls-protect-nothing", fx.a.base, fx.a.size, false);
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
