/*
 * The common shape of a workload: an area of one memory type, a userfaultfd with the
 * wanted features, the area registered, and a handler thread serving it; plus the
 * checks most workloads share.
 */
#ifndef AGENT_FIXTURE_H
#define AGENT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "handler.h"
#include "mem.h"
#include "result.h"
#include "workloads.h"

/* Bound on waiting for anything expected; the supervisor's watchdog bounds the rest. */
#define WAIT_MS 10000
/* How long something that must not happen is given to happen anyway. */
#define QUIET_MS 300

/*
 * Bound on a pool of threads touching n pages. It grows with n: under TCG on a loaded
 * host single faults have taken over a second (copy-on-write of a shared THP).
 */
static inline unsigned pool_wait_ms(size_t n)
{
	return WAIT_MS + 20U * (unsigned)n;
}

/*
 * The same for n pages of area a, plus 30 s per GiB: the first touch of a 1 GiB page
 * zeroes it, and under TCG QEMU may only then allocate the host memory behind it.
 */
static inline unsigned touch_wait_ms(const struct area *a, size_t n)
{
	return pool_wait_ms(n) + 30000U * (unsigned)((n * a->psize) >> 30);
}

struct fx {
	struct run *run;
	struct result *r;
	struct area a;
	int uffd;
	uint64_t features; /* enabled: what UFFDIO_API was asked for */
	uint64_t ioctls;   /* returned by UFFDIO_REGISTER */
	struct handler h;
};

/* Record a skip naming what is missing unless the kernel offers all of want. */
bool need_features(struct run *run, uint64_t want);
/* Write-protect support for this memory type, plus extra features. */
bool need_wp(struct run *run, uint64_t extra);
/* The same question without recording a skip: can a part of a workload use uffd-wp? */
bool wp_usable(const struct run *run);
/* Features a memory type needs for MODE_MISSING (shmem and hugetlb came after anon). */
uint64_t missing_features(enum mem_type t);
/* Hugepages a private mapping of a hugetlb file reserves for its copies, beside the file's. */
size_t private_copy_hugepages(const struct run *run);
/* Why UFFD_FEATURE_EVENT_FORK cannot be had here (absent, or no CAP_SYS_PTRACE), or NULL. */
const char *fork_event_unusable(struct run *run);

enum {
	FX_POPULATE = 1 << 0,
	FX_FILE_ALIAS = 1 << 1, /* AREA_FILE_ALIAS */
	FX_PMD_ALIGN = 1 << 2,	/* AREA_PMD_ALIGN */
};

/*
 * Set up a fixture: area of npages (0: the run's page count), uffd with features,
 * registered with register_mode (0: not registered), handler started. On false the
 * skip or failure is recorded and everything is released.
 */
bool fx_setup(struct fx *fx, struct run *run, size_t npages, unsigned flags, uint64_t features,
	      uint64_t register_mode, size_t extra_hugepages);
void fx_teardown(struct fx *fx);

/* Checks shared by workloads. */
void check_wp_bits(struct result *r, const char *name, const void *addr, size_t len, bool set);
/*
 * Bit 57 on each 4K entry from addr against want[i]: 1 set, 0 clear, -1 either (a hole).
 * The detail names how many differ and the first that does.
 */
void check_wp_pattern(struct result *r, const char *name, const void *addr, size_t n, const signed char *want);
void check_present(struct result *r, const char *name, const void *addr, size_t len, bool present);
/* Every 4K entry of the area maps a page-cache page (pagemap bit 61: file), or none does. */
void check_file_pages(struct fx *fx, const char *name, bool file);
/*
 * After every page of a private file mapping was written: each is a private copy now
 * (write-replaces-with-private-copy), the view reads GEN_WRITTEN, the alias (the file)
 * still GEN_INITIAL.
 */
void check_private_copies(struct fx *fx);
void check_data(struct fx *fx, const char *name, const char *view, const unsigned *gens, unsigned gen);
/* The main uffd's fault addresses from index `from` on are exactly one per listed page,
 * each at the subpage first_touch() stored to. */
void check_fault_addrs(struct fx *fx, const char *name, size_t from, const size_t *pages, size_t n);
/* Nothing odd was seen by the handler: flags, addresses, ioctls, reads, events. */
void check_handler_clean(struct fx *fx);
/*
 * Write generation GEN_WRITTEN into the listed pages through the registered mapping,
 * each write expected to raise exactly one WP fault. Records writes-complete and
 * one-wp-fault-per-page; false if the writers got stuck (the run must just return).
 */
bool write_expect_faults(struct fx *fx, size_t *pages, size_t n);
/*
 * The same for writes that must not fault: records quiet-writes-complete and, while the
 * handler runs, quiet-writes-do-not-fault.
 */
bool write_expect_quiet(struct fx *fx, const size_t *pages, size_t n);
/* Protect or unprotect a range, recording the outcome. */
bool fx_protect(struct fx *fx, const char *name, const void *addr, size_t len, bool wp);

#endif
