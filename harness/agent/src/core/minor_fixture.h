/* What the minor-fault workloads share: feature gates, the alias fill, REGISTER bitmasks. */
#ifndef AGENT_MINOR_FIXTURE_H
#define AGENT_MINOR_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fixture.h"

#define CONTINUE_IOCTL (1ULL << _UFFDIO_CONTINUE)

/* Skip naming the feature unless MODE_MINOR works on this memory type. */
bool need_minor(struct run *run);
/*
 * Write generation gen into every page through the alias (never registered), with the
 * handler watching: records <what>-complete and <what>-do-not-fault. False if the
 * writers got stuck (the run must just return).
 */
bool alias_writes(struct fx *fx, const char *what, unsigned gen);
/*
 * REGISTER without MODE_MINOR must not offer CONTINUE, and with it must: leaves the
 * area registered with MODE_MINOR|extra_mode. False if that registration failed.
 */
bool register_minor(struct fx *fx, uint64_t extra_mode);
/* The minor-fault counts after reading every page once through the registered mapping. */
void check_minor_reads(struct fx *fx, const char *name, struct hstats before, size_t n);
/*
 * Read the listed pages through the registered mapping: records reads-complete and
 * check_minor_reads' one-minor-fault-per-page. False if the readers got stuck.
 */
bool read_expect_minor(struct fx *fx, const size_t *pages, size_t n);

#endif
