/* Small text helpers shared by every layer: "did you mean" distances and a string hash. */
#ifndef CBX_CORE_TEXT_H
#define CBX_CORE_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Levenshtein distance between two short strings, for "did you mean"; 99 when either is longer
 * than 63 bytes (long names are not compared). */
size_t cbx__edit_distance(const char *a, const char *b);

/* 1 when a distance d to a word of length len is close enough to suggest it. */
int cbx__close_enough(size_t d, size_t len);

/* Glob matching of a name: '*' (any run, also empty) and '?' (one character); no classes or
 * escapes. casefold: ASCII letters match either case. Linear in practice: no backtracking
 * beyond the last '*' (a pattern cannot make it exponential, as it can fnmatch). 1 or 0. */
int cbx__glob_match(const char *pat, const char *s, int casefold);

/* qsort's comparison of two strings, for an array of char * (strcmp order). */
int cbx__cmp_strings(const void *a, const void *b);

/* FNV-1a, 64 bits: start from CBX__FNV_OFFSET, or from an earlier result to hash several pieces
 * as one. */
#define CBX__FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t cbx__fnv1a(uint64_t h, const void *data, size_t len);

#endif
