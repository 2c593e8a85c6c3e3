/* The interface of libid_old.so / libid_new.so (libid.c). */
#ifndef REBIND_ID_H
#define REBIND_ID_H

typedef const char *id_fn(void);

extern int id_counter;
extern int id_array[4];
extern __thread int id_tls;

const char *id_name(void);
int id_bump(void);
const char *id_hooked(void);
const char *id_fast(void);
const char *id_ver(void);
const char *id_only_old(void);

#endif
