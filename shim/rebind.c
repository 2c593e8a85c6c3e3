/*
 * Re-pointing imports to a fresh copy of gRPC (docs/design.md, "a fresh gRPC
 * in the child"). The child loads renamed copies of gRPC's libraries; the
 * program and the libraries that are not gRPC's still have their relocated
 * slots (GOT entries, PLT slots, pointers in data) on the old copy. This
 * rewrites those slots.
 *
 * Where an import binds is decided from its symbol, never from the slot's
 * value: a lazily bound slot still holds the address of its PLT stub, which
 * lies in the importing object, and would later resolve into the old set
 * when first called. So for each relocation: its name and version (from
 * DT_VERSYM/DT_VERNEED); whether any old object defines that at all (an own
 * hash-table lookup, which is cheap and rejects nearly every import: libc's,
 * libstdc++'s); if so, where the loader's own global lookup (dlvsym on
 * RTLD_DEFAULT, then the importing object's own scope for a plugin loaded
 * RTLD_LOCAL) finds it. Only a definition inside the old set is re-pointed;
 * one in an interposer (the preloaded shim hooks some gRPC functions) or in
 * the program's copy of some data is left.
 *
 * A program that is not PIE and takes a function's address makes its PLT
 * entry the function's address: its dynamic symbol is undefined with a
 * value, and a global lookup returns it. Everybody else's pointer to the
 * function is then that PLT entry, which is right; but the program's own
 * PLT slot must be followed to the definition behind it, as the loader does
 * for PLT slots.
 *
 * The new address comes from dlvsym on the new set's handles, in order, and
 * must lie in the new set: a handle's lookup also searches its
 * dependencies, where a lookup that fails in the copies would find libc's.
 *
 * A slot in a page that is read-only now (RELRO, or a segment without write
 * permission) is written between two mprotect calls; the protection put back
 * is the one the loader left, from the object's program headers.
 *
 * Relocations are read as the loader left them: on x86-64 glibc rewrites the
 * pointers in the dynamic section to absolute addresses, except where the
 * section is read-only (the vDSO), so each pointer is taken as absolute when
 * it lies inside the object and as relative otherwise.
 */
#include "rebind.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#define MAX_DYN 4096
#define MAX_VER_WALK 65536

struct obj {
	struct link_map *map;
	uintptr_t base;
	const ElfW(Phdr) *phdr;
	size_t phnum;
	uintptr_t lo, hi; /* extent of the PT_LOAD segments */
	size_t tls_modid; /* 0: no TLS segment */
	const ElfW(Sym) *symtab;
	const char *strtab;
	size_t strsz;
	size_t soname; /* offset in strtab; 0: none */
	size_t nsyms; /* SIZE_MAX: unknown (no hash table) */
	const uint32_t *gnuhash, *sysvhash;
	const ElfW(Half) *versym;
	const ElfW(Verdef) *verdef;
	size_t verdefnum;
	const ElfW(Verneed) *verneed;
	size_t verneednum;
	const ElfW(Rela) *rela, *jmprel;
	size_t nrela, njmprel;
	bool symbolic;
	bool found, parsed, old, fresh, skipped;
};

struct objs {
	struct obj *v;
	size_t n;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool fs_rebind_in_maps(const struct link_map *map, const void *arg)
{
	const struct fs_rebind_maps *m = arg;

	for (size_t i = 0; m != NULL && i < m->n; i++)
		if (m->maps[i] == map)
			return true;
	return false;
}

static size_t page_size(void)
{
	unsigned long ps = getauxval(AT_PAGESZ);

	return ps != 0 ? ps : 4096;
}

/* ---- The snapshot of loaded objects ---- */

static int match_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct objs *objs = arg;
	uintptr_t dyn = 0, lo = UINTPTR_MAX, hi = 0;

	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = info->dlpi_addr + ph->p_vaddr;
		else if (ph->p_type == PT_LOAD) {
			if (info->dlpi_addr + ph->p_vaddr < lo)
				lo = info->dlpi_addr + ph->p_vaddr;
			if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
				hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		}
	}
	if (dyn == 0)
		return 0;
	for (size_t i = 0; i < objs->n; i++) {
		struct obj *o = &objs->v[i];

		if (!o->found && (uintptr_t)o->map->l_ld == dyn && o->map->l_addr == info->dlpi_addr) {
			o->found = true;
			o->base = info->dlpi_addr;
			o->phdr = info->dlpi_phdr;
			o->phnum = info->dlpi_phnum;
			o->lo = lo;
			o->hi = hi;
			o->tls_modid = info->dlpi_tls_modid;
			break;
		}
	}
	return 0;
}

static uintptr_t dptr(const struct obj *o, ElfW(Addr) v)
{
	if (v == 0 || o->base == 0 || (v >= o->lo && v < o->hi))
		return v;
	return o->base + v;
}

static size_t gnu_nsyms(const uint32_t *t)
{
	uint32_t nbuckets = t[0], symoffset = t[1], bloom = t[2];
	const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(t + 4) + bloom);
	const uint32_t *chain = buckets + nbuckets;
	uint32_t last = 0;

	for (uint32_t i = 0; i < nbuckets; i++)
		if (buckets[i] > last)
			last = buckets[i];
	if (last < symoffset)
		return symoffset;
	while ((chain[last - symoffset] & 1) == 0)
		last++;
	return (size_t)last + 1;
}

/* Reads what is needed from the object's dynamic section. False when the
 * object has nothing to look at or is malformed. */
static bool parse_dynamic(struct obj *o)
{
	const ElfW(Dyn) *d = o->map->l_ld;
	uintptr_t relasz = 0, relaent = sizeof(ElfW(Rela)), pltrelsz = 0, pltrel = DT_RELA;

	if (d == NULL || !o->found)
		return false;
	for (size_t i = 0; i < MAX_DYN && d[i].d_tag != DT_NULL; i++) {
		ElfW(Addr) p = d[i].d_un.d_ptr;

		switch (d[i].d_tag) {
		case DT_SYMTAB: o->symtab = (const ElfW(Sym) *)dptr(o, p); break;
		case DT_STRTAB: o->strtab = (const char *)dptr(o, p); break;
		case DT_STRSZ: o->strsz = d[i].d_un.d_val; break;
		case DT_SONAME: o->soname = d[i].d_un.d_val; break;
		case DT_GNU_HASH: o->gnuhash = (const uint32_t *)dptr(o, p); break;
		case DT_HASH: o->sysvhash = (const uint32_t *)dptr(o, p); break;
		case DT_VERSYM: o->versym = (const ElfW(Half) *)dptr(o, p); break;
		case DT_VERDEF: o->verdef = (const ElfW(Verdef) *)dptr(o, p); break;
		case DT_VERDEFNUM: o->verdefnum = d[i].d_un.d_val; break;
		case DT_VERNEED: o->verneed = (const ElfW(Verneed) *)dptr(o, p); break;
		case DT_VERNEEDNUM: o->verneednum = d[i].d_un.d_val; break;
		case DT_RELA: o->rela = (const ElfW(Rela) *)dptr(o, p); break;
		case DT_RELASZ: relasz = d[i].d_un.d_val; break;
		case DT_RELAENT: relaent = d[i].d_un.d_val; break;
		case DT_JMPREL: o->jmprel = (const ElfW(Rela) *)dptr(o, p); break;
		case DT_PLTRELSZ: pltrelsz = d[i].d_un.d_val; break;
		case DT_PLTREL: pltrel = d[i].d_un.d_val; break;
		case DT_SYMBOLIC: o->symbolic = true; break;
		case DT_FLAGS: o->symbolic |= (d[i].d_un.d_val & DF_SYMBOLIC) != 0; break;
		default: break;
		}
	}
	if (o->symtab == NULL || o->strtab == NULL || relaent != sizeof(ElfW(Rela)))
		return false;
	o->nrela = o->rela != NULL ? relasz / sizeof(ElfW(Rela)) : 0;
	o->njmprel = o->jmprel != NULL && pltrel == DT_RELA ? pltrelsz / sizeof(ElfW(Rela)) : 0;
	/* Some linkers make DT_RELA's range take in the PLT relocations too. */
	if (o->njmprel > 0 && o->nrela > 0 && o->jmprel >= o->rela && o->jmprel < o->rela + o->nrela)
		o->nrela = (size_t)(o->jmprel - o->rela);
	/* A GNU table with no buckets, no Bloom words or a shift past the
	 * hash's width is not one we can search. */
	if (o->gnuhash != NULL && (o->gnuhash[0] == 0 || o->gnuhash[2] == 0 || o->gnuhash[3] >= 32))
		o->gnuhash = NULL;
	if (o->gnuhash != NULL)
		o->nsyms = gnu_nsyms(o->gnuhash);
	else if (o->sysvhash != NULL)
		o->nsyms = o->sysvhash[1];
	else
		o->nsyms = SIZE_MAX;
	return true;
}

static void free_objs(struct objs *objs)
{
	free(objs->v);
	objs->v = NULL;
	objs->n = 0;
}

static int load_objs(struct objs *objs, char *err, size_t errlen)
{
	void *self = dlopen(NULL, RTLD_LAZY);
	struct link_map *head = NULL, *m;
	size_t n = 0;

	objs->v = NULL;
	objs->n = 0;
	if (self == NULL || dlinfo(self, RTLD_DI_LINKMAP, &head) != 0 || head == NULL) {
		set_err(err, errlen, "no link map for the program: %s", dlerror());
		if (self != NULL)
			dlclose(self);
		return -1;
	}
	dlclose(self);
	while (head->l_prev != NULL)
		head = head->l_prev;
	for (m = head; m != NULL; m = m->l_next)
		n++;
	objs->v = calloc(n, sizeof(*objs->v));
	if (objs->v == NULL) {
		set_err(err, errlen, "out of memory for %zu objects", n);
		return -1;
	}
	for (m = head; m != NULL && objs->n < n; m = m->l_next)
		objs->v[objs->n++].map = m;
	dl_iterate_phdr(match_phdr, objs);
	for (size_t i = 0; i < objs->n; i++)
		objs->v[i].parsed = parse_dynamic(&objs->v[i]);
	return 0;
}

static struct obj *obj_of(const struct objs *objs, uintptr_t addr)
{
	for (size_t i = 0; i < objs->n; i++) {
		struct obj *o = &objs->v[i];

		if (!o->found || addr < o->lo || addr >= o->hi)
			continue;
		for (size_t j = 0; j < o->phnum; j++) {
			const ElfW(Phdr) *ph = &o->phdr[j];

			if (ph->p_type == PT_LOAD && addr >= o->base + ph->p_vaddr &&
			    addr < o->base + ph->p_vaddr + ph->p_memsz)
				return o;
		}
	}
	return NULL;
}

/* ---- Symbols and versions ---- */

static const char *str_at(const struct obj *o, size_t off)
{
	return off < o->strsz ? o->strtab + off : NULL;
}

/* The version name of the definition at index i of a defining object, or
 * NULL when it has none. */
static const char *def_version(const struct obj *o, size_t i, unsigned *ndx, bool *hidden)
{
	const ElfW(Verdef) *vd = o->verdef;

	*ndx = o->versym != NULL ? o->versym[i] & 0x7fff : 1;
	*hidden = o->versym != NULL && (o->versym[i] & 0x8000) != 0;
	if (*ndx <= 1 || vd == NULL)
		return NULL;
	for (size_t k = 0; k < o->verdefnum && k < MAX_VER_WALK; k++) {
		if (vd->vd_ndx == *ndx) {
			const ElfW(Verdaux) *aux = (const ElfW(Verdaux) *)((const char *)vd + vd->vd_aux);

			return str_at(o, aux->vda_name);
		}
		if (vd->vd_next == 0)
			break;
		vd = (const ElfW(Verdef) *)((const char *)vd + vd->vd_next);
	}
	return NULL;
}

/* The version an object's reference to its symbol i asks for, or NULL. */
static const char *ref_version(const struct obj *o, size_t i)
{
	const ElfW(Verneed) *vn = o->verneed;
	unsigned ndx;
	bool hidden;

	if (o->versym == NULL || (o->versym[i] & 0x7fff) <= 1)
		return NULL;
	ndx = o->versym[i] & 0x7fff;
	for (size_t k = 0; vn != NULL && k < o->verneednum && k < MAX_VER_WALK; k++) {
		const ElfW(Vernaux) *a = (const ElfW(Vernaux) *)((const char *)vn + vn->vn_aux);

		for (size_t j = 0; j < vn->vn_cnt; j++) {
			if (a->vna_other == ndx)
				return str_at(o, a->vna_name);
			if (a->vna_next == 0)
				break;
			a = (const ElfW(Vernaux) *)((const char *)a + a->vna_next);
		}
		if (vn->vn_next == 0)
			break;
		vn = (const ElfW(Verneed) *)((const char *)vn + vn->vn_next);
	}
	/* The object's own definition (a reference it also exports). */
	return def_version(o, i, &ndx, &hidden);
}

/* Whether symbol i of o can satisfy a reference to `version`: a versioned
 * reference wants that version, or an unversioned definition; an
 * unversioned one takes the base or the default version, never a hidden
 * one. */
static bool version_matches(const struct obj *o, size_t i, const char *version)
{
	unsigned ndx;
	bool hidden;
	const char *v = def_version(o, i, &ndx, &hidden);

	if (o->versym == NULL || ndx <= 1)
		return true;
	if (version == NULL)
		return !hidden;
	return v != NULL && strcmp(v, version) == 0;
}

static uint32_t hash_gnu(const char *s)
{
	uint32_t h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static uint32_t hash_sysv(const char *s)
{
	uint32_t h = 0, g;

	for (; *s != '\0'; s++) {
		h = (h << 4) + (unsigned char)*s;
		g = h & 0xf0000000u;
		if (g != 0)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

static bool sym_matches(const struct obj *o, size_t i, const char *name, const char *version)
{
	const char *n;

	if (i >= o->nsyms)
		return false;
	n = str_at(o, o->symtab[i].st_name);
	return n != NULL && strcmp(n, name) == 0 && version_matches(o, i, version);
}

/* A name looked up in many objects: its hashes are computed once, when
 * first needed. */
struct symkey {
	const char *name, *version;
	uint32_t gnu, sysv;
	bool have_gnu, have_sysv;
};

/* The index of key's symbol in o's hash table (defined or not), or 0. */
static size_t lookup_key(const struct obj *o, struct symkey *key)
{
	const char *name = key->name, *version = key->version;

	if (!o->parsed)
		return 0;
	if (o->gnuhash != NULL) {
		const uint32_t *t = o->gnuhash;
		uint32_t nbuckets = t[0], symoffset = t[1], nbloom = t[2], shift = t[3];
		const ElfW(Addr) *bloom = (const ElfW(Addr) *)(t + 4);
		const uint32_t *buckets = (const uint32_t *)(bloom + nbloom);
		const uint32_t *chain = buckets + nbuckets;
		const unsigned bits = sizeof(ElfW(Addr)) * CHAR_BIT;
		uint32_t h;
		ElfW(Addr) word, mask;

		if (!key->have_gnu) {
			key->gnu = hash_gnu(name);
			key->have_gnu = true;
		}
		h = key->gnu;
		word = bloom[(h / bits) % nbloom];
		mask = ((ElfW(Addr))1 << (h % bits)) | ((ElfW(Addr))1 << ((h >> shift) % bits));

		if ((word & mask) != mask)
			return 0;
		for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i != 0; i++) {
			uint32_t c = chain[i - symoffset];

			if ((c | 1) == (h | 1) && sym_matches(o, i, name, version))
				return i;
			if (c & 1)
				break;
		}
		return 0;
	}
	if (o->sysvhash != NULL) {
		uint32_t nbucket = o->sysvhash[0], nchain = o->sysvhash[1];
		const uint32_t *bucket = o->sysvhash + 2, *chain = bucket + nbucket;
		size_t steps = 0;

		if (nbucket == 0)
			return 0;
		if (!key->have_sysv) {
			key->sysv = hash_sysv(name);
			key->have_sysv = true;
		}
		for (uint32_t i = bucket[key->sysv % nbucket]; i != 0 && i < nchain && steps++ < nchain;
		     i = chain[i])
			if (sym_matches(o, i, name, version))
				return i;
	}
	return 0;
}

static bool is_definition(const ElfW(Sym) *s)
{
	unsigned bind = ELF64_ST_BIND(s->st_info);

	if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE)
		return false;
	if (s->st_shndx == SHN_UNDEF)
		return false;
	return s->st_value != 0 || s->st_shndx == SHN_ABS || ELF64_ST_TYPE(s->st_info) == STT_TLS;
}

static size_t lookup_in(const struct obj *o, const char *name, const char *version)
{
	struct symkey key = { .name = name, .version = version };

	return lookup_key(o, &key);
}

/* The symbol index of o's definition of key's symbol, or 0. */
static size_t defined_key(const struct obj *o, struct symkey *key)
{
	size_t i = lookup_key(o, key);

	return i != 0 && is_definition(&o->symtab[i]) ? i : 0;
}

static size_t defined_in(const struct obj *o, const char *name, const char *version)
{
	struct symkey key = { .name = name, .version = version };

	return defined_key(o, &key);
}

static const struct obj *old_definer(const struct objs *objs, const char *name, const char *version)
{
	struct symkey key = { .name = name, .version = version };

	for (size_t i = 0; i < objs->n; i++)
		if (objs->v[i].old && defined_key(&objs->v[i], &key) != 0)
			return &objs->v[i];
	return NULL;
}

static void *dl_lookup(void *handle, const char *name, const char *version)
{
	void *a = version != NULL ? dlvsym(handle, name, version) : dlsym(handle, name);

	dlerror();
	return a;
}

/* What the loader's lookup for object r finds for name@version, or NULL. */
static void *scope_lookup(const struct obj *r, const char *name, const char *version)
{
	void *a = dl_lookup(RTLD_DEFAULT, name, version);

	if (a == NULL && r->map->l_name != NULL && r->map->l_name[0] != '\0') {
		/* A plugin loaded RTLD_LOCAL sees its own dependencies too. */
		void *h = dlopen(r->map->l_name, RTLD_LAZY | RTLD_NOLOAD);

		if (h != NULL) {
			a = dl_lookup(h, name, version);
			dlclose(h);
		}
	}
	return a;
}

/* Where object r's reference to name@version of relocation `type` binds
 * today, or NULL when no lookup finds it. *found (may be NULL) gets the
 * address the lookup returned: for an IFUNC, the implementation. */
static const struct obj *bound_to(const struct objs *objs, const struct obj *r, size_t symidx, const char *name,
				  const char *version, unsigned type, void **found)
{
	const struct obj *x;
	size_t i;
	void *a;

	if (found != NULL)
		*found = NULL;
	/* A symbolic object binds to its own definitions first. */
	if (r->symbolic && is_definition(&r->symtab[symidx]))
		return r;
	a = scope_lookup(r, name, version);
	if (a == NULL)
		return NULL;
	if (found != NULL)
		*found = a;
	x = obj_of(objs, (uintptr_t)a);
	if (x == NULL)
		return NULL;
	i = lookup_in(x, name, version);
	if (i == 0 || x->symtab[i].st_shndx != SHN_UNDEF || (type != R_X86_64_JUMP_SLOT && x != r))
		return x;
	/* The program's PLT entry standing for the function: its own slot
	 * binds to the definition behind it, the first in load order. */
	struct symkey key = { .name = name, .version = version };

	for (size_t k = 0; k < objs->n; k++)
		if (&objs->v[k] != x && defined_key(&objs->v[k], &key) != 0)
			return &objs->v[k];
	return NULL;
}

struct tls_block {
	const struct obj *o;
	void *data;
};

static int match_tls_block(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct tls_block *b = arg;

	if (info->dlpi_addr == b->o->base && info->dlpi_phdr == b->o->phdr) {
		b->data = info->dlpi_tls_data;
		return 1;
	}
	return 0;
}

/* Where object r's reference to the thread-local name@version binds: the
 * object whose block, for this thread, holds the address the loader's
 * lookup returns (dlsym gives the calling thread's instance, allocating the
 * block if need be). NULL when no lookup finds it. */
static const struct obj *tls_bound_to(const struct objs *objs, const struct obj *r, size_t symidx, const char *name,
				      const char *version)
{
	struct symkey key = { .name = name, .version = version };
	void *a;

	if (r->symbolic && is_definition(&r->symtab[symidx]))
		return r;
	a = scope_lookup(r, name, version);
	for (size_t k = 0; a != NULL && k < objs->n; k++) {
		const struct obj *o = &objs->v[k];
		size_t i = o->tls_modid != 0 ? defined_key(o, &key) : 0;
		struct tls_block b = { .o = o };

		if (i == 0 || ELF64_ST_TYPE(o->symtab[i].st_info) != STT_TLS)
			continue;
		dl_iterate_phdr(match_tls_block, &b);
		if (b.data != NULL && (uintptr_t)b.data + o->symtab[i].st_value == (uintptr_t)a)
			return o;
	}
	return NULL;
}

/* The new set's definition of name@version, or NULL; *def gets the object. */
static void *new_address(const struct fs_rebind_target *t, const struct objs *objs, const char *name,
			 const char *version, const struct obj **def)
{
	for (size_t i = 0; i < t->nhandles; i++) {
		void *a;
		const struct obj *o;

		if (t->handles[i] == NULL)
			continue;
		a = dl_lookup(t->handles[i], name, version);
		o = a != NULL ? obj_of(objs, (uintptr_t)a) : NULL;
		if (o != NULL && o->fresh) {
			*def = o;
			return a;
		}
	}
	return NULL;
}

/* ---- Writing into protected pages ---- */

/* The protection the loader left on the page at `page` of object o, or -1
 * when the page is not the object's. */
static int page_prot(const struct obj *o, uintptr_t page, size_t ps)
{
	int prot = -1;

	for (size_t j = 0; j < o->phnum; j++) {
		const ElfW(Phdr) *ph = &o->phdr[j];
		uintptr_t lo = (o->base + ph->p_vaddr) & ~(ps - 1);
		uintptr_t hi = (o->base + ph->p_vaddr + ph->p_memsz + ps - 1) & ~(ps - 1);

		if (ph->p_type == PT_LOAD && page >= lo && page < hi)
			prot = ((ph->p_flags & PF_R) ? PROT_READ : 0) | ((ph->p_flags & PF_W) ? PROT_WRITE : 0) |
			       ((ph->p_flags & PF_X) ? PROT_EXEC : 0);
	}
	for (size_t j = 0; prot >= 0 && j < o->phnum; j++) {
		const ElfW(Phdr) *ph = &o->phdr[j];
		/* The loader protects whole pages only, rounding both ends down. */
		uintptr_t lo = (o->base + ph->p_vaddr) & ~(ps - 1);
		uintptr_t hi = (o->base + ph->p_vaddr + ph->p_memsz) & ~(ps - 1);

		if (ph->p_type == PT_GNU_RELRO && page >= lo && page < hi)
			prot = PROT_READ;
	}
	return prot;
}

static int write_bytes(const struct obj *o, void *dst, const void *src, size_t n, char *err, size_t errlen)
{
	size_t ps = page_size();
	uintptr_t at = (uintptr_t)dst, end = at + n;

	while (at < end) {
		uintptr_t page = at & ~(ps - 1);
		size_t part = (page + ps < end ? page + ps : end) - at;
		int prot = page_prot(o, page, ps);

		if (prot < 0) {
			set_err(err, errlen, "%p is outside %s's segments", (void *)at, o->map->l_name);
			return -1;
		}
		if (!(prot & PROT_WRITE) && mprotect((void *)page, ps, prot | PROT_WRITE) != 0) {
			set_err(err, errlen, "cannot make %p writable: %s", (void *)page, strerror(errno));
			return -1;
		}
		memcpy((void *)at, (const char *)src + (at - (uintptr_t)dst), part);
		if (!(prot & PROT_WRITE) && mprotect((void *)page, ps, prot) != 0) {
			set_err(err, errlen, "cannot protect %p again: %s", (void *)page, strerror(errno));
			return -1;
		}
		at += part;
	}
	return 0;
}

/* ---- The walk ---- */

struct walk {
	const struct fs_rebind_target *t;
	const struct objs *objs;
	struct fs_rebind_stats *st;
	char *err;
	size_t errlen;
	/* fs_rebind_plan's */
	struct fs_import *out;
	size_t max;
};

/* The name an old object's dependents know it by: its soname, else the last
 * part of its path. */
static const char *soname_of(const struct obj *o)
{
	const char *s = o->soname != 0 ? str_at(o, o->soname) : NULL, *slash;

	if (s != NULL || o->map->l_name == NULL)
		return s;
	slash = strrchr(o->map->l_name, '/');
	return slash != NULL ? slash + 1 : o->map->l_name;
}

/* Whether o has a DT_NEEDED entry naming an old object. */
static bool needs_old(const struct objs *objs, const struct obj *o)
{
	const ElfW(Dyn) *d = o->map->l_ld;

	for (size_t i = 0; i < MAX_DYN && d[i].d_tag != DT_NULL; i++) {
		const char *needed = d[i].d_tag == DT_NEEDED ? str_at(o, d[i].d_un.d_val) : NULL;

		for (size_t k = 0; needed != NULL && k < objs->n; k++) {
			const char *name = objs->v[k].old ? soname_of(&objs->v[k]) : NULL;

			if (name != NULL && strcmp(name, needed) == 0)
				return true;
		}
	}
	return false;
}

static void note_missing(struct fs_rebind_stats *st, const char *name)
{
	if (st->first_missing[0] == '\0')
		snprintf(st->first_missing, sizeof(st->first_missing), "%s", name);
}

static void report(const struct walk *w, const struct obj *r, const char *name, const char *version,
		   unsigned type, void *slot, uintptr_t before, uintptr_t after, enum fs_rebind_outcome outcome)
{
	struct fs_rebind_slot s = {
		.object = r->map,
		.name = name,
		.version = version,
		.type = type,
		.slot = slot,
		.before = before,
		.after = after,
		.outcome = outcome,
	};

	if (w->t->report != NULL)
		w->t->report(&s, w->t->report_arg);
}

static void note_copy(const struct walk *w, const struct obj *r, const ElfW(Sym) *sym, const char *name,
		      const char *version, void *slot, const struct obj *old)
{
	struct fs_rebind_copy *c;
	const struct obj *def = NULL;
	size_t oi = defined_in(old, name, version);

	if (w->st->ncopies++ >= FS_REBIND_MAX_COPIES)
		return;
	c = &w->st->copies[w->st->ncopies - 1];
	c->object = r->map;
	c->name = name;
	c->version = version;
	c->addr = slot;
	c->size = sym->st_size;
	c->old_def = (const void *)(old->base + old->symtab[oi].st_value);
	c->new_def = new_address(w->t, w->objs, name, version, &def);
	if (c->new_def != NULL) {
		size_t ni = defined_in(def, name, version);

		c->new_size = ni != 0 ? def->symtab[ni].st_size : 0;
	}
}

/* A relocation naming a symbol some old object defines. */
struct import {
	unsigned type;
	size_t symidx;
	const ElfW(Sym) *sym; /* the importing object's */
	const char *name, *version;
	const struct obj *old; /* the first old object defining it */
	void *slot;
	uintptr_t before;
};

static bool is_tls_reloc(unsigned type)
{
	return type == R_X86_64_DTPMOD64 || type == R_X86_64_DTPOFF64 || type == R_X86_64_TPOFF64 ||
	       type == R_X86_64_TLSDESC;
}

/* Fills *im and returns true for a relocation of a handled type, in a slot
 * of r's, naming a symbol some old object defines; otherwise counts it and
 * returns false. */
static bool classify(const struct walk *w, const struct obj *r, const ElfW(Rela) *rel, struct import *im)
{
	im->type = ELF64_R_TYPE(rel->r_info);
	im->symidx = ELF64_R_SYM(rel->r_info);
	im->slot = (void *)(r->base + rel->r_offset);
	switch (im->type) {
	case R_X86_64_JUMP_SLOT:
	case R_X86_64_GLOB_DAT:
	case R_X86_64_64:
	case R_X86_64_COPY:
	case R_X86_64_DTPMOD64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
	case R_X86_64_TLSDESC:
		break;
	default:
		return false; /* RELATIVE, IRELATIVE and the rest name no symbol to bind */
	}
	if (im->symidx == 0)
		return false;
	w->st->relocs++;
	if (im->symidx >= r->nsyms) {
		w->st->odd++;
		return false;
	}
	im->sym = &r->symtab[im->symidx];
	im->name = str_at(r, im->sym->st_name);
	if (im->name == NULL) {
		w->st->odd++;
		return false;
	}
	im->version = ref_version(r, im->symidx);
	im->old = old_definer(w->objs, im->name, im->version);
	if (im->old == NULL) {
		w->st->left++;
		return false;
	}
	if (obj_of(w->objs, (uintptr_t)im->slot) != r) {
		w->st->odd++;
		return false;
	}
	memcpy(&im->before, im->slot, sizeof(im->before));
	return true;
}

static int handle_reloc(const struct walk *w, const struct obj *r, const ElfW(Rela) *rel)
{
	struct import im;
	const struct obj *bound, *def = NULL;
	uintptr_t after;
	char *addr;

	if (!classify(w, r, rel, &im))
		return 0;
	if (im.type == R_X86_64_COPY) {
		note_copy(w, r, im.sym, im.name, im.version, im.slot, im.old);
		report(w, r, im.name, im.version, im.type, im.slot, im.before, im.before, FS_REBIND_COPY);
		return 0;
	}
	if (is_tls_reloc(im.type)) {
		w->st->tls++;
		note_missing(w->st, im.name);
		report(w, r, im.name, im.version, im.type, im.slot, im.before, im.before, FS_REBIND_TLS);
		return 0;
	}
	bound = bound_to(w->objs, r, im.symidx, im.name, im.version, im.type, NULL);
	if (bound == NULL || !bound->old) {
		w->st->left++;
		report(w, r, im.name, im.version, im.type, im.slot, im.before, im.before,
		       bound == NULL ? FS_REBIND_UNRESOLVED : FS_REBIND_ELSEWHERE);
		return 0;
	}
	addr = new_address(w->t, w->objs, im.name, im.version, &def);
	if (addr == NULL) {
		w->st->missing++;
		note_missing(w->st, im.name);
		report(w, r, im.name, im.version, im.type, im.slot, im.before, im.before, FS_REBIND_MISSING);
		return 0;
	}
	/* The psABI: JUMP_SLOT and GLOB_DAT are S, R_X86_64_64 is S + A. */
	after = (uintptr_t)addr + (im.type == R_X86_64_64 ? (uintptr_t)rel->r_addend : 0);
	if (after != im.before && write_bytes(r, im.slot, &after, sizeof(after), w->err, w->errlen) != 0)
		return -1;
	w->st->rewritten++;
	report(w, r, im.name, im.version, im.type, im.slot, im.before, after, FS_REBIND_REWRITTEN);
	return 0;
}

/* S for an import bound to def: the address the lookup found when it lies
 * in def, else def's own definition (the program's PLT entry stood for it),
 * an IFUNC's through a lookup in def's own scope. 0: none. */
static uintptr_t def_value(const struct objs *objs, const struct obj *def, const struct import *im, void *found,
			   const ElfW(Sym) **dsym)
{
	size_t i = defined_in(def, im->name, im->version);
	void *h, *a = NULL;

	*dsym = i != 0 ? &def->symtab[i] : NULL;
	if (found != NULL && obj_of(objs, (uintptr_t)found) == def)
		return (uintptr_t)found;
	if (i == 0)
		return 0;
	if (ELF64_ST_TYPE(def->symtab[i].st_info) != STT_GNU_IFUNC)
		return def->base + def->symtab[i].st_value;
	h = def->map->l_name != NULL ? dlopen(def->map->l_name, RTLD_LAZY | RTLD_NOLOAD) : NULL;
	if (h != NULL) {
		a = dl_lookup(h, im->name, im->version);
		dlclose(h);
	}
	return a != NULL && obj_of(objs, (uintptr_t)a) == def ? (uintptr_t)a : 0;
}

static void plan_odd(const struct walk *w, const char *name)
{
	w->st->odd++;
	note_missing(w->st, name);
}

static int plan_reloc(const struct walk *w, const struct obj *r, const ElfW(Rela) *rel)
{
	struct import im;
	const struct obj *bound;
	const ElfW(Sym) *dsym = NULL;
	void *found = NULL;
	uintptr_t value, off;
	size_t ps = page_size();
	int prot;

	if (!classify(w, r, rel, &im))
		return 0;
	if (im.type == R_X86_64_COPY) {
		note_copy(w, r, im.sym, im.name, im.version, im.slot, im.old);
		return 0;
	}
	if (is_tls_reloc(im.type))
		bound = tls_bound_to(w->objs, r, im.symidx, im.name, im.version);
	else
		bound = bound_to(w->objs, r, im.symidx, im.name, im.version, im.type, &found);
	if (bound == NULL || !bound->old) {
		w->st->left++;
		return 0;
	}
	switch (im.type) {
	case R_X86_64_DTPOFF64:
		w->st->dtpoffs++;
		return 0;
	case R_X86_64_TPOFF64:
	case R_X86_64_TLSDESC:
		w->st->tpoffs += im.type == R_X86_64_TPOFF64;
		w->st->tls++;
		note_missing(w->st, im.name);
		return 0;
	case R_X86_64_DTPMOD64:
		/* Written at load time, never lazily. */
		value = bound->tls_modid;
		if (value == 0 || im.before != value) {
			plan_odd(w, im.name);
			return 0;
		}
		dsym = &bound->symtab[defined_in(bound, im.name, im.version)];
		break;
	default:
		value = def_value(w->objs, bound, &im, found, &dsym);
		if (value == 0 || dsym == NULL) {
			plan_odd(w, im.name);
			return 0;
		}
		if (im.type == R_X86_64_64)
			value += (uintptr_t)rel->r_addend;
		break;
	}
	/* One page per slot, and a protection fs_rebind_write can put back. */
	off = (uintptr_t)im.slot & (ps - 1);
	prot = page_prot(r, (uintptr_t)im.slot - off, ps);
	if (off > ps - sizeof(void *) || (prot != PROT_READ && !(prot >= 0 && (prot & PROT_WRITE)))) {
		plan_odd(w, im.name);
		return 0;
	}
	if (w->st->planned < w->max) {
		struct fs_import *e = &w->out[w->st->planned];

		e->slot = im.slot;
		e->value = value;
		e->type = im.type;
		e->func = ELF64_ST_TYPE(dsym->st_info) == STT_FUNC || ELF64_ST_TYPE(dsym->st_info) == STT_GNU_IFUNC;
		e->readonly = prot == PROT_READ;
		e->old_obj = bound->map;
		e->object = r->map;
		e->name = im.name;
	}
	w->st->planned++;
	w->st->modids += im.type == R_X86_64_DTPMOD64;
	w->st->readonly += prot == PROT_READ;
	return 0;
}

typedef int reloc_fn(const struct walk *w, const struct obj *r, const ElfW(Rela) *rel);

static int walk_object(const struct walk *w, const struct obj *r, reloc_fn *fn)
{
	for (size_t i = 0; i < r->nrela; i++)
		if (fn(w, r, &r->rela[i]) != 0)
			return -1;
	for (size_t i = 0; i < r->njmprel; i++)
		if (fn(w, r, &r->jmprel[i]) != 0)
			return -1;
	return 0;
}

static bool handle_is_new(const struct fs_rebind_target *t, const struct link_map *map)
{
	for (size_t i = 0; i < t->nhandles; i++) {
		struct link_map *hm = NULL;

		if (t->handles[i] != NULL && dlinfo(t->handles[i], RTLD_DI_LINKMAP, &hm) == 0 && hm == map)
			return true;
	}
	return false;
}

/* Marks the old set, the new set (t->is_new, else the handles' objects when
 * `handles`) and what is left out of the walk. */
static void mark_objs(struct objs *objs, const struct fs_rebind_target *t, bool (*skip)(const struct link_map *),
		      bool handles, size_t *nold, size_t *nnew)
{
	*nold = *nnew = 0;
	for (size_t i = 0; i < objs->n; i++) {
		struct obj *o = &objs->v[i];

		o->old = t->is_old(o->map, t->old_arg);
		o->fresh = !o->old && (t->is_new != NULL ? t->is_new(o->map, t->new_arg)
							 : handles && handle_is_new(t, o->map));
		o->skipped = o->old || o->fresh || (skip != NULL && skip(o->map));
		*nold += o->old;
		*nnew += o->fresh;
	}
}

/* Walks the objects not left out with fn; with `direct`, only those naming
 * an old object in a DT_NEEDED entry. */
static int walk_objects(const struct walk *w, reloc_fn *fn, bool direct)
{
	const struct objs *objs = w->objs;

	for (size_t i = 0; i < objs->n; i++) {
		const struct obj *o = &objs->v[i];

		if (o->skipped)
			continue;
		if (!o->parsed) {
			/* No dynamic symbols (the vDSO may have none) or
			 * relocations that are not RELA: nothing we can bind. */
			if (o->found && o->map->l_ld != NULL && o->symtab != NULL)
				w->st->odd++;
			continue;
		}
		if (direct && !needs_old(objs, o))
			continue;
		w->st->objects++;
		if (walk_object(w, o, fn) != 0)
			return -1;
	}
	return 0;
}

int fs_rebind_imports(const struct fs_rebind_target *t, bool (*skip)(const struct link_map *),
		      struct fs_rebind_stats *out, char *err, size_t errlen)
{
	struct objs objs;
	struct walk w = { .t = t, .objs = &objs, .st = out, .err = err, .errlen = errlen };
	size_t nold, nnew;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (t == NULL || t->is_old == NULL) {
		set_err(err, errlen, "no old set given");
		return -1;
	}
	if (load_objs(&objs, err, errlen) != 0)
		return -1;
	mark_objs(&objs, t, skip, true, &nold, &nnew);
	if (nold == 0 || nnew == 0) {
		/* Nothing binds to an old set that is not loaded. */
		if (nold > 0) {
			set_err(err, errlen, "none of the %zu new handles is a loaded object", t->nhandles);
			rc = -1;
		}
		free_objs(&objs);
		return rc;
	}
	rc = walk_objects(&w, handle_reloc, false);
	free_objs(&objs);
	return rc;
}

static int by_slot(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct fs_import *)a)->slot, y = (uintptr_t)((const struct fs_import *)b)->slot;

	return x < y ? -1 : x > y;
}

int fs_rebind_plan(const struct fs_rebind_target *t, bool (*skip)(const struct link_map *), struct fs_import *out,
		   size_t max, size_t *n, struct fs_rebind_stats *stats, char *err, size_t errlen)
{
	struct objs objs;
	struct walk w = { .t = t, .objs = &objs, .st = stats, .err = err, .errlen = errlen, .out = out, .max = max };
	size_t nold, nnew;
	int rc;

	*n = 0;
	memset(stats, 0, sizeof(*stats));
	if (t == NULL || t->is_old == NULL) {
		set_err(err, errlen, "no old set given");
		return -1;
	}
	if (out == NULL)
		w.max = 0;
	if (load_objs(&objs, err, errlen) != 0)
		return -1;
	mark_objs(&objs, t, skip, false, &nold, &nnew);
	rc = nold > 0 ? walk_objects(&w, plan_reloc, (t->plan_flags & FS_REBIND_PLAN_DIRECT) != 0) : 0;
	free_objs(&objs);
	if (rc != 0)
		return rc;
	*n = stats->planned;
	if (stats->planned > w.max) {
		set_err(err, errlen, "the plan needs %zu entries, room for %zu given", stats->planned, w.max);
		return -1;
	}
	qsort(out, stats->planned, sizeof(*out), by_slot);
	return 0;
}

/* ---- Writing a plan, in a child ---- */

/* Appends s to err; async-signal-safe. */
static size_t put_str(char *err, size_t errlen, size_t at, const char *s)
{
	for (; err != NULL && *s != '\0' && at + 1 < errlen; s++)
		err[at++] = *s;
	if (err != NULL && errlen > 0)
		err[at < errlen ? at : errlen - 1] = '\0';
	return at;
}

static size_t put_num(char *err, size_t errlen, size_t at, uintptr_t v, unsigned base)
{
	char buf[2 + sizeof(v) * 2 + 1], *p = buf + sizeof(buf) - 1;

	*p = '\0';
	do {
		*--p = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	if (base == 16) {
		*--p = 'x';
		*--p = '0';
	}
	return put_str(err, errlen, at, p);
}

static void write_err(char *err, size_t errlen, const char *what, uintptr_t page, size_t len, int e)
{
	size_t at = put_str(err, errlen, 0, what);

	at = put_num(err, errlen, at, page, 16);
	at = put_str(err, errlen, at, " (");
	at = put_num(err, errlen, at, len, 10);
	at = put_str(err, errlen, at, " bytes): errno ");
	put_num(err, errlen, at, (uintptr_t)e, 10);
}

/*
 * Runs in a pthread_atfork child handler: no allocation, no stdio, no locks,
 * nothing but plain loads and stores, mprotect and getauxval (a read of the
 * auxiliary vector) besides the caller's value_of.
 */
int fs_rebind_write(const struct fs_import *imps, size_t n, uintptr_t (*value_of)(const struct fs_import *, void *),
		    void *arg, char *err, size_t errlen)
{
	const uintptr_t ps = page_size();
	size_t i = 0;

	if (value_of == NULL) {
		put_str(err, errlen, 0, "no value_of given");
		return -1;
	}
	while (i < n) {
		/* A run: read-only slots on one page or on pages that follow
		 * one another, each page holding a slot; or one writable slot. */
		uintptr_t lo = (uintptr_t)imps[i].slot & ~(ps - 1), hi = lo + ps;
		size_t end = i + 1;
		bool open = false;

		while (imps[i].readonly && end < n && imps[end].readonly) {
			uintptr_t p = (uintptr_t)imps[end].slot & ~(ps - 1);

			if (p < lo || p > hi)
				break;
			if (p == hi)
				hi += ps;
			end++;
		}
		for (; i < end; i++) {
			uintptr_t v = value_of(&imps[i], arg), cur;

			__builtin_memcpy(&cur, imps[i].slot, sizeof(cur));
			if (v == cur)
				continue;
			if (imps[i].readonly && !open) {
				if (mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) != 0) {
					write_err(err, errlen, "cannot make writable ", lo, hi - lo, errno);
					return -1;
				}
				open = true;
			}
			__builtin_memcpy(imps[i].slot, &v, sizeof(v));
		}
		if (open && mprotect((void *)lo, hi - lo, PROT_READ) != 0) {
			write_err(err, errlen, "cannot make read-only again ", lo, hi - lo, errno);
			return -1;
		}
	}
	return 0;
}

uintptr_t fs_rebind_translate(const struct link_map *from, const struct link_map *to, uintptr_t v)
{
	return v - from->l_addr + to->l_addr;
}

struct modid_of {
	const struct link_map *map;
	size_t modid;
};

static int match_modid(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct modid_of *m = arg;

	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC && info->dlpi_addr == m->map->l_addr &&
		    info->dlpi_addr + ph->p_vaddr == (uintptr_t)m->map->l_ld) {
			m->modid = info->dlpi_tls_modid;
			return 1;
		}
	}
	return 0;
}

size_t fs_rebind_tls_modid(const struct link_map *map)
{
	struct modid_of m = { .map = map };

	if (map != NULL)
		dl_iterate_phdr(match_modid, &m);
	return m.modid;
}

int fs_rebind_copy_refresh(const struct fs_rebind_copy *c, char *err, size_t errlen)
{
	struct objs objs;
	const struct obj *o = NULL;
	int rc;

	if (c->new_def == NULL) {
		set_err(err, errlen, "%s: the new set does not define it", c->name);
		return -1;
	}
	if (c->new_size != c->size) {
		set_err(err, errlen, "%s: %zu bytes in the program, %zu in the new set", c->name, c->size,
			c->new_size);
		return -1;
	}
	if (load_objs(&objs, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < objs.n; i++)
		if (objs.v[i].map == c->object && objs.v[i].found)
			o = &objs.v[i];
	if (o == NULL) {
		set_err(err, errlen, "%s: the object holding the copy is gone", c->name);
		rc = -1;
	} else
		rc = write_bytes(o, c->addr, c->new_def, c->size, err, errlen);
	free_objs(&objs);
	return rc;
}
