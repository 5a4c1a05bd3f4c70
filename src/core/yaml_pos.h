/* Where each node of a loaded YAML document was written: a hash table from a node's place in
 * its parent to its line and column. */
#ifndef CBX_YAML_POS_H
#define CBX_YAML_POS_H

#include <stddef.h>

/* A place is (p, i): a sequence and an item's index, or the key string a mapping holds for a
 * member (the pointer jansson keeps; i = CBX__YAML_KEY), or (NULL, 0) for the root. Nothing is
 * stored by path, so a long key is not repeated in every position below it. */
#define CBX__YAML_KEY ((size_t)-1)

typedef struct cbx__yaml_pos cbx__yaml_pos;

cbx__yaml_pos *cbx__yaml_pos_new(void);
void cbx__yaml_pos_free(cbx__yaml_pos *t);

/* 0, or -ENOMEM. offset, line and col are 0-based and count characters, as libyaml's marks do
 * (offsets past 4G are clamped). A place given twice keeps the first. */
int cbx__yaml_pos_put(cbx__yaml_pos *t, const void *p, size_t i, size_t offset, size_t line,
                      size_t col);

/* Sort what was put, for the look-ups; no put after it. */
void cbx__yaml_pos_seal(cbx__yaml_pos *t);

/* 0 and line/col (1-based), or -ENOENT (also before the seal). Reads only: look-ups may come
 * from several threads at once. */
int cbx__yaml_pos_get(const cbx__yaml_pos *t, const void *p, size_t i, int *line, int *col);

#endif
