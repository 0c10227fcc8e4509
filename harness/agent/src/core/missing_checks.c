#define _GNU_SOURCE
#include "missing_checks.h"

#include <errno.h>
#include <stdlib.h>

#include "uffd.h"

void check_missing_fills(struct fx *fx, size_t n)
{
	struct hstats s = handler_stats(&fx->h);

	check_value(fx->r, "one-missing-fault-per-page", (long long)s.missing, (long long)n,
		    "MISSING fault messages for first touches of %zu pages", n);
	check_value(fx->r, "no-other-faults", (long long)(s.wp + s.minor), 0, "WP and MINOR fault messages");
	check_value(fx->r, "fill-covers-whole-page", (long long)s.short_resolves, 0,
		    "fills that reported other than %zu bytes (the last %lld)", fx->a.psize, (long long)s.short_out);
}

void check_refill_eexist(struct fx *fx, bool zeropage)
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
