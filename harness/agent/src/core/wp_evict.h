/* The shape wp-swap and wp-zap share: protect, evict, read back, write (see wp_evict.c). */
#ifndef AGENT_WP_EVICT_H
#define AGENT_WP_EVICT_H

#include "fixture.h"

/*
 * Protect the populated area, let evict() take its pages away (recording its own checks,
 * under its own phase), read the even pages back, then write every page: each write
 * must still raise one WP fault. The caller has already checked for uffd-wp support.
 */
void wp_evict(struct run *run, void (*evict)(struct fx *fx));

#endif
