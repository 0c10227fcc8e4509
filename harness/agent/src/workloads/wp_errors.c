/*
 * wp-errors: the error contract of UFFDIO_WRITEPROTECT (and of the REGISTER and API
 * calls it depends on). Nothing a failed call touches may end up protected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"
#include "util.h"

/* TASK_SIZE of x86-64 with 4-level paging: REGISTER past it is EINVAL for the range alone. */
#define USER_TOP 0x7ffffffff000ULL

/* One page registered MISSING only, one not registered, then a hole where two were. */
static void foreign_ranges(struct fx *fx)
{
	struct result *r = fx->r;
	char *m = mmap(NULL, 4 * BASE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t wp = UFFDIO_WRITEPROTECT_MODE_WP;

	if (!check_errno(r, "map-helper-pages", m == MAP_FAILED ? errno : 0, 0, "mmap 4 anonymous pages"))
		return;
	if (check_errno(r, "register-missing-helper",
			-uffd_register(fx->uffd, m, BASE_PAGE, UFFDIO_REGISTER_MODE_MISSING, NULL), 0,
			"UFFDIO_REGISTER(MODE_MISSING) of a helper page"))
		check_errno(r, "wp-on-missing-only-range-is-enoent", -uffd_writeprotect(fx->uffd, m, BASE_PAGE, wp),
			    ENOENT, "WRITEPROTECT on a page registered without MODE_WP");
	check_errno(r, "wp-on-unregistered-range-is-enoent",
		    -uffd_writeprotect(fx->uffd, m + BASE_PAGE, BASE_PAGE, wp), ENOENT,
		    "WRITEPROTECT on a page no uffd registered");
	check_errno(r, "register-mode-zero-is-einval", -uffd_register(fx->uffd, m + BASE_PAGE, BASE_PAGE, 0, NULL),
		    EINVAL, "UFFDIO_REGISTER with mode 0");
	check_errno(r, "register-unknown-mode-is-einval",
		    -uffd_register(fx->uffd, m + BASE_PAGE, BASE_PAGE, 1ULL << 7, NULL), EINVAL,
		    "UFFDIO_REGISTER with mode bit 7");
	munmap(m + 2 * BASE_PAGE, 2 * BASE_PAGE);
	check_errno(r, "wp-on-unmapped-range-is-enoent",
		    -uffd_writeprotect(fx->uffd, m + 2 * BASE_PAGE, 2 * BASE_PAGE, wp), ENOENT,
		    "WRITEPROTECT on a range with no mapping");
	munmap(m, 2 * BASE_PAGE);
}

/* The end of the highest mapping below the 47-bit user limit (from /proc/self/maps), or 0. */
static uintptr_t top_of_mappings(void)
{
	size_t size = 1 << 20;
	char *text = malloc(size), *line;
	uintptr_t top = 0;

	if (!text)
		abort();
	if (read_text("/proc/self/maps", text, size) > 0)
		for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			unsigned long long from, to;

			if (sscanf(line, "%llx-%llx", &from, &to) == 2 && to <= USER_TOP && to > top)
				top = (uintptr_t)to;
		}
	free(text);
	return top;
}

/*
 * REGISTER and UNREGISTER of a page above every mapping: no VMA at all is found. EINVAL
 * (6.1 says ENOMEM: its lookup fails before the EINVAL is set); never success.
 */
static void above_every_mapping(struct fx *fx)
{
	struct result *r = fx->r;
	uintptr_t top = top_of_mappings();
	void *at = (void *)top;
	int rc;

	if (!top || top + BASE_PAGE > USER_TOP) {
		note(r, "no free page above every mapping (top 0x%llx): the no-VMA REGISTER not tried",
		     (unsigned long long)top);
		return;
	}
	rc = -uffd_register(fx->uffd, at, BASE_PAGE, UFFDIO_REGISTER_MODE_WP, NULL);
	check_value(r, "register-above-every-mapping-fails", rc == EINVAL || rc == ENOMEM, 1,
		    "UFFDIO_REGISTER of the page above every mapping: %s, want EINVAL (6.1: ENOMEM)",
		    rc ? errno_name(rc) : "success");
	rc = -uffd_unregister(fx->uffd, at, BASE_PAGE);
	check_value(r, "unregister-above-every-mapping-fails", rc == EINVAL || rc == ENOMEM, 1,
		    "UFFDIO_UNREGISTER of the page above every mapping: %s, want EINVAL (6.1: ENOMEM)",
		    rc ? errno_name(rc) : "success");
}

static void bad_arguments(struct fx *fx)
{
	struct result *r = fx->r;
	char *base = fx->a.base;
	size_t ps = fx->a.psize;
	uint64_t wp = UFFDIO_WRITEPROTECT_MODE_WP;

	check_errno(r, "unknown-mode-bit-is-einval", -uffd_writeprotect(fx->uffd, base, ps, 1ULL << 2), EINVAL,
		    "WRITEPROTECT with mode bit 2");
	check_errno(r, "high-mode-bit-is-einval", -uffd_writeprotect(fx->uffd, base, ps, wp | 1ULL << 63), EINVAL,
		    "WRITEPROTECT with mode WP|bit 63");
	check_errno(r, "zero-length-is-einval", -uffd_writeprotect(fx->uffd, base, 0, wp), EINVAL,
		    "WRITEPROTECT of length 0");
	check_errno(r, "unaligned-start-is-einval", -uffd_writeprotect(fx->uffd, base + 1, ps, wp), EINVAL,
		    "WRITEPROTECT starting 1 byte into a page");
	/* Page aligned, so only the wrap itself can be what is wrong. */
	check_errno(r, "wrapping-range-is-einval", -uffd_writeprotect(fx->uffd, base, ~(size_t)(BASE_PAGE - 1), wp),
		    EINVAL, "WRITEPROTECT whose start+len wraps around");
	if (!mem_info(fx->a.type)->hugetlb)
		return;
	/* Inside the mapping: a range past its end is ENOENT on kernels that look the VMA up first. */
	check_errno(r, "hugetlb-unaligned-start-is-einval",
		    -uffd_writeprotect(fx->uffd, base + BASE_PAGE, ps - BASE_PAGE, wp), EINVAL,
		    "WRITEPROTECT of the last %zu kB of a %zu kB hugetlb page", (ps - BASE_PAGE) / KIB, ps / KIB);
	check_errno(r, "hugetlb-partial-length-is-einval", -uffd_writeprotect(fx->uffd, base, BASE_PAGE, wp), EINVAL,
		    "WRITEPROTECT of 4K of a %zu kB hugetlb page", ps / KIB);
	check_errno(r, "hugetlb-unaligned-register-is-einval",
		    -uffd_register(fx->uffd, base + BASE_PAGE, ps, UFFDIO_REGISTER_MODE_WP, NULL), EINVAL,
		    "UFFDIO_REGISTER starting 4K into a %zu kB hugetlb page", ps / KIB);
}

static void api_misuse(struct fx *fx)
{
	struct result *r = fx->r;
	char source[48];
	int fd;

	check_errno(r, "api-twice-is-einval", -uffd_api(fx->uffd, 0, NULL), EINVAL, "a second UFFDIO_API on one uffd");
	fd = uffd_open(source, sizeof(source));
	if (!check_errno(r, "open-second-uffd", fd < 0 ? -fd : 0, 0, "userfaultfd"))
		return;
	check_errno(r, "register-before-api-is-einval",
		    -uffd_register(fd, fx->a.base, fx->a.psize, UFFDIO_REGISTER_MODE_WP, NULL), EINVAL,
		    "UFFDIO_REGISTER before UFFDIO_API");
	close(fd);
}

void wp_errors(struct run *run)
{
	struct fx fx;

	if (!need_wp(run, 0) || !fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	set_phase(run->r, "error contract");
	foreign_ranges(&fx);
	above_every_mapping(&fx);
	bad_arguments(&fx);
	api_misuse(&fx);
	check_wp_bits(run->r, "failed-calls-protect-nothing", fx.a.base, fx.a.size, false);
	check_handler_clean(&fx);
	fx_teardown(&fx);
}
