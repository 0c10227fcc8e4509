/* Checks the missing-fault workloads share (missing-copy, missing-zeropage). */
#ifndef AGENT_MISSING_CHECKS_H
#define AGENT_MISSING_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

#include "fixture.h"

/* The handler resolved one MISSING fault per page of n, nothing else, whole pages each. */
void check_missing_fills(struct fx *fx, size_t n);
/* A second COPY (or ZEROPAGE) of page 0, now populated, is EEXIST, and says so in its output. */
void check_refill_eexist(struct fx *fx, bool zeropage);

#endif
