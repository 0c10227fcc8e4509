#define _GNU_SOURCE
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
}

void jw_free(struct jw *w)
{
	free(w->buf);
	jw_init(w);
}

static void put(struct jw *w, const char *s, size_t n)
{
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 1024;

		while (w->len + n + 1 > cap)
			cap *= 2;
		w->buf = realloc(w->buf, cap);
		if (!w->buf)
			abort();
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void puts_(struct jw *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Separates values inside a container; a value right after its key needs nothing. */
static void pre_value(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth > 0) {
		if (!w->first[w->depth])
			put(w, ",", 1);
		w->first[w->depth] = false;
	}
}

static void open_(struct jw *w, const char *c)
{
	pre_value(w);
	puts_(w, c);
	if (w->depth + 1 >= JW_MAX_DEPTH)
		abort();
	w->first[++w->depth] = true;
}

void jw_obj(struct jw *w)
{
	open_(w, "{");
}

void jw_arr(struct jw *w)
{
	open_(w, "[");
}

void jw_end_obj(struct jw *w)
{
	w->depth--;
	puts_(w, "}");
}

void jw_end_arr(struct jw *w)
{
	w->depth--;
	puts_(w, "]");
}

static void quoted(struct jw *w, const char *s)
{
	put(w, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];

		switch (*p) {
		case '"':
			puts_(w, "\\\"");
			break;
		case '\\':
			puts_(w, "\\\\");
			break;
		case '\n':
			puts_(w, "\\n");
			break;
		case '\t':
			puts_(w, "\\t");
			break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				puts_(w, esc);
			} else {
				put(w, (const char *)p, 1);
			}
		}
	}
	put(w, "\"", 1);
}

void jw_key(struct jw *w, const char *key)
{
	pre_value(w);
	quoted(w, key);
	put(w, ":", 1);
	w->after_key = true;
}

void jw_str(struct jw *w, const char *s)
{
	pre_value(w);
	quoted(w, s);
}

void jw_int(struct jw *w, long long v)
{
	char b[32];

	pre_value(w);
	snprintf(b, sizeof(b), "%lld", v);
	puts_(w, b);
}

void jw_uint(struct jw *w, unsigned long long v)
{
	char b[32];

	pre_value(w);
	snprintf(b, sizeof(b), "%llu", v);
	puts_(w, b);
}

void jw_double(struct jw *w, double v)
{
	char b[48];

	pre_value(w);
	if (!isfinite(v)) {
		puts_(w, "null");
		return;
	}
	snprintf(b, sizeof(b), "%.3f", v);
	puts_(w, b);
}

void jw_bool(struct jw *w, bool v)
{
	pre_value(w);
	puts_(w, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
	pre_value(w);
	puts_(w, "null");
}
