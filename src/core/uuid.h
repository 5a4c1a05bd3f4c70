/* Time-ordered ids (UUID version 7): 48 bits of wall-clock milliseconds, then random bits. */
#ifndef CBX_CORE_UUID_H
#define CBX_CORE_UUID_H

#include <stdint.h>

/* Write the id made of ms and two random words (the version and variant bits are set here) as
 * 36 characters and a NUL into out. */
void cbx__uuid7_format(uint64_t ms, uint64_t r1, uint64_t r2, char out[40]);

/* A new id from the wall clock and the kernel's random source. */
void cbx__uuid7(char out[40]);

#endif
