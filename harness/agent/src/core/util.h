/* Small helpers shared by every part of the agent. */
#ifndef AGENT_UTIL_H
#define AGENT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KIB 1024UL
#define MIB (1024UL * KIB)
#define GIB (1024UL * MIB)
#define BASE_PAGE 4096UL
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

uint64_t now_ns(void);
void sleep_ms(unsigned ms);
uint64_t mix64(uint64_t x);
void shuffle(size_t *v, size_t n, uint64_t seed);

/* Whole small text file (sysfs, procfs) into buf, NUL-terminated; length or -1. */
ssize_t read_text(const char *path, char *buf, size_t n);
long long read_ll(const char *path, long long dflt);
/* The selected word of a sysfs choice file ("always [madvise] never"), or "" if unreadable. */
const char *read_choice(const char *path, char *out, size_t n);

/* "EINVAL" rather than a sentence: details stay short and greppable. */
const char *errno_name(int e);
const char *signal_name(int sig);

pid_t agent_gettid(void);
/* The state letter of one of our threads ('S' = sleeping), or 0 if unreadable. */
char thread_state(pid_t tid);
/* The same for a process (a child we forked). */
char process_state(pid_t pid);

/* Read exactly len bytes from a pipe if they arrive within ms. */
bool read_within(int fd, void *buf, size_t len, unsigned ms);
/* waitpid() for at most ms; true once the child was reaped into *status. */
bool reap_child(pid_t pid, int *status, unsigned ms);
/*
 * What became of a child that stopped reporting: still running, or how it ended. It is
 * not reaped here (WNOWAIT): until the caller reaps it, its pid cannot be reused.
 */
const char *child_fate(pid_t pid);

#endif
