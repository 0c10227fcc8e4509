/*
 * minor-anon-rejected: REGISTER with MODE_MINOR (alone or with MISSING) on anonymous memory
 * is EINVAL and registers nothing; CONTINUE on anonymous memory is EINVAL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "fixture.h"
#include "minor_fixture.h"
#include "uffd.h"

void minor_anon_rejected(struct run *run)
{
	const uint64_t minor = UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM;
	struct result *r = run->r;
	size_t n, *even;
	uint64_t ioctls = 0;
	int64_t mapped = 0;
	struct fx fx;
	int rc;

	/* Without MODE_MINOR anywhere, EINVAL would prove nothing about anonymous memory. */
	if (!(run->features & minor)) {
		skip(r, "kernel lacks UFFD_FEATURE MINOR_HUGETLBFS and MINOR_SHMEM: no MODE_MINOR to reject");
		return;
	}
	if (!fx_setup(&fx, run, 0, 0, 0, 0, 0))
		return;
	even = page_list(fx.a.npages, PAGES_EVEN, run->seed, &n);
	set_phase(r, "register minor on anonymous memory");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MINOR, NULL);
	check_errno(r, "register-minor-is-einval", -rc, EINVAL, "UFFDIO_REGISTER(MODE_MINOR) of anonymous memory");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
			   NULL);
	check_errno(r, "register-missing-minor-is-einval", -rc, EINVAL,
		    "UFFDIO_REGISTER(MODE_MISSING|MODE_MINOR) of anonymous memory");

	/* Half-applied, the rejected MISSING|MINOR would make these writes fault. */
	set_phase(r, "write after the rejected registrations");
	if (!write_expect_quiet(&fx, even, n))
		goto out;

	set_phase(r, "CONTINUE on anonymous memory");
	rc = uffd_register(fx.uffd, fx.a.base, fx.a.size, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (check_errno(r, "register-missing", -rc, 0, "UFFDIO_REGISTER(MODE_MISSING)")) {
		check_value(r, "missing-ioctls-lack-continue", !!(ioctls & CONTINUE_IOCTL), 0,
			    "CONTINUE in the ioctls REGISTER(MODE_MISSING) returned (0x%llx)", (unsigned long long)ioctls);
		/* Page 1: odd, so never written above. */
		rc = uffd_continue(fx.uffd, fx.a.base + fx.a.psize, fx.a.psize, 0, &mapped);
		check_errno(r, "continue-is-einval", -rc, EINVAL, "UFFDIO_CONTINUE on registered anonymous memory");
		check_value(r, "continue-mapped-is-einval", mapped, -EINVAL, "its mapped field");
	}
	check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(even);
}
