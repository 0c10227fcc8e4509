/*
 * missing-copy: the baseline every other mode builds on. A first touch of a page that does
 * not exist raises one MISSING message (with FLAG_WRITE exactly when the touch was a store);
 * UFFDIO_COPY fills it with the given bytes; a second fill of a populated page is EEXIST,
 * and a COPY in the mmap_changing window is EAGAIN.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "missing_checks.h"
#include "mmap_changing.h"
#include "uffd.h"
#include "util.h"

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

/* A private mapping's copies are its own: nothing may reach the file behind it. */
static void check_file_empty(struct fx *fx)
{
	struct stat st;
	int rc = fstat(fx->a.fd, &st) ? errno : 0;

	if (check_errno(fx->r, "fstat-memfd", rc, 0, "fstat(memfd)"))
		check_value(fx->r, "file-stays-empty", (long long)st.st_blocks, 0,
			    "512-byte blocks allocated to the file behind the private mapping");
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
	check_missing_fills(&fx, n);
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
	check_refill_eexist(&fx, false);
	if (run->mem == MEM_ANON)
		mmap_changing(&fx);
	if (r->stuck)
		return;
	check_handler_clean(&fx);
	fx_teardown(&fx);
	free(pages);
}
