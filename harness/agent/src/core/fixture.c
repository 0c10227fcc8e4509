#define _GNU_SOURCE
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagemap.h"
#include "uffd.h"
#include "util.h"

bool need_features(struct run *run, uint64_t want)
{
	char names[256];
	uint64_t missing = want & ~run->features;

	if (!missing)
		return true;
	uffd_feature_names(missing, names, sizeof(names));
	skip(run->r, "kernel lacks UFFD_FEATURE %s", names);
	return false;
}

static uint64_t wp_features(const struct run *run, uint64_t extra)
{
	uint64_t want = UFFD_FEATURE_PAGEFAULT_FLAG_WP | extra;

	if (!mem_info(run->mem)->anon)
		want |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	return want;
}

bool need_wp(struct run *run, uint64_t extra)
{
	return need_features(run, wp_features(run, extra));
}

bool wp_usable(const struct run *run)
{
	uint64_t want = wp_features(run, 0);

	return (run->features & want) == want;
}

uint64_t missing_features(enum mem_type t)
{
	const struct mem_info *mi = mem_info(t);

	if (mi->anon)
		return 0;
	return mi->hugetlb ? UFFD_FEATURE_MISSING_HUGETLBFS : UFFD_FEATURE_MISSING_SHMEM;
}

const char *fork_event_unusable(struct run *run)
{
	char source[48];
	int fd;

	if (!(run->features & UFFD_FEATURE_EVENT_FORK))
		return "kernel lacks UFFD_FEATURE_EVENT_FORK";
	/* Offered, yet UFFDIO_API refuses it without CAP_SYS_PTRACE. */
	fd = uffd_new(UFFD_FEATURE_EVENT_FORK, NULL, source, sizeof(source));
	if (fd == -EPERM)
		return "UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE (EPERM)";
	if (fd >= 0)
		close(fd);
	return NULL;
}

bool fx_setup(struct fx *fx, struct run *run, size_t npages, unsigned flags, uint64_t features,
	      uint64_t register_mode, size_t extra_hugepages)
{
	struct result *r = run->r;
	char why[256], names[256];
	int rc;

	memset(fx, 0, sizeof(*fx));
	fx->run = run;
	fx->r = r;
	fx->uffd = -1;
	fx->a.fd = -1;
	set_phase(r, "allocate %s", mem_info(run->mem)->name);
	rc = area_alloc(&fx->a, run->mem, npages ? npages : run->pages, extra_hugepages,
			(flags & FX_FILE_ALIAS ? AREA_FILE_ALIAS : 0) | (flags & FX_PMD_ALIGN ? AREA_PMD_ALIGN : 0), why,
			sizeof(why));
	r->page_size = fx->a.psize;
	r->npages = fx->a.npages;
	if (rc > 0) {
		skip(r, "%s", why);
		goto fail;
	}
	if (rc < 0) {
		check_value(r, "setup-memory", 0, 1, "%s", why);
		goto fail;
	}
	if (flags & FX_POPULATE) {
		set_phase(r, "populate");
		rc = area_populate(&fx->a, run->seed, GEN_INITIAL, why, sizeof(why));
		if (rc > 0)
			skip(r, "%s", why);
		if (rc < 0)
			check_value(r, "setup-populate", 0, 1, "%s", why);
		if (rc)
			goto fail;
	}
	set_phase(r, "open userfaultfd");
	uffd_feature_names(features, names, sizeof(names));
	/* UFFDIO_API answers with every feature the kernel has, not the enabled ones. */
	fx->features = features;
	rc = uffd_new(features, NULL, r->uffd_source, sizeof(r->uffd_source));
	if (!check_errno(r, "setup-uffd", rc < 0 ? -rc : 0, 0, "userfaultfd + UFFDIO_API(%s)", names))
		goto fail;
	fx->uffd = rc;
	if (register_mode) {
		set_phase(r, "register");
		rc = uffd_register(fx->uffd, fx->a.base, fx->a.size, register_mode, &fx->ioctls);
		if (!check_errno(r, "setup-register", -rc, 0, "UFFDIO_REGISTER mode 0x%llx over %zu bytes",
				 (unsigned long long)register_mode, fx->a.size))
			goto fail;
		/* The kernel says per range what it supports: WP needs WRITEPROTECT offered. */
		if ((register_mode & UFFDIO_REGISTER_MODE_WP) &&
		    !check_value(r, "setup-register-offers-writeprotect", !!(fx->ioctls & (1ULL << _UFFDIO_WRITEPROTECT)),
				 1, "WRITEPROTECT in the ioctls REGISTER returned (0x%llx)",
				 (unsigned long long)fx->ioctls))
			goto fail;
	}
	rc = handler_start(&fx->h, r, &fx->a, fx->uffd, fx->a.psize, run->seed);
	if (!check_errno(r, "setup-handler", -rc, 0, "start the fault-handling thread"))
		goto fail;
	return true;
fail:
	fx_teardown(fx);
	return false;
}

void fx_teardown(struct fx *fx)
{
	struct result *r = fx->r;

	/* Threads blocked in faults would crash on freed memory: leave it to exit(). */
	if (r->stuck)
		return;
	if (fx->h.r) { /* the handler was started */
		struct hstats s;

		handler_stop(&fx->h);
		s = fx->h.s;
		r->faults_wp += s.wp;
		r->faults_missing += s.missing;
		r->faults_minor += s.minor;
		r->events_fork += s.forks;
		handler_free(&fx->h);
	}
	if (fx->uffd >= 0)
		close(fx->uffd);
	fx->uffd = -1;
	area_free(&fx->a);
}

void check_wp_bits(struct result *r, const char *name, const void *addr, size_t len, bool set)
{
	struct pm_counts c;
	char where[64] = "";
	int rc = pagemap_count(addr, len, &c);

	if (rc) {
		check_errno(r, name, -rc, 0, "read /proc/self/pagemap");
		return;
	}
	if (c.wp && !set)
		snprintf(where, sizeof(where), ", the first at entry %zu", c.first_wp);
	check_value(r, name, (long long)c.wp, set ? (long long)c.entries : 0,
		    "4K entries (of %zu) with pagemap bit 57 (uffd-wp)%s", c.entries, where);
}

void check_wp_pattern(struct result *r, const char *name, const void *addr, size_t n, const signed char *want)
{
	uint64_t *pm = malloc((n ? n : 1) * sizeof(*pm));
	size_t bad = 0, first = 0, set = 0;
	int rc;

	if (!pm)
		abort();
	rc = pagemap_read(addr, n, pm);
	if (rc) {
		check_errno(r, name, -rc, 0, "read /proc/self/pagemap");
		free(pm);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool wp = !!(pm[i] & PM_UFFD_WP);

		set += wp;
		if (want[i] < 0 || wp == (want[i] == 1))
			continue;
		if (!bad++)
			first = i;
	}
	if (bad)
		check_value(r, name, (long long)bad, 0,
			    "4K entries (of %zu, %zu with bit 57) whose uffd-wp bit is not as protected; the first is "
			    "entry %zu (bit 57 %s)",
			    n, set, first, pm[first] & PM_UFFD_WP ? "set" : "clear");
	else
		check_value(r, name, 0, 0, "4K entries (of %zu, %zu with bit 57) whose uffd-wp bit is not as protected",
			    n, set);
	free(pm);
}

void check_present(struct result *r, const char *name, const void *addr, size_t len, bool present)
{
	struct pm_counts c;
	int rc = pagemap_count(addr, len, &c);

	if (rc) {
		check_errno(r, name, -rc, 0, "read /proc/self/pagemap");
		return;
	}
	check_value(r, name, (long long)c.present, present ? (long long)c.entries : 0,
		    "4K entries present (pagemap bit 63), of %zu", c.entries);
}

void check_data(struct fx *fx, const char *name, const char *view, const unsigned *gens, unsigned gen)
{
	size_t first = 0, bad;
	char where[64] = "";

	bad = area_mismatches(&fx->a, view, 0, fx->a.npages, fx->run->seed, gens, gen, &first);
	if (bad)
		snprintf(where, sizeof(where), ", the first is subpage %zu", first);
	check_value(fx->r, name, (long long)bad, 0, "4K subpages (of %zu) with a wrong stamp%s",
		    fx->a.size / BASE_PAGE, where);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * With UFFD_FEATURE_EXACT_ADDRESS the message carries the faulting address itself;
 * without it, the address rounded down to the page the VMA maps (the huge page for
 * hugetlb).
 */
static uint64_t expected_addr(struct fx *fx, size_t page)
{
	uint64_t addr = (uintptr_t)first_touch(&fx->a, fx->a.base, page);
	uint64_t unit = mem_info(fx->a.type)->hugetlb ? fx->a.psize : BASE_PAGE;

	if (fx->features & UFFD_FEATURE_EXACT_ADDRESS)
		return addr;
	return addr & ~(unit - 1);
}

void check_fault_addrs(struct fx *fx, const char *name, size_t from, const size_t *pages, size_t n)
{
	uint64_t *want = malloc((n ? n : 1) * sizeof(*want)), *got;
	size_t ngot, bad = 0, first_bad = 0;

	if (!want)
		abort();
	pthread_mutex_lock(&fx->h.mu);
	ngot = fx->h.naddrs > from ? fx->h.naddrs - from : 0;
	got = malloc((ngot ? ngot : 1) * sizeof(*got));
	if (!got)
		abort();
	memcpy(got, fx->h.addrs + from, ngot * sizeof(*got));
	pthread_mutex_unlock(&fx->h.mu);
	for (size_t i = 0; i < n; i++)
		want[i] = expected_addr(fx, pages[i]);
	qsort(want, n, sizeof(*want), cmp_u64);
	qsort(got, ngot, sizeof(*got), cmp_u64);
	for (size_t i = 0; i < n || i < ngot; i++) {
		if (i < n && i < ngot && want[i] == got[i])
			continue;
		if (!bad++)
			first_bad = i;
	}
	if (bad && first_bad < ngot)
		check_value(fx->r, name, (long long)bad, 0,
			    "fault messages vs one per written page at its first-touch address (%zu messages, %zu "
			    "pages; first unexpected at area offset 0x%llx)",
			    ngot, n, (unsigned long long)(got[first_bad] - (uintptr_t)fx->a.base));
	else
		check_value(fx->r, name, (long long)bad, 0,
			    "fault messages vs one per written page at its first-touch address (%zu messages, %zu pages)",
			    ngot, n);
	free(want);
	free(got);
}

void check_handler_clean(struct fx *fx)
{
	struct hstats s = handler_stats(&fx->h);
	struct result *r = fx->r;

	check_value(r, "wp-messages-have-write-flag", (long long)s.bad_flags, 0,
		    "WP fault messages without UFFD_PAGEFAULT_FLAG_WRITE");
	check_value(r, "fault-addresses-in-area", (long long)s.outside, 0, "fault messages outside the registered area");
	check_errno(r, "handler-ioctls-succeed", s.resolve_errors ? s.resolve_errno : 0, 0,
		    "the handler's resolving ioctls (%llu failed)", (unsigned long long)s.resolve_errors);
	check_errno(r, "uffd-reads-succeed", s.read_errors ? s.read_errno : 0, 0, "read() of uffd messages");
	check_value(r, "no-unexpected-events", (long long)s.other_events, 0,
		    "events other than page faults, fork and those provoked on purpose");
}

bool fx_protect(struct fx *fx, const char *name, const void *addr, size_t len, bool wp)
{
	int rc = 0;

	if (!wp || !sabotaged(fx->r, "no-protect"))
		rc = uffd_writeprotect(fx->uffd, addr, len, wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
	return check_errno(fx->r, name, -rc, 0, "UFFDIO_WRITEPROTECT %s at area offset 0x%zx, %zu bytes",
			   wp ? "protect" : "unprotect", (size_t)((const char *)addr - fx->a.base), len);
}

bool write_expect_faults(struct fx *fx, size_t *pages, size_t n)
{
	struct run *run = fx->run;
	struct result *r = fx->r;
	struct hstats before = handler_stats(&fx->h);
	bool ok;

	set_phase(r, "write %zu protected pages with %u threads", n, run->threads);
	ok = write_pages(r, &fx->a, fx->a.base, pages, n, run->threads, run->seed, GEN_WRITTEN, true,
			 pool_wait_ms(n));
	if (!check_value(r, "writes-complete", ok, 1, "writer threads finished within %u ms", pool_wait_ms(n)))
		return false;
	check_value(r, "one-wp-fault-per-page", (long long)(handler_stats(&fx->h).wp - before.wp), (long long)n,
		    "WP fault messages for %zu written pages", n);
	return true;
}

bool write_expect_quiet(struct fx *fx, const size_t *pages, size_t n)
{
	struct result *r = fx->r;
	uint64_t before = handler_stats(&fx->h).received;
	bool ok;

	set_phase(r, "write %zu pages that must not fault", n);
	ok = write_pages(r, &fx->a, fx->a.base, pages, n, fx->run->threads, fx->run->seed, GEN_WRITTEN, false,
			 pool_wait_ms(n));
	if (!check_value(r, "quiet-writes-complete", ok, 1, "writer threads finished within %u ms", pool_wait_ms(n)))
		return false;
	if (fx->h.running) {
		check_value(r, "quiet-writes-do-not-fault", (long long)(handler_stats(&fx->h).received - before), 0,
			    "uffd messages for %zu writes", n);
	}
	return true;
}

/* Pagemap bit 61 tells a page-cache page from the private copy a COW makes. */
void check_file_pages(struct fx *fx, const char *name, bool file)
{
	struct pm_counts c;
	int rc = pagemap_count(fx->a.base, fx->a.size, &c);

	if (rc) {
		check_errno(fx->r, name, -rc, 0, "read /proc/self/pagemap");
		return;
	}
	check_value(fx->r, name, (long long)c.file, file ? (long long)c.entries : 0,
		    "4K entries (of %zu, %zu present) mapping a page-cache page (pagemap bit 61)", c.entries,
		    c.present);
}

size_t private_copy_hugepages(const struct run *run)
{
	return mem_info(run->mem)->hugetlb ? run->pages : 0;
}

void check_private_copies(struct fx *fx)
{
	check_file_pages(fx, "write-replaces-with-private-copy", false);
	check_data(fx, "private-view-sees-writes", fx->a.base, NULL, GEN_WRITTEN);
	check_data(fx, "file-unchanged-by-writes", fx->a.alias, NULL, GEN_INITIAL);
}
