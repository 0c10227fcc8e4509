/*
 * missing-copy, missing-zeropage: the baseline every other mode builds on. A first touch
 * of a page that does not exist raises one MISSING message (with FLAG_WRITE exactly when
 * the touch was a store); UFFDIO_COPY fills it with the given bytes, UFFDIO_ZEROPAGE with
 * zeros (not on hugetlb: no huge zero page); a second fill of a populated page is EEXIST.
 * missing-dontwake: with DONTWAKE either fill maps the page and leaves the faulting
 * thread asleep until UFFDIO_WAKE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

#define ZEROPAGE_IOCTL (1ULL << _UFFDIO_ZEROPAGE)

/* Odd pages are written, even pages read: only the writes may carry FLAG_WRITE. */
struct flags_seen {
	struct fx *fx;
	uint64_t wrong_write_flag;
};

static void note_write_flag(struct handler *h, int fd, const struct uffd_msg *m)
{
	struct flags_seen *fs = h->user;
	const struct area *a = &fs->fx->a;
	uint64_t addr = m->arg.pagefault.address;

	if (fd == h->fds[0] && addr >= (uintptr_t)a->base && addr < (uintptr_t)a->base + a->size) {
		size_t page = (addr - (uintptr_t)a->base) / a->psize;
		bool write = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;

		if (write != (page % 2 == 1))
			__atomic_fetch_add(&fs->wrong_write_flag, 1, __ATOMIC_RELAXED);
	}
	handler_resolve(h, fd, m);
}

static bool touch_all(struct fx *fx, size_t *all, size_t n_all)
{
	struct result *r = fx->r;
	size_t n_even = 0, n_odd = 0;
	size_t *even = malloc(n_all * sizeof(*even)), *odd = malloc(n_all * sizeof(*odd));
	bool ok;

	if (!even || !odd)
		abort();
	for (size_t i = 0; i < n_all; i++) {
		if (all[i] % 2)
			odd[n_odd++] = all[i];
		else
			even[n_even++] = all[i];
	}
	set_phase(r, "read even pages, write odd pages");
	ok = read_pages(r, &fx->a, fx->a.base, even, n_even, fx->run->threads, true, pool_wait_ms(n_even)) &&
	     write_pages(r, &fx->a, fx->a.base, odd, n_odd, fx->run->threads, fx->run->seed, GEN_WRITTEN, true,
			 pool_wait_ms(n_odd));
	check_value(r, "accesses-complete", ok, 1, "reader and writer threads finished within %u and %u ms",
		    pool_wait_ms(n_even), pool_wait_ms(n_odd));
	if (!ok)
		return false; /* stuck threads still use the lists */
	free(even);
	free(odd);
	return true;
}

static void check_fills(struct fx *fx, size_t n)
{
	struct hstats s = handler_stats(&fx->h);

	check_value(fx->r, "one-missing-fault-per-page", (long long)s.missing, (long long)n,
		    "MISSING fault messages for first touches of %zu pages", n);
	check_value(fx->r, "no-other-faults", (long long)(s.wp + s.minor), 0, "WP and MINOR fault messages");
	check_value(fx->r, "fill-covers-whole-page", (long long)s.short_resolves, 0,
		    "fills that reported other than %zu bytes (the last %lld)", fx->a.psize, (long long)s.short_out);
}

/* A private mapping's copies are its own: nothing may reach the file behind it. */
static void check_file_empty(struct fx *fx)
{
	struct stat st;
	int rc = fstat(fx->a.fd, &st) ? errno : 0;

	if (check_errno(fx->r, "fstat-memfd", rc, 0, "fstat(memfd)"))
		check_value(fx->r, "file-stays-empty", (long long)st.st_blocks, 0,
			    "512-byte blocks allocated to the file behind the private mapping");
}

static void retry_fill(struct fx *fx, bool zeropage)
{
	const char *op = zeropage ? "ZEROPAGE" : "COPY";
	int64_t out = 0;
	int rc;

	if (zeropage) {
		rc = uffd_zeropage(fx->uffd, fx->a.base, fx->a.psize, 0, &out);
	} else {
		char *src = calloc(1, fx->a.psize);

		if (!src)
			abort();
		rc = uffd_copy(fx->uffd, fx->a.base, src, fx->a.psize, 0, &out);
		free(src);
	}
	check_errno(fx->r, "refill-is-eexist", -rc, EEXIST, "UFFDIO_%s over a populated page", op);
	check_value(fx->r, "refill-reports-eexist", out, -EEXIST, "the output field of that %s", op);
}

struct pending_copy {
	int uffd;
	char *dst, *src;
	int rc;
	int64_t copied;
};

static void copy_op(void *arg)
{
	struct pending_copy *pc = arg;

	pc->rc = uffd_copy(pc->uffd, pc->dst, pc->src, BASE_PAGE, 0, &pc->copied);
}

/*
 * COPY while a REMOVE event is pending: EAGAIN, and the copy field says so. The ioctl
 * checks the window on entry, before the memory type matters: anon alone runs this
 * part, on a helper page (the area itself belongs to the handler's uffd).
 */
static void mmap_changing(struct fx *fx)
{
	struct result *r = fx->r;
	char *m = mmap(NULL, 2 * BASE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pending_copy pc = { .dst = m, .src = m + BASE_PAGE };
	char source[48];
	int rc;

	if (!(fx->run->features & UFFD_FEATURE_EVENT_REMOVE)) {
		note(r, "mmap-changing part not run: kernel lacks UFFD_FEATURE_EVENT_REMOVE");
		return;
	}
	if (!check_errno(r, "map-helper-pages", m == MAP_FAILED ? errno : 0, 0, "mmap 2 anonymous pages"))
		return;
	pc.uffd = uffd_new(UFFD_FEATURE_EVENT_REMOVE, NULL, source, sizeof(source));
	if (check_errno(r, "open-event-uffd", pc.uffd < 0 ? -pc.uffd : 0, 0, "userfaultfd + UFFDIO_API(EVENT_REMOVE)")) {
		rc = uffd_register(pc.uffd, m, BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
		if (check_errno(r, "register-helper", -rc, 0, "UFFDIO_REGISTER(MODE_MISSING) of the helper page") &&
		    while_mmap_changing(r, pc.uffd, m, BASE_PAGE, copy_op, &pc)) {
			check_errno(r, "mmap-changing-is-eagain", -pc.rc, EAGAIN, "UFFDIO_COPY while a REMOVE event is unread");
			check_value(r, "mmap-changing-copy-is-eagain", pc.copied, -EAGAIN, "its copy field");
		}
		close(pc.uffd);
	}
	if (!r->stuck)
		munmap(m, 2 * BASE_PAGE);
}

void missing_copy(struct run *run)
{
	struct result *r = run->r;
	struct flags_seen fs = { 0 };
	unsigned *gens;
	size_t n, *pages;
	struct fx fx;

	if (!need_features(run, missing_features(run->mem)) ||
	    !fx_setup(&fx, run, 0, 0, run->features & UFFD_FEATURE_EXACT_ADDRESS, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	check_value(r, "ioctls-have-copy", !!(fx.ioctls & (1ULL << _UFFDIO_COPY)), 1,
		    "COPY in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)fx.ioctls);
	fs.fx = &fx;
	fx.h.user = &fs;
	fx.h.on_fault = note_write_flag;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	if (!touch_all(&fx, pages, n))
		return;
	check_fills(&fx, n);
	check_fault_addrs(&fx, "fault-addresses-match-touches", 0, pages, n);
	check_value(r, "write-flag-marks-stores", (long long)fs.wrong_write_flag, 0,
		    "MISSING messages whose FLAG_WRITE disagreed with the access (stores to odd pages only)");
	gens = malloc(fx.a.npages * sizeof(*gens));
	if (!gens)
		abort();
	for (size_t i = 0; i < fx.a.npages; i++)
		gens[i] = i % 2 ? GEN_WRITTEN : GEN_INITIAL;
	check_data(&fx, "data-intact", fx.a.base, gens, 0);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-copies", fx.a.alias, gens, 0);
	else if (fx.a.fd >= 0)
		check_file_empty(&fx);
	free(gens);
	retry_fill(&fx, false);
	if (run->mem == MEM_ANON)
		mmap_changing(&fx);
	if (r->stuck)
		return;
	check_handler_clean(&fx);
	fx_teardown(&fx);
	free(pages);
}

static void zeropage_on_hugetlb(struct fx *fx)
{
	int64_t out = 0;
	int rc;

	check_value(fx->r, "ioctls-lack-zeropage", !!(fx->ioctls & ZEROPAGE_IOCTL), 0,
		    "ZEROPAGE in the ioctls REGISTER(MODE_MISSING) of hugetlb returned (0x%llx)",
		    (unsigned long long)fx->ioctls);
	rc = uffd_zeropage(fx->uffd, fx->a.base, fx->a.psize, 0, &out);
	check_errno(fx->r, "zeropage-is-einval", -rc, EINVAL, "UFFDIO_ZEROPAGE of a hugetlb page");
	check_value(fx->r, "zeropage-reports-einval", out, -EINVAL, "its zeropage field");
	check_present(fx->r, "nothing-mapped", fx->a.base, fx->a.size, false);
}

void missing_zeropage(struct run *run)
{
	struct result *r = run->r;
	size_t n, *pages, nonzero = 0;
	struct fx fx;
	bool ok;

	if (!need_features(run, missing_features(run->mem)) ||
	    !fx_setup(&fx, run, 0, 0, 0, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	if (mem_info(run->mem)->hugetlb) {
		zeropage_on_hugetlb(&fx);
		check_handler_clean(&fx);
		fx_teardown(&fx);
		return;
	}
	check_value(r, "ioctls-have-zeropage", !!(fx.ioctls & ZEROPAGE_IOCTL), 1,
		    "ZEROPAGE in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)fx.ioctls);
	fx.h.missing_op = MISSING_ZEROPAGE;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	set_phase(r, "read every page");
	ok = read_pages(r, &fx.a, fx.a.base, pages, n, run->threads, true, pool_wait_ms(n));
	check_value(r, "reads-complete", ok, 1, "reader threads finished within %u ms", pool_wait_ms(n));
	if (!ok)
		return;
	check_fills(&fx, n);
	check_fault_addrs(&fx, "fault-addresses-match-reads", 0, pages, n);
	check_present(r, "zero-pages-mapped", fx.a.base, fx.a.size, true);
	for (size_t s = 0; s < fx.a.size / BASE_PAGE; s++)
		nonzero += *stamp_at(fx.a.base, s) != 0;
	check_value(r, "reads-see-zeros", (long long)nonzero, 0, "4K subpages that read non-zero");
	retry_fill(&fx, true);
	/* Whatever ZEROPAGE mapped (the shared zero page, or a zeroed page) takes stores. */
	if (!write_expect_quiet(&fx, pages, n))
		return;
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (fx.a.alias)
		check_data(&fx, "alias-sees-writes", fx.a.alias, NULL, GEN_WRITTEN);
	check_handler_clean(&fx);
	fx_teardown(&fx);
	free(pages);
}

/*
 * Resolve page p's held MISSING fault with COPY (or ZEROPAGE) in DONTWAKE mode: the page
 * is mapped yet the reader sleeps on until UFFDIO_WAKE. False: the reader is stuck.
 */
static bool fill_dontwake(struct fx *fx, size_t p, bool zeropage, char *src)
{
	struct result *r = fx->r;
	const struct area *a = &fx->a;
	char *page = a->base + p * a->psize;
	size_t spp = subpages_per_page(a);
	int64_t out = 0;
	struct solo *s;
	int rc;

	set_phase(r, "read page %zu, hold the fault, %s with DONTWAKE", p, zeropage ? "ZEROPAGE" : "COPY");
	check_prefix(r, zeropage ? "zeropage-" : "copy-");
	s = solo_start(r, a, a->base, p, fx->run->seed, GEN_INITIAL, false, &rc);
	check_errno(r, "start-reader", rc, 0, "pthread_create");
	if (!s)
		goto out;
	if (!check_value(r, "fault-delivered", handler_wait(&fx->h, p + 1, WAIT_MS), 1,
			 "fault message within %u ms of the read", WAIT_MS)) {
		r->stuck = true;
		goto stuck;
	}
	check_value(r, "reader-blocked-in-fault", solo_blocked(s, WAIT_MS), 1,
		    "reader thread asleep in the fault within %u ms", WAIT_MS);
	if (zeropage) {
		rc = uffd_zeropage(fx->uffd, page, a->psize, UFFDIO_ZEROPAGE_MODE_DONTWAKE, &out);
	} else {
		for (size_t i = 0; i < spp; i++)
			*stamp_at(src, i) = stamp(fx->run->seed, GEN_INITIAL, p * spp + i);
		rc = uffd_copy(fx->uffd, page, src, a->psize, UFFDIO_COPY_MODE_DONTWAKE, &out);
	}
	check_errno(r, "dontwake-succeeds", -rc, 0, "the fill with DONTWAKE");
	check_value(r, "dontwake-reports-length", out, (long long)a->psize, "its output field");
	check_present(r, "mapped-before-wake", page, a->psize, true);
	check_value(r, "reader-still-blocked", solo_finished(s, QUIET_MS), 0,
		    "reader finished within %u ms of a fill with DONTWAKE", QUIET_MS);
	check_errno(r, "wake", -uffd_wake(fx->uffd, page, a->psize), 0, "UFFDIO_WAKE");
	if (!check_value(r, "reader-completes-after-wake", solo_finished(s, WAIT_MS), 1,
			 "reader finished within %u ms of UFFDIO_WAKE", WAIT_MS)) {
		r->stuck = true;
		goto stuck;
	}
	/* The reader counts the 4K subpages that lack generation GEN_INITIAL's stamp. */
	check_value(r, "reader-sees-filled-bytes", (long long)s->bad, zeropage ? (long long)spp : 0,
		    "4K subpages of page %zu without the copied stamp, as the reader saw them", p);
	solo_free(s);
out:
	check_prefix(r, "");
	return true;
stuck:
	check_prefix(r, "");
	return false;
}

void missing_dontwake(struct run *run)
{
	struct fx fx;
	char *src;

	if (!need_features(run, missing_features(run->mem)) ||
	    !fx_setup(&fx, run, 2, 0, 0, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	fx.h.on_fault = handler_hold;
	src = calloc(1, fx.a.psize);
	if (!src)
		abort();
	if (!fill_dontwake(&fx, 0, false, src))
		return;
	if (!mem_info(run->mem)->hugetlb && !fill_dontwake(&fx, 1, true, src))
		return;
	free(src);
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
