/*
 * gRPC linked into the program (libgrpc.a): no gRPC library is loaded, so the
 * object a call comes from says nothing. The program's symbol table does: it
 * names every function and its extent. Only a program that defines grpc_init
 * has gRPC linked in (a grpc++ program using libgrpc.so has gRPC-named inline
 * functions of its own, but not that). A function is gRPC's when its own name
 * says so (grpc_*, gpr_*, upb_*, or a mangled name whose outermost scope is
 * grpc_core, grpc, grpc_event_engine...); what its parameters are never
 * counts, so a program's handler taking a grpc::ServerContext* stays the
 * program's. A file-local function with a plain name (a `static` helper such as the one
 * that calls socket()) is gRPC's when the nearest named functions on both
 * sides of it are: the linker lays out each object file's functions together,
 * so a helper between two gRPC functions came from a gRPC object file. A
 * helper next to the program's own code is left to the program: wrongly
 * claiming one of the program's descriptors would be worse than missing one.
 * For the same reason a gRPC-named function alone among the program's code
 * (its own grpc_reconnect(), a grpc++ inline emitted into its object) is the
 * program's: gRPC's own functions come in long runs.
 *
 * Read once, at start-up, with plain file reads into memory of its own; the
 * ranges are then only read, by binary search, with no lock.
 */
#include "symranges.h"

#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libc.h"

struct range {
	uintptr_t start, end;
};

static struct range *ranges;
static size_t nranges;

enum cls { CLS_OTHER, CLS_GRPC, CLS_UNKNOWN, CLS_ISOLATED /* gRPC by name, alone: the program's */ };

struct fn {
	uintptr_t start, end;
	enum cls cls;
};

static const char *const grpc_prefixes[] = { "grpc_", "gpr_", "upb_", "_upb_", "address_sorting", "census_",
					     "ares_" };

static bool has_grpc_prefix(const char *id, size_t len)
{
	for (size_t i = 0; i < sizeof(grpc_prefixes) / sizeof(grpc_prefixes[0]); i++) {
		size_t n = strlen(grpc_prefixes[i]);

		if (len >= n && strncmp(id, grpc_prefixes[i], n) == 0)
			return true;
	}
	return false;
}

/* The outermost scope of a C++ name: a namespace (grpc_core, grpc,
 * grpc_event_engine...) or, for a free function, the function itself. */
static bool scope_is_grpc(const char *id, size_t len)
{
	return (len == 4 && strncmp(id, "grpc", 4) == 0) || has_grpc_prefix(id, len);
}

/* Reads a <length><identifier> of the Itanium mangling at *p. */
static bool source_name(const char **p, const char **id, size_t *len)
{
	size_t n = 0;

	if (**p < '0' || **p > '9')
		return false;
	while (**p >= '0' && **p <= '9' && n < 4096)
		n = n * 10 + (size_t)(*(*p)++ - '0');
	if (n == 0 || strnlen(*p, n) < n)
		return false;
	*id = *p;
	*len = n;
	*p += n;
	return true;
}

static bool mangled_is_grpc(const char *name)
{
	const char *p = name + 2, *id;
	size_t len;

	if (*p == 'Z')
		p++; /* a lambda or local class: judged by its enclosing function */
	if (*p == 'L')
		p++; /* internal linkage */
	if (*p == 'N') {
		p++;
		while (*p == 'K' || *p == 'V' || *p == 'r' || *p == 'R' || *p == 'O')
			p++;
	}
	/* std:: (St), substitutions, special names (thunks, guards): not gRPC's
	 * by name; left to the neighbours if file-local or weak. */
	if (!source_name(&p, &id, &len))
		return false;
	if (len == 12 && strncmp(id, "_GLOBAL__N_1", 12) == 0 && !source_name(&p, &id, &len))
		return false; /* an anonymous namespace: the name inside it decides */
	return scope_is_grpc(id, len);
}

bool fs_symranges_name_is_grpc(const char *name)
{
	if (strncmp(name, "_Z", 2) == 0)
		return mangled_is_grpc(name);
	return has_grpc_prefix(name, strlen(name));
}

static int by_start(const void *a, const void *b)
{
	const struct fn *x = a, *y = b;

	if (x->start != y->start)
		return (x->start > y->start) - (x->start < y->start);
	return (int)x->cls - (int)y->cls;
}

/* A function gRPC's by name whose nearest named neighbours on both sides are
 * the program's (or absent) lies among the program's own code: a function of
 * the program's that merely has a gRPC-like name (grpc_..., or taking gRPC's
 * types), or a gRPC inline emitted into one of the program's objects. Either
 * way its calls are the program's. gRPC's own functions come in long runs: the
 * linker lays libgrpc.a's objects out together. */
static void demote_isolated(struct fn *fns, size_t n)
{
	size_t prev = SIZE_MAX;

	for (size_t i = 0; i < n; i++) {
		size_t next;

		if (fns[i].cls == CLS_UNKNOWN)
			continue;
		for (next = i + 1; next < n && fns[next].cls == CLS_UNKNOWN; next++)
			;
		if (fns[i].cls == CLS_GRPC && (prev == SIZE_MAX || fns[prev].cls == CLS_OTHER) &&
		    (next == n || fns[next].cls == CLS_OTHER))
			fns[i].cls = CLS_ISOLATED; /* still gRPC's to its right-hand neighbour's eyes */
		prev = i;
	}
	for (size_t i = 0; i < n; i++)
		if (fns[i].cls == CLS_ISOLATED)
			fns[i].cls = CLS_OTHER;
}

/* Settles each unknown (file-local, plainly named) function from its named
 * neighbours: gRPC's only when both are. */
static void settle_unknowns(struct fn *fns, size_t n)
{
	enum cls before = CLS_OTHER;

	for (size_t i = 0; i < n;) {
		size_t j = i;
		enum cls after;

		if (fns[i].cls != CLS_UNKNOWN) {
			before = fns[i++].cls;
			continue;
		}
		while (j < n && fns[j].cls == CLS_UNKNOWN)
			j++;
		after = j < n ? fns[j].cls : CLS_OTHER;
		for (; i < j; i++)
			fns[i].cls = before == CLS_GRPC && after == CLS_GRPC ? CLS_GRPC : CLS_OTHER;
	}
}

/* Joins runs of gRPC functions (and the padding between them) into ranges. */
static size_t merge(const struct fn *fns, size_t n, struct range *out)
{
	size_t k = 0;
	bool open = false;

	for (size_t i = 0; i < n; i++) {
		if (open && fns[i].start < out[k - 1].end) {
			/* An alias of, or a part inside, the function just taken. */
			continue;
		}
		if (fns[i].cls != CLS_GRPC) {
			open = false;
			continue;
		}
		if (open) {
			out[k - 1].end = fns[i].end;
		} else {
			out[k].start = fns[i].start;
			out[k].end = fns[i].end;
			k++;
			open = true;
		}
	}
	return k;
}

/* A file-local free function (`static` in a .cc file: _ZL...) whose
 * parameters are gRPC's own types, such as gRPC's
 * `static int eventfd_create(grpc_wakeup_fd*)`: its neighbours cannot always
 * tell (gRPC has free functions outside its namespaces too), its types can.
 * Only such helpers: a class member or a function in an anonymous namespace
 * taking gRPC types is typically the program's own service code. */
static bool static_helper_of_grpc(const char *name, const Elf64_Sym *sym)
{
	return ELF64_ST_BIND(sym->st_info) == STB_LOCAL && strncmp(name, "_ZL", 3) == 0 &&
	       strstr(name, "grpc") != NULL;
}

struct elf_view {
	const unsigned char *base;
	size_t size;
};

/* `len` bytes at `off`, aligned for what is read there (a file's offsets are
 * its own to choose: a misaligned table is refused, not read). */
static const void *at(const struct elf_view *v, uint64_t off, uint64_t len, uint64_t align)
{
	if (off > v->size || len > v->size - off || off % align != 0)
		return NULL;
	return v->base + off;
}

/* Fills fns (when not NULL, with at most `cap` entries) with the file's
 * defined functions; returns how many there are (at most `cap` when filling),
 * through *grpc how many of them are gRPC's by name, and through *init whether
 * grpc_init is among them. The file is mapped, not copied: if it changed
 * between the counting pass and the filling pass, the second may find more. */
static size_t scan(const struct elf_view *v, struct fn *fns, size_t cap, size_t *grpc, bool *init)
{
	const Elf64_Ehdr *eh = at(v, 0, sizeof(*eh), 1);
	const Elf64_Shdr *sh;
	size_t n = 0;

	*grpc = 0;
	*init = false;
	if (eh == NULL || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(Elf64_Shdr))
		return 0;
	sh = at(v, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(*sh), _Alignof(Elf64_Shdr));
	if (sh == NULL)
		return 0;
	for (unsigned s = 0; s < eh->e_shnum; s++) {
		const Elf64_Sym *syms;
		const char *strs;
		uint64_t count;

		if (sh[s].sh_type != SHT_SYMTAB || sh[s].sh_link >= eh->e_shnum || sh[s].sh_entsize != sizeof(Elf64_Sym))
			continue;
		count = sh[s].sh_size / sizeof(Elf64_Sym);
		syms = at(v, sh[s].sh_offset, count * sizeof(Elf64_Sym), _Alignof(Elf64_Sym));
		strs = at(v, sh[sh[s].sh_link].sh_offset, sh[sh[s].sh_link].sh_size, 1);
		if (syms == NULL || strs == NULL || sh[sh[s].sh_link].sh_size == 0 ||
		    strs[sh[sh[s].sh_link].sh_size - 1] != '\0')
			continue;
		for (uint64_t i = 0; i < count; i++) {
			const Elf64_Sym *sym = &syms[i];
			const char *name;
			enum cls cls;

			if (ELF64_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_shndx == SHN_UNDEF || sym->st_value == 0 ||
			    sym->st_name >= sh[sh[s].sh_link].sh_size)
				continue;
			if (fns != NULL && n == cap)
				return n;
			name = strs + sym->st_name;
			/* A weak function (an inline or template instance) may have
			 * come from either side, as may a file-local one. */
			if (fs_symranges_name_is_grpc(name) || static_helper_of_grpc(name, sym))
				cls = CLS_GRPC;
			else
				/* A thunk (_ZTh, _ZTv, _ZTc) is its class's code, wherever
				 * that class is from: its neighbours decide. */
				cls = ELF64_ST_BIND(sym->st_info) == STB_GLOBAL && strncmp(name, "_ZT", 3) != 0 ? CLS_OTHER
													      : CLS_UNKNOWN;
			*grpc += cls == CLS_GRPC;
			*init = *init || strcmp(name, "grpc_init") == 0;
			if (fns != NULL) {
				fns[n].start = sym->st_value;
				fns[n].end = sym->st_value + (sym->st_size ? sym->st_size : 1);
				fns[n].cls = cls;
			}
			n++;
		}
	}
	return n;
}

size_t fs_symranges_load(const char *path)
{
	struct elf_view v = { NULL, 0 };
	struct stat st;
	struct fn *fns = NULL;
	size_t n, grpc = 0;
	bool init = false;
	void *map;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		fs_libc.close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	fs_libc.close(fd);
	if (map == MAP_FAILED)
		return 0;
	v.base = map;
	v.size = (size_t)st.st_size;
	/* A first pass without allocating: most programs hold no gRPC at all. */
	n = scan(&v, NULL, 0, &grpc, &init);
	if (init && (fns = calloc(n, sizeof(*fns))) != NULL &&
	    (ranges = calloc(n, sizeof(*ranges))) != NULL) {
		n = scan(&v, fns, n, &grpc, &init);
		qsort(fns, n, sizeof(*fns), by_start);
		demote_isolated(fns, n);
		settle_unknowns(fns, n);
		nranges = merge(fns, n, ranges);
		struct range *fit = realloc(ranges, (nranges ? nranges : 1) * sizeof(*ranges));

		ranges = fit != NULL ? fit : ranges;
	} else {
		grpc = 0;
	}
	free(fns);
	munmap(map, (size_t)st.st_size);
	return grpc;
}

bool fs_symranges_contains(uintptr_t rel)
{
	size_t lo = 0, hi = nranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rel < ranges[mid].start)
			hi = mid;
		else if (rel >= ranges[mid].end)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

void fs_symranges_free(void)
{
	free(ranges);
	ranges = NULL;
	nranges = 0;
}
