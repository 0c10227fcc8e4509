/*
 * fill-contract: what UFFDIO_API, REGISTER and COPY promise beyond the one-page fill the
 * fault workloads make. No thread touches a page that is not present here, so no fault
 * is ever pending: the ioctls' own results, pagemap and the bytes are the evidence.
 *
 * Expectations follow fs/userfaultfd.c and mm/userfaultfd.c of 6.1 and later:
 * - UFFDIO_API with api != 0xAA is EINVAL and zeroes the whole struct; the same uffd then
 *   accepts a valid call, which reports REGISTER|UNREGISTER|API as its ioctls;
 * - REGISTER of a range another uffd holds, even one page of it, is EBUSY;
 * - COPY with an unknown mode bit is EINVAL; a multi-page COPY reports the whole length;
 *   one that meets a populated page stops there: EAGAIN, `copy` = the bytes done;
 * - COPY_MODE_WP is EINVAL (`copy` = -EINVAL) where WP is not registered; REGISTER can
 *   add MODE_WP to a MISSING range; COPY_MODE_WP then maps the page with the uffd-wp bit
 *   (pagemap bit 57) and the first write to it raises a WP fault;
 * - UNREGISTER of part of a protected range clears bit 57 in that part only;
 * - COPY from a source never touched (no page behind it): the copy under the page table
 *   lock cannot fault it in, so the kernel drops the lock, copies with faults allowed and
 *   retries (the *pagep path of mcopy_atomic_pte, shmem_mfill_atomic_pte and
 *   hugetlb_mcopy_atomic_pte); it succeeds with the whole length and maps the source's
 *   bytes: zeros.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

#define NPAGES 6
#define API_IOCTLS ((1ULL << _UFFDIO_REGISTER) | (1ULL << _UFFDIO_UNREGISTER) | (1ULL << _UFFDIO_API))
#define COPY_UNKNOWN_MODE (1ULL << 2)
#define ZEROPAGE_UNKNOWN_MODE (1ULL << 1)

static void api_contract(struct run *run)
{
	struct result *r = run->r;
	struct uffdio_api api = { .api = UFFD_API + 1, .features = 0, .ioctls = ~0ULL };
	char source[48];
	int fd = uffd_open(source, sizeof(source));
	int rc;

	if (!check_errno(r, "open-uffd", fd < 0 ? -fd : 0, 0, "userfaultfd"))
		return;
	rc = ioctl(fd, UFFDIO_API, &api) ? errno : 0;
	check_errno(r, "api-wrong-version-is-einval", rc, EINVAL, "UFFDIO_API with api 0x%llx",
		    (unsigned long long)UFFD_API + 1);
	check_value(r, "api-error-zeroes-struct", api.api == 0 && api.features == 0 && api.ioctls == 0, 1,
		    "the refused call's struct is all zeros (api 0x%llx, features 0x%llx, ioctls 0x%llx)",
		    (unsigned long long)api.api, (unsigned long long)api.features, (unsigned long long)api.ioctls);
	api = (struct uffdio_api){ .api = UFFD_API };
	rc = ioctl(fd, UFFDIO_API, &api) ? errno : 0;
	if (check_errno(r, "api-after-refusal-succeeds", rc, 0, "a valid UFFDIO_API on the uffd that refused one")) {
		check_value(r, "api-ioctls-are-register-unregister-api", (long long)api.ioctls, (long long)API_IOCTLS,
			    "ioctls UFFDIO_API reports");
		check_value(r, "api-reports-probed-features", (long long)api.features, (long long)run->features,
			    "features UFFDIO_API reports, against the probe's");
	}
	close(fd);
}

/* A second uffd may not take over any part of a registered range. */
static void register_busy(struct fx *fx)
{
	struct result *r = fx->r;
	char source[48];
	int fd = uffd_new(0, NULL, source, sizeof(source));

	if (!check_errno(r, "open-second-uffd", fd < 0 ? -fd : 0, 0, "userfaultfd + UFFDIO_API"))
		return;
	check_errno(r, "register-taken-range-is-ebusy",
		    -uffd_register(fd, fx->a.base, fx->a.size, UFFDIO_REGISTER_MODE_MISSING, NULL), EBUSY,
		    "UFFDIO_REGISTER by a second uffd of the whole registered area");
	check_errno(r, "register-taken-page-is-ebusy",
		    -uffd_register(fd, fx->a.base + (NPAGES - 1) * fx->a.psize, fx->a.psize, UFFDIO_REGISTER_MODE_MISSING,
				   NULL),
		    EBUSY, "UFFDIO_REGISTER by a second uffd of its last page");
	close(fd);
}

static char *page_at(struct fx *fx, char *view, size_t page)
{
	return view + page * fx->a.psize;
}

static void check_bytes(struct fx *fx, const char *name, size_t from, size_t to, unsigned gen)
{
	size_t first = 0, bad = area_mismatches(&fx->a, fx->a.base, from, to, fx->run->seed, NULL, gen, &first);

	char where[48] = "";

	if (bad)
		snprintf(where, sizeof(where), ", the first is subpage %zu", first);
	check_value(fx->r, name, (long long)bad, 0, "4K subpages of pages %zu-%zu with a wrong stamp%s", from, to - 1,
		    where);
}

/* Pages 0-4 filled by plain COPYs; page 5 left absent. False: the fills went wrong. */
static bool copy_contract(struct fx *fx, char *src)
{
	struct result *r = fx->r;
	size_t ps = fx->a.psize;
	int64_t out = 0;
	int rc;

	set_phase(r, "COPY modes, multi-page and partial COPY");
	rc = uffd_copy(fx->uffd, page_at(fx, fx->a.base, 0), page_at(fx, src, 0), ps, COPY_UNKNOWN_MODE, &out);
	check_errno(r, "copy-unknown-mode-is-einval", -rc, EINVAL, "UFFDIO_COPY with mode bit 2");
	check_present(r, "refused-copy-maps-nothing", fx->a.base, ps, false);
	if (!mem_info(fx->a.type)->hugetlb) {
		rc = uffd_zeropage(fx->uffd, page_at(fx, fx->a.base, 0), ps, ZEROPAGE_UNKNOWN_MODE, &out);
		check_errno(r, "zeropage-unknown-mode-is-einval", -rc, EINVAL, "UFFDIO_ZEROPAGE with mode bit 1");
		check_present(r, "refused-zeropage-maps-nothing", fx->a.base, ps, false);
	}

	out = 0;
	rc = uffd_copy(fx->uffd, fx->a.base, src, 3 * ps, 0, &out);
	check_errno(r, "multi-page-copy-succeeds", -rc, 0, "UFFDIO_COPY of pages 0-2 in one call");
	check_value(r, "multi-page-copy-reports-length", out, (long long)(3 * ps), "its copy field");
	check_present(r, "multi-page-copy-maps-all", fx->a.base, 3 * ps, true);
	check_bytes(fx, "multi-page-copy-data", 0, 3, GEN_INITIAL);

	rc = uffd_copy(fx->uffd, page_at(fx, fx->a.base, 4), page_at(fx, src, 4), ps, 0, &out);
	if (!check_errno(r, "copy-page-4", -rc, 0, "UFFDIO_COPY of page 4 alone"))
		return false;
	out = 0;
	rc = uffd_copy(fx->uffd, page_at(fx, fx->a.base, 3), page_at(fx, src, 3), 3 * ps, 0, &out);
	check_errno(r, "partial-copy-is-eagain", -rc, EAGAIN, "UFFDIO_COPY of pages 3-5 with page 4 populated");
	check_value(r, "partial-copy-reports-done-bytes", out, (long long)ps, "its copy field");
	check_bytes(fx, "partial-copy-data", 3, 5, GEN_INITIAL);
	check_present(r, "partial-copy-stops-at-populated", page_at(fx, fx->a.base, 5), ps, false);
	return true;
}

/* Page 5, still absent, takes a COPY_MODE_WP: refused until MODE_WP is registered. */
static bool copy_wp(struct fx *fx, char *src)
{
	struct result *r = fx->r;
	char *page5 = page_at(fx, fx->a.base, 5);
	size_t ps = fx->a.psize, five = 5;
	uint64_t ioctls = 0;
	int64_t out = 0;
	int rc;

	set_phase(r, "COPY_MODE_WP");
	rc = uffd_copy(fx->uffd, page5, page_at(fx, src, 5), ps, UFFDIO_COPY_MODE_WP, &out);
	check_errno(r, "copy-wp-without-wp-is-einval", -rc, EINVAL, "UFFDIO_COPY_MODE_WP on a MISSING-only range");
	check_value(r, "copy-wp-without-wp-reports-einval", out, -EINVAL, "its copy field");
	check_present(r, "refused-copy-wp-maps-nothing", page5, ps, false);

	rc = uffd_register(fx->uffd, fx->a.base, fx->a.size, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
			   &ioctls);
	if (!check_errno(r, "register-adds-wp-mode", -rc, 0, "UFFDIO_REGISTER(MISSING|WP) over the MISSING range"))
		return false;
	check_value(r, "added-wp-mode-offers-writeprotect", !!(ioctls & (1ULL << _UFFDIO_WRITEPROTECT)), 1,
		    "WRITEPROTECT in the ioctls that REGISTER returned (0x%llx)", (unsigned long long)ioctls);
	check_wp_bits(r, "plain-copies-not-protected", fx->a.base, 5 * ps, false);
	out = 0;
	rc = uffd_copy(fx->uffd, page5, page_at(fx, src, 5), ps, UFFDIO_COPY_MODE_WP, &out);
	if (!check_errno(r, "copy-wp-succeeds", -rc, 0, "UFFDIO_COPY_MODE_WP of page 5"))
		return false;
	check_value(r, "copy-wp-reports-length", out, (long long)ps, "its copy field");
	check_bytes(fx, "copy-wp-data", 5, 6, GEN_INITIAL);
	check_wp_bits(r, "copy-wp-sets-wp-bit", page5, ps, true);
	if (!write_expect_faults(fx, &five, 1))
		return false;
	check_bytes(fx, "write-after-wp-fault-lands", 5, 6, GEN_WRITTEN);
	check_wp_bits(r, "wp-bit-clear-after-write", page5, ps, false);
	return true;
}

/*
 * UNREGISTER of the middle of a protected range resets bit 57 there and only there:
 * writes to pages 2-3 go through silently, writes to pages 0 and 5 still fault.
 */
static void partial_unregister(struct fx *fx)
{
	struct result *r = fx->r;
	size_t ps = fx->a.psize, middle[] = { 2, 3 }, ends[] = { 0, 5 };
	char *base = fx->a.base;

	set_phase(r, "UNREGISTER pages 2-3 of a protected range");
	check_prefix(r, "partial-unregister-");
	if (!fx_protect(fx, "protect-all", base, fx->a.size, true))
		goto out;
	check_wp_bits(r, "wp-bits-set", base, fx->a.size, true);
	if (!check_errno(r, "succeeds", -uffd_unregister(fx->uffd, base + 2 * ps, 2 * ps), 0,
			 "UFFDIO_UNREGISTER of pages 2-3"))
		goto out;
	check_wp_bits(r, "clears-wp-bits-inside", base + 2 * ps, 2 * ps, false);
	check_wp_bits(r, "keeps-wp-bits-before", base, 2 * ps, true);
	check_wp_bits(r, "keeps-wp-bits-after", base + 4 * ps, 2 * ps, true);
	if (write_expect_quiet(fx, middle, 2))
		write_expect_faults(fx, ends, 2);
out:
	check_prefix(r, "");
}

static void copy_unpopulated_source(struct run *run)
{
	struct result *r = run->r;
	size_t nonzero = 0;
	int64_t out = 0;
	struct fx fx;
	char *src;
	int rc;

	check_prefix(r, "unpopulated-src-");
	if (!fx_setup(&fx, run, 1, 0, 0, UFFDIO_REGISTER_MODE_MISSING, 0))
		goto out;
	src = mmap(NULL, fx.a.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!check_errno(r, "map-source", src == MAP_FAILED ? errno : 0, 0, "mmap a source, never touched"))
		goto out_fx;
	set_phase(r, "COPY from an unpopulated source");
	rc = uffd_copy(fx.uffd, fx.a.base, src, fx.a.size, 0, &out);
	check_errno(r, "copy-succeeds", -rc, 0, "UFFDIO_COPY of %zu bytes from an untouched source", fx.a.size);
	check_value(r, "copy-reports-length", out, (long long)fx.a.size, "its copy field");
	check_present(r, "copy-maps-page", fx.a.base, fx.a.size, true);
	for (size_t i = 0; !rc && i < fx.a.size; i++)
		nonzero += fx.a.base[i] != 0;
	check_value(r, "copy-data-is-zero", (long long)nonzero, 0, "non-zero bytes in the filled page");
	munmap(src, fx.a.size);
out_fx:
	fx_teardown(&fx);
out:
	check_prefix(r, "");
}

void fill_contract(struct run *run)
{
	struct result *r = run->r;
	size_t subpages;
	struct fx fx;
	char *src;

	if (run->mem == MEM_ANON)
		api_contract(run);
	if (!need_features(run, missing_features(run->mem)) ||
	    !fx_setup(&fx, run, NPAGES, 0, 0, UFFDIO_REGISTER_MODE_MISSING, 0))
		return;
	register_busy(&fx);
	src = mmap(NULL, fx.a.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!check_errno(r, "map-source", src == MAP_FAILED ? errno : 0, 0, "mmap the COPY source"))
		return;
	subpages = fx.a.size / BASE_PAGE;
	for (size_t s = 0; s < subpages; s++)
		*stamp_at(src, s) = stamp(run->seed, GEN_INITIAL, s);
	if (!copy_contract(&fx, src))
		return;
	if (wp_usable(run)) {
		if (copy_wp(&fx, src))
			partial_unregister(&fx);
	} else
		note(r, "COPY_MODE_WP part not run: kernel lacks uffd-wp for this memory type");
	if (r->stuck)
		return;
	check_value(r, "fills-raise-no-missing-fault", (long long)handler_stats(&fx.h).missing, 0,
		    "MISSING fault messages (no thread touched an absent page)");
	check_handler_clean(&fx);
	munmap(src, fx.a.size);
	fx_teardown(&fx);
	copy_unpopulated_source(run);
}
