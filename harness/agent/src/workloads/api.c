/*
 * api: the edges of opening and configuring a userfaultfd (fs/userfaultfd.c, 6.1):
 *   api-       UFFDIO_API copies the struct in and out: an unreadable argument is EFAULT,
 *              an unknown feature bit is EINVAL with the struct zeroed, a read-only one
 *              (valid request) is EFAULT and leaves the uffd unconfigured (a second API
 *              then works);
 *   fdinfo-    /proc/self/fdinfo of a uffd: "API:" shows UFFD_API, the features asked
 *              for and the ioctls UFFDIO_API reported; "pending:" and "total:" follow a
 *              fault (1/1 while blocked and unread, 0/1 once read, 0/0 once resolved);
 *   dev-       /dev/userfaultfd: USERFAULTFD_IOC_NEW gives a working uffd, unknown flags
 *              and an unknown ioctl are EINVAL;
 *   user-      a process without capabilities (setuid nobody) with
 *              vm.unprivileged_userfaultfd=0: userfaultfd(0) is EPERM,
 *              UFFD_USER_MODE_ONLY is allowed, and EVENT_FORK in its UFFDIO_API is EPERM;
 *              with the sysctl at 1, userfaultfd(0) is allowed;
 *   limit-     with no descriptor left (RLIMIT_NOFILE), userfaultfd() is EMFILE;
 *   ioctl-     the argument checks every range ioctl makes before it looks at memory:
 *              an unreadable argument is EFAULT, an unaligned start EINVAL (REGISTER,
 *              UNREGISTER, WAKE, COPY, ZEROPAGE, CONTINUE); REGISTER of a hole between
 *              mappings is EINVAL, of a shared mapping without write access (VM_MAYWRITE)
 *              EPERM; UNREGISTER over the vDSO (a VMA uffd cannot handle) is EINVAL; a
 *              COPY whose source wraps around is EINVAL; two adjacent registrations
 *              merge into one VMA.
 * Memory-independent: listed for anon only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access.h"
#include "fixture.h"
#include "uffd.h"
#include "util.h"

#define SYSCTL "/proc/sys/vm/unprivileged_userfaultfd"
#define NOBODY 65534

static int sys_uffd(int flags)
{
	return (int)syscall(SYS_userfaultfd, flags);
}

static int api_ioctl(int fd, void *arg)
{
	return ioctl(fd, UFFDIO_API, arg) ? errno : 0;
}

static void api_errors(struct result *r)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 1ULL << 62 };
	struct uffdio_api *ro;
	int fd = sys_uffd(O_CLOEXEC);

	check_prefix(r, "api-");
	if (!check_errno(r, "open", fd < 0 ? errno : 0, 0, "userfaultfd(O_CLOEXEC)"))
		goto out;
	check_errno(r, "unreadable-arg-efault", api_ioctl(fd, (void *)8), EFAULT, "UFFDIO_API at address 8");
	check_errno(r, "unknown-feature-einval", api_ioctl(fd, &api), EINVAL, "UFFDIO_API with feature bit 62");
	check_value(r, "unknown-feature-zeroes", (long long)(api.api | api.features | api.ioctls), 0,
		    "api|features|ioctls after the refused UFFDIO_API");
	ro = mmap(NULL, BASE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!check_errno(r, "map-buffer", ro == MAP_FAILED ? errno : 0, 0, "mmap a page for the argument"))
		goto out_fd;
	ro->api = UFFD_API;
	mprotect(ro, BASE_PAGE, PROT_READ);
	check_errno(r, "readonly-arg-efault", api_ioctl(fd, ro), EFAULT, "UFFDIO_API on a read-only struct");
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	check_errno(r, "after-efault-api-works", api_ioctl(fd, &api), 0,
		    "UFFDIO_API once the read-only attempt failed");
	munmap(ro, BASE_PAGE);
out_fd:
	close(fd);
out:
	check_prefix(r, "");
}

/* pending, total and the "API:" fields of a uffd's fdinfo; false if unreadable. */
static bool fdinfo(int fd, long *pending, long *total, uint64_t *api, uint64_t *features, uint64_t *ioctls)
{
	char path[64], buf[1024];
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return false;
	p = strstr(buf, "pending:");
	if (!p || sscanf(p, "pending:\t%ld\ntotal:\t%ld\nAPI:\t%" SCNx64 ":%" SCNx64 ":%" SCNx64, pending, total,
			 api, features, ioctls) != 5)
		return false;
	return true;
}

static void check_counts(struct result *r, int fd, const char *name, long want_pending, long want_total)
{
	long pending = -1, total = -1;
	uint64_t api, features, ioctls;
	char what[64];

	fdinfo(fd, &pending, &total, &api, &features, &ioctls);
	snprintf(what, sizeof(what), "%s-pending", name);
	check_value(r, what, pending, want_pending, "fdinfo pending: (faults queued, unread)");
	snprintf(what, sizeof(what), "%s-total", name);
	check_value(r, what, total, want_total, "fdinfo total: (faults waiting, read or not)");
}

static void fdinfo_counts(struct run *run)
{
	struct result *r = run->r;
	uint64_t want = UFFD_FEATURE_EVENT_REMOVE, got = 0, api = 0, features = 0, ioctls = 0, reported;
	uint64_t offered = 0, api_ioctls = 0;
	long pending, total;
	struct uffd_msg msg;
	struct solo *s;
	struct fx fx;
	int fd, err;
	int64_t out;

	check_prefix(r, "fdinfo-");
	if (!check_errno(r, "probe", -uffd_probe(&offered, &api_ioctls, NULL, 0), 0, "UFFDIO_API probe"))
		goto out;
	if (!fx_setup(&fx, run, 1, 0, 0, 0, 0))
		goto out;
	fd = uffd_new(want, &got, NULL, 0);
	if (!check_errno(r, "open", fd < 0 ? -fd : 0, 0, "userfaultfd + UFFDIO_API(EVENT_REMOVE)"))
		goto out_fx;
	if (!check_errno(r, "register", -uffd_register(fd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MISSING,
						       &reported), 0, "UFFDIO_REGISTER MISSING"))
		goto out_fd;
	if (check_value(r, "readable", fdinfo(fd, &pending, &total, &api, &features, &ioctls), 1,
			"/proc/self/fdinfo of the uffd has pending:, total:, API:")) {
		check_value(r, "api-version", (long long)api, UFFD_API, "fdinfo API: version field");
		check_value(r, "api-features", (long long)(features & want), (long long)want,
			    "requested features shown in fdinfo API: (0x%" PRIx64 ")", features);
		check_value(r, "api-ioctls", (long long)((ioctls & api_ioctls) == api_ioctls), 1,
			    "fdinfo API: ioctls 0x%" PRIx64 " include UFFDIO_API's 0x%" PRIx64, ioctls, api_ioctls);
	}
	check_counts(r, fd, "idle", 0, 0);
	s = solo_start(r, &fx.a, fx.a.base, 0, run->seed, GEN_INITIAL, false, &err);
	check_errno(r, "reader", s ? 0 : err, 0, "start a reader thread");
	/* On the check's result alone (perturbed by prove) the area would be unmapped under a
	 * reader still asleep in its fault. */
	if (!s)
		goto out_fd;
	if (check_value(r, "reader-blocks", solo_blocked(s, WAIT_MS), 1, "reader asleep in the MISSING fault")) {
		check_counts(r, fd, "blocked", 1, 1);
		check_errno(r, "read-message", read(fd, &msg, sizeof(msg)) == sizeof(msg) ? 0 : errno, 0,
			    "read() the fault message");
		check_counts(r, fd, "read", 0, 1);
	}
	uffd_zeropage(fd, fx.a.base, fx.a.psize, 0, &out);
	if (check_value(r, "reader-completes", solo_finished(s, WAIT_MS), 1, "reader done after ZEROPAGE")) {
		solo_free(s);
		check_counts(r, fd, "resolved", 0, 0);
	}
out_fd:
	close(fd);
out_fx:
	fx_teardown(&fx);
out:
	check_prefix(r, "");
}

static void dev_node(struct result *r)
{
	struct uffdio_api api = { .api = UFFD_API };
	int dev, fd;

	check_prefix(r, "dev-");
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		note(r, "/dev/userfaultfd not tested: %s (kernels before 6.1 have none)", strerror(errno));
		goto out;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	if (check_errno(r, "ioc-new", fd < 0 ? errno : 0, 0, "USERFAULTFD_IOC_NEW(O_CLOEXEC)")) {
		check_errno(r, "new-uffd-api", api_ioctl(fd, &api), 0, "UFFDIO_API on the new uffd");
		close(fd);
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, 0x2);
	check_errno(r, "ioc-new-bad-flags", fd < 0 ? errno : 0, EINVAL, "USERFAULTFD_IOC_NEW with flag 0x2");
	if (fd >= 0)
		close(fd);
	check_errno(r, "unknown-ioctl", ioctl(dev, _IO(0xAA, 0x3f), 0) ? errno : 0, EINVAL,
		    "an unknown ioctl on /dev/userfaultfd");
	close(dev);
out:
	check_prefix(r, "");
}

/*
 * In a child that setuid()s to nobody (no capabilities left): the errno (0: success) of
 * userfaultfd(0), userfaultfd(UFFD_USER_MODE_ONLY), and UFFDIO_API with EVENT_FORK on
 * the latter, written to the pipe; false if the child did not report.
 */
static bool unprivileged(int errs[3])
{
	int p[2], st;
	pid_t pid;
	bool ok;

	if (pipe(p))
		return false;
	pid = fork();
	if (pid == 0) {
		struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_FORK };
		int e[3] = { -1, -1, -1 }, fd;

		if (!setgid(NOBODY) && !setuid(NOBODY)) {
			fd = sys_uffd(O_CLOEXEC);
			e[0] = fd < 0 ? errno : 0;
			fd = sys_uffd(O_CLOEXEC | UFFD_USER_MODE_ONLY);
			e[1] = fd < 0 ? errno : 0;
			e[2] = fd < 0 ? -1 : api_ioctl(fd, &api);
		}
		_exit(write(p[1], e, sizeof(e)) == sizeof(e) ? 0 : 1);
	}
	close(p[1]);
	ok = pid > 0 && read_within(p[0], errs, 3 * sizeof(int), WAIT_MS);
	close(p[0]);
	if (pid > 0)
		reap_child(pid, &st, WAIT_MS);
	return ok;
}

static bool set_sysctl(const char *value)
{
	int fd = open(SYSCTL, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, value, 1) == 1;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void user_access(struct result *r)
{
	char old[16] = "";
	int errs[3];

	check_prefix(r, "user-");
	if (geteuid() != 0 || read_text(SYSCTL, old, sizeof(old)) < 1 || !set_sysctl("0")) {
		note(r, "unprivileged userfaultfd not tested: needs root and a writable " SYSCTL);
		goto out;
	}
	if (check_value(r, "child-reports", unprivileged(errs), 1, "setuid(nobody) child reported")) {
		check_errno(r, "kernel-faults-eperm", errs[0], EPERM,
			    "userfaultfd(0) without CAP_SYS_PTRACE, unprivileged_userfaultfd=0");
		check_errno(r, "user-mode-only-allowed", errs[1], 0, "userfaultfd(UFFD_USER_MODE_ONLY)");
		check_errno(r, "event-fork-eperm", errs[2], EPERM,
			    "UFFDIO_API with EVENT_FORK without CAP_SYS_PTRACE");
	}
	if (set_sysctl("1") && check_value(r, "child-reports-sysctl-1", unprivileged(errs), 1,
					   "setuid(nobody) child reported, unprivileged_userfaultfd=1"))
		check_errno(r, "sysctl-allows-kernel-faults", errs[0], 0,
			    "userfaultfd(0) without CAP_SYS_PTRACE, unprivileged_userfaultfd=1");
	set_sysctl(old);
out:
	check_prefix(r, "");
}

static void fd_limit(struct result *r)
{
	int p[2], e = -1, st;
	pid_t pid;

	check_prefix(r, "limit-");
	if (pipe(p))
		goto out;
	pid = fork();
	if (pid == 0) {
		struct rlimit rl;
		int fd = -1;

		/* Lower the limit to the descriptors in use, then fill any gap below it. */
		rl.rlim_cur = rl.rlim_max = 16;
		setrlimit(RLIMIT_NOFILE, &rl);
		while ((fd = dup(p[1])) >= 0)
			;
		fd = sys_uffd(O_CLOEXEC);
		e = fd < 0 ? errno : 0;
		_exit(write(p[1], &e, sizeof(e)) == sizeof(e) ? 0 : 1);
	}
	close(p[1]);
	if (check_value(r, "child-reports", pid > 0 && read_within(p[0], &e, sizeof(e), WAIT_MS), 1,
			"child with every descriptor in use reported"))
		check_errno(r, "no-fd-emfile", e, EMFILE, "userfaultfd() with RLIMIT_NOFILE reached");
	close(p[0]);
	if (pid > 0)
		reap_child(pid, &st, WAIT_MS);
out:
	check_prefix(r, "");
}

static int ioctl_errno(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? errno : 0;
}

/* The [start, end) of the first /proc/self/maps line containing tag; false if none. */
static bool find_mapping(const char *tag, uintptr_t *start, uintptr_t *end)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, tag) && sscanf(line, "%" SCNxPTR "-%" SCNxPTR, start, end) == 2;
	if (f)
		fclose(f);
	return found;
}

/* How many /proc/self/maps lines overlap [a, a+len). */
static long long vmas_over(const char *a, size_t len)
{
	uintptr_t lo = (uintptr_t)a, hi = lo + len, s, e;
	char line[512];
	long long n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &s, &e) == 2 && s < hi && e > lo)
			n++;
	if (f)
		fclose(f);
	return f ? n : -1;
}

static void ioctl_errors(struct result *r)
{
	static const struct {
		const char *name;
		unsigned long cmd;
	} cmds[] = {
		{ "register", UFFDIO_REGISTER }, { "unregister", UFFDIO_UNREGISTER }, { "wake", UFFDIO_WAKE },
		{ "copy", UFFDIO_COPY },	 { "zeropage", UFFDIO_ZEROPAGE },	  { "continue", UFFDIO_CONTINUE },
	};
	/* Each ioctl's struct starts with a range (or dst) the unaligned case spoils. */
	union {
		struct uffdio_register reg;
		struct uffdio_range range;
		struct uffdio_copy copy;
		struct uffdio_zeropage zero;
		struct uffdio_continue cont;
	} arg;
	char name[64], *m, *ro;
	uintptr_t vs, ve;
	uint64_t ioctls;
	int fd = uffd_new(0, NULL, NULL, 0), memfd, rofd;

	check_prefix(r, "ioctl-");
	if (!check_errno(r, "open", fd < 0 ? -fd : 0, 0, "userfaultfd + UFFDIO_API"))
		goto out;
	m = mmap(NULL, 4 * BASE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!check_errno(r, "map", m == MAP_FAILED ? errno : 0, 0, "mmap 4 pages"))
		goto out_fd;
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		snprintf(name, sizeof(name), "%s-unreadable-arg-efault", cmds[i].name);
		check_errno(r, name, ioctl_errno(fd, cmds[i].cmd, (void *)8), EFAULT, "argument at address 8");
		memset(&arg, 0, sizeof(arg));
		arg.range.start = (uintptr_t)m + 1;
		arg.range.len = BASE_PAGE;
		arg.reg.mode = cmds[i].cmd == UFFDIO_REGISTER ? UFFDIO_REGISTER_MODE_MISSING : 0;
		if (cmds[i].cmd == UFFDIO_COPY)
			arg.copy.src = (uintptr_t)m;
		snprintf(name, sizeof(name), "%s-unaligned-einval", cmds[i].name);
		check_errno(r, name, ioctl_errno(fd, cmds[i].cmd, &arg), EINVAL, "range starting 1 byte into a page");
	}
	memset(&arg, 0, sizeof(arg));
	arg.copy.dst = (uintptr_t)m;
	arg.copy.src = ~0ULL & ~(uint64_t)(BASE_PAGE - 1);
	arg.copy.len = BASE_PAGE;
	check_errno(r, "copy-wrapping-src-einval", ioctl_errno(fd, UFFDIO_COPY, &arg), EINVAL,
		    "UFFDIO_COPY from the last page of the address space (src + len wraps)");

	/* A hole: the middle two pages of the four, unmapped. */
	munmap(m + BASE_PAGE, 2 * BASE_PAGE);
	check_errno(r, "register-hole-einval",
		    -uffd_register(fd, m + BASE_PAGE, 2 * BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls), EINVAL,
		    "UFFDIO_REGISTER of an unmapped gap between two mappings");
	check_errno(r, "unregister-hole-einval", -uffd_unregister(fd, m + BASE_PAGE, 2 * BASE_PAGE), EINVAL,
		    "UFFDIO_UNREGISTER of the same gap");
	munmap(m, 4 * BASE_PAGE);

	if (find_mapping("[vdso]", &vs, &ve))
		check_errno(r, "unregister-vdso-einval", -uffd_unregister(fd, (void *)vs, ve - vs), EINVAL,
			    "UFFDIO_UNREGISTER over the vDSO");
	else
		note(r, "no [vdso] mapping: UNREGISTER over it not tested");

	memfd = memfd_create("uffd-api", MFD_CLOEXEC);
	snprintf(name, sizeof(name), "/proc/self/fd/%d", memfd);
	if (memfd >= 0 && !ftruncate(memfd, BASE_PAGE) && (rofd = open(name, O_RDONLY | O_CLOEXEC)) >= 0) {
		ro = mmap(NULL, BASE_PAGE, PROT_READ, MAP_SHARED, rofd, 0);
		if (check_errno(r, "map-readonly-file", ro == MAP_FAILED ? errno : 0, 0,
				"mmap(MAP_SHARED) of a read-only descriptor of a memfd")) {
			check_errno(r, "register-not-maywrite-eperm",
				    -uffd_register(fd, ro, BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls), EPERM,
				    "UFFDIO_REGISTER of a shared mapping that can never be written");
			munmap(ro, BASE_PAGE);
		}
		close(rofd);
	} else {
		check_errno(r, "memfd", errno, 0, "memfd_create, ftruncate, reopen read-only");
	}
	if (memfd >= 0)
		close(memfd);

	m = mmap(NULL, 2 * BASE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (check_errno(r, "map-pair", m == MAP_FAILED ? errno : 0, 0, "mmap 2 pages")) {
		/* Registering half splits the VMA; registering the other half merges it back. */
		uffd_register(fd, m, BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
		check_value(r, "register-half-splits", vmas_over(m, 2 * BASE_PAGE), 2,
			    "VMAs over the 2 pages after registering the first");
		check_errno(r, "register-other-half",
			    -uffd_register(fd, m + BASE_PAGE, BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls), 0,
			    "UFFDIO_REGISTER of the second page");
		check_value(r, "register-adjacent-merges", vmas_over(m, 2 * BASE_PAGE), 1,
			    "VMAs over the 2 pages after registering both halves alike");
		munmap(m, 2 * BASE_PAGE);
	}
out_fd:
	close(fd);
out:
	check_prefix(r, "");
}

void api(struct run *run)
{
	api_errors(run->r);
	fdinfo_counts(run);
	dev_node(run->r);
	user_access(run->r);
	fd_limit(run->r);
	ioctl_errors(run->r);
}
