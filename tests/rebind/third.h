/* The interface of libthird.so (third.c). */
#ifndef REBIND_THIRD_H
#define REBIND_THIRD_H

#include <stddef.h>

#include "id.h"

id_fn *const *third_table(void);
int *const *third_array_ptr(void);

const char *third_call(void);
id_fn *third_fp(void);
int third_bump(void);
const char *third_ver0(void);
const char *third_hooked(void);
int *third_counter_addr(void);
size_t (*third_strlen(void))(const char *);
int third_tls_get(void);
int *third_tls_addr(void);

#endif
