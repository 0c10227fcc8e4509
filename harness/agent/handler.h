/*
 * The fault-handling thread: polls one or more userfaultfds, counts and records every
 * message, and resolves faults (by default: un-write-protect the faulting unit and
 * wake). A FORK event's new uffd is added to the set, so a child's faults are served too.
 */
#ifndef AGENT_HANDLER_H
#define AGENT_HANDLER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mem.h"
#include "result.h"
#include "uapi.h"

#define HANDLER_MAX_FDS 4

struct handler;
typedef void (*fault_fn)(struct handler *h, int fd, const struct uffd_msg *m);

struct hstats {
	/* Counted on arrival, before any resolution: once a faulting thread has gone on,
	 * its message is already counted here (and in wp/missing/minor). */
	uint64_t received;
	uint64_t handled; /* counted after on_fault returned */
	uint64_t wp, missing, minor, forks, other_events;
	uint64_t bad_flags;	/* a WP message without FLAG_WRITE */
	uint64_t outside;	/* a main-uffd fault outside the area */
	uint64_t child_faults;	/* faults read from a uffd a FORK event delivered */
	uint64_t resolve_errors, read_errors;
	int resolve_errno, read_errno;
	int fork_fd; /* the last uffd a FORK event delivered, or -1 */
};

struct handler {
	struct result *r;
	const struct area *a;
	size_t unit;	  /* what the default action unprotects around a fault */
	fault_fn on_fault; /* NULL: handler_resolve */
	void *user;

	int fds[HANDLER_MAX_FDS];
	int nfds;
	int stop[2];
	pthread_t thread;
	bool running;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hstats s;
	uint64_t *addrs; /* main-uffd fault addresses in arrival order */
	size_t naddrs, cap;
};

int handler_start(struct handler *h, struct result *r, const struct area *a, int fd, size_t unit);
void handler_stop(struct handler *h);
void handler_free(struct handler *h);
/* Wait until at least n messages were handled; false on timeout. */
bool handler_wait(struct handler *h, uint64_t n, unsigned timeout_ms);
struct hstats handler_stats(struct handler *h);
void handler_set_unit(struct handler *h, size_t unit);
/* The default action: unprotect h->unit around the address, waking the faulting thread. */
void handler_resolve(struct handler *h, int fd, const struct uffd_msg *m);

#endif
