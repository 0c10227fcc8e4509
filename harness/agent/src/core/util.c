#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* splitmix64: cheap, and good enough that stamps never collide by accident. */
uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void shuffle(size_t *v, size_t n, uint64_t seed)
{
	uint64_t s = mix64(seed);

	for (size_t i = n; i > 1; i--) {
		s = mix64(s);
		size_t j = (size_t)(s % i);
		size_t t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

ssize_t read_text(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0)
		return -1;
	while (len + 1 < n) {
		ssize_t got = read(fd, buf + len, n - 1 - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

long long read_ll(const char *path, long long dflt)
{
	char buf[64];
	char *end;
	long long v;

	if (read_text(path, buf, sizeof(buf)) <= 0)
		return dflt;
	v = strtoll(buf, &end, 10);
	return end == buf ? dflt : v;
}

const char *read_choice(const char *path, char *out, size_t n)
{
	char text[256];
	char *open, *close;

	out[0] = '\0';
	if (read_text(path, text, sizeof(text)) <= 0)
		return out;
	open = strchr(text, '[');
	close = open ? strchr(open, ']') : NULL;
	if (open && close)
		snprintf(out, n, "%.*s", (int)(close - open - 1), open + 1);
	return out;
}

const char *errno_name(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
		{ 0, "success" },	{ EPERM, "EPERM" },   { ENOENT, "ENOENT" },	  { ESRCH, "ESRCH" },
		{ EINTR, "EINTR" },	{ EIO, "EIO" },	      { EBADF, "EBADF" },	  { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" },	{ EACCES, "EACCES" }, { EFAULT, "EFAULT" },	  { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" },	{ ENODEV, "ENODEV" }, { EINVAL, "EINVAL" },	  { ENOSPC, "ENOSPC" },
		{ ENOSYS, "ENOSYS" },	{ ENOTTY, "ENOTTY" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { EMFILE, "EMFILE" },
	};
	static __thread char other[24];

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].e == e)
			return names[i].name;
	snprintf(other, sizeof(other), "errno %d", e);
	return other;
}

const char *signal_name(int sig)
{
	static __thread char other[24];

	switch (sig) {
	case SIGKILL:
		return "SIGKILL";
	case SIGSEGV:
		return "SIGSEGV";
	case SIGBUS:
		return "SIGBUS";
	case SIGABRT:
		return "SIGABRT";
	case SIGALRM:
		return "SIGALRM";
	case SIGILL:
		return "SIGILL";
	case SIGFPE:
		return "SIGFPE";
	}
	snprintf(other, sizeof(other), "signal %d", sig);
	return other;
}

pid_t agent_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static char stat_state(const char *path)
{
	char buf[512];
	char *paren;

	if (read_text(path, buf, sizeof(buf)) <= 0)
		return 0;
	/* The command name may contain spaces and parentheses; the state follows the last ')'. */
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

char thread_state(pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	return stat_state(path);
}

char process_state(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return stat_state(path);
}

bool read_within(int fd, void *buf, size_t len, unsigned ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, (int)ms) == 1 && read(fd, buf, len) == (ssize_t)len;
}

bool reap_child(pid_t pid, int *status, unsigned ms)
{
	for (uint64_t until = now_ns() + ms * 1000000ULL;; sleep_ms(1)) {
		pid_t got = waitpid(pid, status, WNOHANG);

		if (got == pid)
			return true;
		if (got < 0 || now_ns() >= until)
			return false;
	}
}

const char *child_fate(pid_t pid)
{
	static char fate[64];
	siginfo_t si = { 0 };
	char st = process_state(pid);

	if (st && st != 'Z')
		snprintf(fate, sizeof(fate), "child still alive, state %c", st);
	else if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) || si.si_pid != pid)
		snprintf(fate, sizeof(fate), "child gone");
	else if (si.si_code == CLD_EXITED)
		snprintf(fate, sizeof(fate), "child exited with status %d", si.si_status);
	else
		snprintf(fate, sizeof(fate), "child killed by %s", signal_name(si.si_status));
	return fate;
}
