/*
 * The fault-handling thread: polls one or more userfaultfds, counts and records every
 * message, and resolves faults by their kind (by default: a WP fault is unprotected, a
 * minor fault is UFFDIO_CONTINUEd, a missing fault gets a UFFDIO_COPY of one stamp
 * generation or a UFFDIO_ZEROPAGE). A FORK event's new uffd is added to the set, so a
 * child's faults are served too.
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
#define HANDLER_MAX_EVENTS 16
/* For handler.expect_events: a non-fault event the workload provokes on purpose. */
#define EVENT_BIT(e) (1U << ((e) - UFFD_EVENT_PAGEFAULT))

struct handler;
typedef void (*fault_fn)(struct handler *h, int fd, const struct uffd_msg *m);

enum missing_op { MISSING_COPY, MISSING_ZEROPAGE };

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
	uint64_t short_resolves; /* COPY/ZEROPAGE/CONTINUE that reported other than the unit */
	int64_t short_out;	 /* ... the last such output field */
	int fork_fd; /* the last uffd a FORK event delivered, or -1 */
};

struct handler {
	struct result *r;
	const struct area *a;
	size_t unit;	  /* what the default action resolves around a fault */
	fault_fn on_fault; /* NULL: handler_resolve */
	void *user;
	/* How handler_resolve resolves; set before the first fault can arrive. */
	uint64_t continue_mode, copy_mode;
	enum missing_op missing_op;
	unsigned copy_gen; /* MISSING_COPY writes this generation's stamps */
	uint64_t seed;
	unsigned expect_events; /* EVENT_BIT()s that are not "unexpected" (FORK never is) */

	int fds[HANDLER_MAX_FDS];
	int nfds;
	int stop[2];
	pthread_t thread;
	bool running;
	char *copy_src; /* built per missing fault */
	size_t copy_src_size;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hstats s;
	uint64_t *addrs; /* main-uffd fault addresses in arrival order */
	size_t naddrs, cap;
	struct uffd_msg events[HANDLER_MAX_EVENTS]; /* non-fault messages, in order */
	size_t nevents;
};

/* Resolution defaults: CONTINUE and COPY modes 0, COPY of GEN_INITIAL stamps of seed. */
int handler_start(struct handler *h, struct result *r, const struct area *a, int fd, size_t unit, uint64_t seed);
void handler_stop(struct handler *h);
void handler_free(struct handler *h);
/* Wait until at least n messages were handled; false on timeout. */
bool handler_wait(struct handler *h, uint64_t n, unsigned timeout_ms);
struct hstats handler_stats(struct handler *h);
void handler_set_unit(struct handler *h, size_t unit);
/* The default action, by fault kind; wakes the faulting thread. */
void handler_resolve(struct handler *h, int fd, const struct uffd_msg *m);
/* An on_fault that leaves the fault pending: the workload resolves it itself. */
void handler_hold(struct handler *h, int fd, const struct uffd_msg *m);
/*
 * Wait until n events of one kind were logged; false on timeout. Needed after the call
 * that raised them: the kernel lets it return once the message was read, which may be
 * before the handler logged it.
 */
bool handler_wait_event(struct handler *h, uint8_t event, size_t n, unsigned timeout_ms);
/* The events of one kind logged so far, up to max of them; returns how many. */
size_t handler_events(struct handler *h, uint8_t event, struct uffd_msg *out, size_t max);

#endif
