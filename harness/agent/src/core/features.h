/* `uffd-agent features`: what this kernel and system offer, as JSON. */
#ifndef AGENT_FEATURES_H
#define AGENT_FEATURES_H

#include "json.h"

void features_json(struct jw *w);

#endif
