/*
 * wp-unregister: protection must not outlive the registration. After UFFDIO_UNREGISTER
 * ("mm/uffd: reset write protection when unregister with wp-mode") and after close() of
 * the uffd ("mm/userfaultfd: reset ptes when close() for wr-protected ones") pagemap
 * bit 57 is clear and writes complete without faulting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "fixture.h"
#include "uffd.h"

enum teardown { BY_UNREGISTER, BY_CLOSE };

static void variant(struct run *run, enum teardown how)
{
	struct result *r = run->r;
	size_t n, *pages;
	struct fx fx;

	check_prefix(r, how == BY_UNREGISTER ? "unregister-" : "close-");
	if (!fx_setup(&fx, run, 0, FX_POPULATE, 0, UFFDIO_REGISTER_MODE_WP, 0))
		return;
	pages = page_list(fx.a.npages, PAGES_ALL, run->seed, &n);
	set_phase(r, "protect");
	if (!fx_protect(&fx, "protect-all", fx.a.base, fx.a.size, true))
		goto out;
	check_wp_bits(r, "wp-bit-set-after-protect", fx.a.base, fx.a.size, true);
	if (how == BY_UNREGISTER) {
		set_phase(r, "unregister");
		check_errno(r, "unregister", -uffd_unregister(fx.uffd, fx.a.base, fx.a.size), 0, "UFFDIO_UNREGISTER");
	} else {
		set_phase(r, "close the uffd");
		handler_stop(&fx.h);
		check_errno(r, "close", close(fx.uffd) ? errno : 0, 0, "close(uffd)");
		fx.uffd = -1;
	}
	check_wp_bits(r, "wp-bit-clear", fx.a.base, fx.a.size, false);
	if (!write_expect_quiet(&fx, pages, n))
		return;
	check_data(&fx, "data-intact", fx.a.base, NULL, GEN_WRITTEN);
	if (how == BY_UNREGISTER)
		check_handler_clean(&fx);
out:
	fx_teardown(&fx);
	free(pages);
}

void wp_unregister(struct run *run)
{
	if (!need_wp(run, 0))
		return;
	variant(run, BY_UNREGISTER);
	if (!run->r->stuck)
		variant(run, BY_CLOSE);
}
