/*
 * The ELF edit that makes a private copy of a library (see elfcopy.h).
 *
 * Everything is found the way the dynamic loader finds it: the program
 * headers give PT_DYNAMIC, and the dynamic array gives .dynstr (DT_STRTAB,
 * DT_STRSZ), .dynsym (DT_SYMTAB) and .gnu.version_r (DT_VERNEED,
 * DT_VERNEEDNUM) by address, turned into file offsets through the PT_LOAD
 * segments. Section headers may be stripped and are not what the loader
 * reads, so they serve only to count .dynsym's entries, which the dynamic
 * array does not give; the hash tables count them when the headers do not.
 *
 * Renaming keeps every string's length and position, so no offset, hash
 * table or section moves: the same-length tag in place of "lib" is what
 * makes the edit possible without rewriting the file's layout.
 *
 * The input may be anything (it is fuzzed): each read is a memcpy from an
 * offset checked against the buffer, in arithmetic that cannot overflow, and
 * every walk is bounded by the buffer's size.
 */
#include "elfcopy.h"

#include <elf.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef STB_GNU_UNIQUE
#define STB_GNU_UNIQUE 10
#endif

/* The image and what the dynamic array says of it. */
struct img {
	const unsigned char *p;
	size_t size;
	Elf64_Ehdr eh;
	size_t dyn_off, dyn_count; /* the dynamic array, in the file */
	size_t str_off, str_size;  /* .dynstr */
	bool has_sym;
	size_t sym_off, sym_count; /* .dynsym */
	bool has_verneed;
	size_t verneed_off;
	uint64_t verneed_num;
};

/* off + len lies within size, computed without overflow. */
static bool in_bounds(size_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

static bool get(const struct img *im, uint64_t off, void *dst, size_t len)
{
	if (!in_bounds(im->size, off, len))
		return false;
	memcpy(dst, im->p + off, len);
	return true;
}

static bool get_phdr(const struct img *im, unsigned i, Elf64_Phdr *ph)
{
	return get(im, im->eh.e_phoff + (uint64_t)i * sizeof(*ph), ph, sizeof(*ph));
}

/* The file offset of len bytes at virtual address vaddr, from the PT_LOAD
 * segment that holds them in its file part. */
static bool vaddr_to_off(const struct img *im, uint64_t vaddr, uint64_t len, size_t *off)
{
	Elf64_Phdr ph;

	for (unsigned i = 0; i < im->eh.e_phnum; i++) {
		if (!get_phdr(im, i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr < ph.p_vaddr || vaddr - ph.p_vaddr > ph.p_filesz ||
		    len > ph.p_filesz - (vaddr - ph.p_vaddr))
			continue;
		if (ph.p_offset > UINT64_MAX - (vaddr - ph.p_vaddr))
			continue;
		if (!in_bounds(im->size, ph.p_offset + (vaddr - ph.p_vaddr), len))
			return false;
		*off = (size_t)(ph.p_offset + (vaddr - ph.p_vaddr));
		return true;
	}
	return false;
}

static bool get_dyn(const struct img *im, size_t i, Elf64_Dyn *d)
{
	return get(im, im->dyn_off + (uint64_t)i * sizeof(*d), d, sizeof(*d));
}

/* The NUL-terminated string at .dynstr offset `at`, or NULL. */
static const char *dynstr(const struct img *im, uint64_t at)
{
	const char *s;

	if (at >= im->str_size)
		return NULL;
	s = (const char *)im->p + im->str_off + at;
	return memchr(s, '\0', im->str_size - at) != NULL ? s : NULL;
}

static const char *count_from_gnu_hash(struct img *im, uint64_t vaddr);
static const char *count_from_hash(struct img *im, uint64_t vaddr);
static const char *count_from_sections(struct img *im, bool *found);

static const char *parse(struct img *im, const unsigned char *p, size_t size)
{
	Elf64_Phdr ph;
	Elf64_Dyn d;
	bool have_dyn = false, have_str = false, have_strsz = false, have_verneednum = false;
	uint64_t strtab = 0, symtab = 0, verneed = 0, hash = 0, gnu_hash = 0;
	const char *err;

	memset(im, 0, sizeof(*im));
	im->p = p;
	im->size = size;
	if (!get(im, 0, &im->eh, sizeof(im->eh)))
		return "shorter than an ELF header";
	if (memcmp(im->eh.e_ident, ELFMAG, SELFMAG) != 0)
		return "not an ELF file";
	if (im->eh.e_ident[EI_CLASS] != ELFCLASS64 || im->eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    im->eh.e_machine != EM_X86_64)
		return "not ELF64 x86-64";
	if (im->eh.e_type != ET_DYN)
		return "not a shared object (e_type is not ET_DYN)";
	if (im->eh.e_phentsize != sizeof(Elf64_Phdr))
		return "program header entries of an unexpected size";
	if (!in_bounds(size, im->eh.e_phoff, (uint64_t)im->eh.e_phnum * sizeof(Elf64_Phdr)))
		return "program headers outside the file";

	for (unsigned i = 0; i < im->eh.e_phnum; i++) {
		if (!get_phdr(im, i, &ph) || ph.p_type != PT_DYNAMIC)
			continue;
		if (have_dyn)
			return "more than one PT_DYNAMIC";
		if (!in_bounds(size, ph.p_offset, ph.p_filesz))
			return "PT_DYNAMIC outside the file";
		have_dyn = true;
		im->dyn_off = (size_t)ph.p_offset;
		im->dyn_count = (size_t)(ph.p_filesz / sizeof(Elf64_Dyn));
	}
	if (!have_dyn)
		return "no PT_DYNAMIC";

	for (size_t i = 0; i < im->dyn_count && get_dyn(im, i, &d) && d.d_tag != DT_NULL; i++) {
		switch (d.d_tag) {
		case DT_STRTAB: strtab = d.d_un.d_ptr; have_str = true; break;
		case DT_STRSZ: im->str_size = d.d_un.d_val; have_strsz = true; break;
		case DT_SYMTAB: symtab = d.d_un.d_ptr; im->has_sym = true; break;
		case DT_VERNEED: verneed = d.d_un.d_ptr; im->has_verneed = true; break;
		case DT_VERNEEDNUM: im->verneed_num = d.d_un.d_val; have_verneednum = true; break;
		case DT_HASH: hash = d.d_un.d_ptr; break;
		case DT_GNU_HASH: gnu_hash = d.d_un.d_ptr; break;
		default: break;
		}
	}
	if (!have_str || !have_strsz)
		return "no DT_STRTAB or DT_STRSZ";
	if (!vaddr_to_off(im, strtab, im->str_size, &im->str_off))
		return "DT_STRTAB/DT_STRSZ outside the file's loaded segments";
	if (im->has_verneed) {
		if (!have_verneednum)
			return "DT_VERNEED without DT_VERNEEDNUM";
		if (!vaddr_to_off(im, verneed, sizeof(Elf64_Verneed), &im->verneed_off))
			return "DT_VERNEED outside the file's loaded segments";
	}
	if (!im->has_sym)
		return NULL;
	if (!vaddr_to_off(im, symtab, 0, &im->sym_off))
		return "DT_SYMTAB outside the file's loaded segments";

	bool found = false;
	if ((err = count_from_sections(im, &found)) != NULL)
		return err;
	if (found)
		return NULL;
	if (gnu_hash != 0)
		return count_from_gnu_hash(im, gnu_hash);
	if (hash != 0)
		return count_from_hash(im, hash);
	return "no way to count the dynamic symbols (no section headers, DT_HASH or DT_GNU_HASH)";
}

static const char *check_sym_count(struct img *im, uint64_t n)
{
	if (!in_bounds(im->size, im->sym_off, n * (uint64_t)sizeof(Elf64_Sym)) || n > im->size)
		return "dynamic symbol table outside the file";
	im->sym_count = (size_t)n;
	return NULL;
}

/* The SHT_DYNSYM section at DT_SYMTAB's offset, if the headers are there. */
static const char *count_from_sections(struct img *im, bool *found)
{
	Elf64_Shdr sh;

	*found = false;
	if (im->eh.e_shoff == 0 || im->eh.e_shnum == 0)
		return NULL;
	if (im->eh.e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_bounds(im->size, im->eh.e_shoff, (uint64_t)im->eh.e_shnum * sizeof(Elf64_Shdr)))
		return "section headers outside the file";
	for (unsigned i = 0; i < im->eh.e_shnum; i++) {
		if (!get(im, im->eh.e_shoff + (uint64_t)i * sizeof(sh), &sh, sizeof(sh)))
			return "section headers outside the file";
		if (sh.sh_type != SHT_DYNSYM || sh.sh_offset != im->sym_off)
			continue;
		if (sh.sh_entsize != sizeof(Elf64_Sym))
			return ".dynsym entries of an unexpected size";
		*found = true;
		return check_sym_count(im, sh.sh_size / sizeof(Elf64_Sym));
	}
	return NULL;
}

static const char *count_from_hash(struct img *im, uint64_t vaddr)
{
	size_t off;
	uint32_t hdr[2];

	if (!vaddr_to_off(im, vaddr, sizeof(hdr), &off) || !get(im, off, hdr, sizeof(hdr)))
		return "DT_HASH outside the file";
	return check_sym_count(im, hdr[1]); /* nchain: one per symbol */
}

/* The highest symbol index any bucket or chain reaches, plus one. */
static const char *count_from_gnu_hash(struct img *im, uint64_t vaddr)
{
	size_t off;
	uint32_t hdr[4], word = 0;
	uint64_t buckets, chain, top = 0;

	if (!vaddr_to_off(im, vaddr, sizeof(hdr), &off) || !get(im, off, hdr, sizeof(hdr)))
		return "DT_GNU_HASH outside the file";
	buckets = off + sizeof(hdr) + (uint64_t)hdr[2] * 8;
	chain = buckets + (uint64_t)hdr[0] * 4;
	if (!in_bounds(im->size, buckets, (uint64_t)hdr[0] * 4))
		return "DT_GNU_HASH buckets outside the file";
	for (uint32_t b = 0; b < hdr[0]; b++) {
		get(im, buckets + (uint64_t)b * 4, &word, 4);
		if (word > top)
			top = word;
	}
	if (top < hdr[1])
		return check_sym_count(im, hdr[1]);
	for (;; top++) {
		if (!get(im, chain + (top - hdr[1]) * 4, &word, 4))
			return "DT_GNU_HASH chain outside the file";
		if (word & 1)
			break;
	}
	return check_sym_count(im, top + 1);
}

/* --- names ------------------------------------------------------------------ */

int fs_elfcopy_generation(const char *name)
{
	unsigned g = 0;

	if (strncmp(name, "lib", 3) == 0)
		return 0;
	if (name[0] != 'g')
		return -1;
	for (int i = 1; i < 3; i++) {
		char c = name[i];

		if (c >= '0' && c <= '9')
			g = g * 16 + (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			g = g * 16 + (unsigned)(c - 'a' + 10);
		else
			return -1;
	}
	return g >= 1 ? (int)g : -1;
}

const char *fs_elfcopy_rename(const char *soname, unsigned gen, char *out, size_t outsize)
{
	size_t len = strlen(soname);

	if (gen < 1 || gen > FS_ELFCOPY_MAX_GEN)
		return "generation out of range 1..255";
	if (fs_elfcopy_generation(soname) < 0)
		return "name starts with neither \"lib\" nor a generation tag";
	if (len + 1 > outsize)
		return "no room for the new name";
	snprintf(out, outsize, "g%02x%s", gen, soname + FS_ELFCOPY_TAG_LEN);
	return NULL;
}

/* --- transform ---------------------------------------------------------------- */

#define MAX_RENAMED 256

struct renames {
	uint64_t at[MAX_RENAMED];
	unsigned n;
};

static bool in_set(const char *s, const char *const *set, size_t nset)
{
	for (size_t i = 0; i < nset; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

/* Notes .dynstr offset `at` for renaming if its string is in the set. */
static const char *consider(const struct img *im, uint64_t at, const char *const *set, size_t nset,
			    struct renames *r)
{
	const char *s = dynstr(im, at);

	if (s == NULL)
		return "a dependency name outside .dynstr";
	if (!in_set(s, set, nset))
		return NULL;
	for (unsigned i = 0; i < r->n; i++)
		if (r->at[i] == at)
			return NULL;
	if (r->n == MAX_RENAMED)
		return "more than 256 names to rename";
	r->at[r->n++] = at;
	return NULL;
}

/* Walks the verneed entries: with set non-NULL, notes each vn_file to
 * rename; with check non-NULL, refuses a version name (vna_name) that
 * overlaps a noted one. */
static const char *walk_verneed(const struct img *im, const char *const *set, size_t nset, struct renames *r,
				bool (*check)(const struct renames *, uint64_t))
{
	uint64_t off = im->verneed_off, steps = 0;
	Elf64_Verneed vn;
	Elf64_Vernaux va;
	const char *err;

	if (!im->has_verneed)
		return NULL;
	if (im->verneed_num > im->size / sizeof(vn))
		return "DT_VERNEEDNUM larger than the file";
	for (uint64_t i = 0; i < im->verneed_num; i++) {
		if (!get(im, off, &vn, sizeof(vn)))
			return "a verneed entry outside the file";
		if (set != NULL && (err = consider(im, vn.vn_file, set, nset, r)) != NULL)
			return err;
		uint64_t aoff = off + vn.vn_aux;
		for (unsigned j = 0; check != NULL && j < vn.vn_cnt; j++) {
			if (++steps > im->size / sizeof(va))
				return "verneed auxiliary entries loop";
			if (!get(im, aoff, &va, sizeof(va)))
				return "a vernaux entry outside the file";
			if (check(r, va.vna_name))
				return "a version name shares bytes with a name to rename";
			if (va.vna_next == 0)
				break;
			aoff += va.vna_next;
		}
		if (vn.vn_next == 0)
			break;
		off += vn.vn_next;
	}
	return NULL;
}

/* Another name that starts inside one of the first three bytes of a renamed
 * string would change with it: refuse rather than corrupt it. */
static bool overlaps(const struct renames *r, uint64_t name)
{
	for (unsigned i = 0; i < r->n; i++)
		if (name >= r->at[i] && name < r->at[i] + FS_ELFCOPY_TAG_LEN)
			return true;
	return false;
}

const char *fs_elfcopy_transform(unsigned char *image, size_t size, unsigned gen, const char *const *set,
				 size_t nset, struct fs_elfcopy_counts *counts)
{
	struct img im;
	struct renames r = { .n = 0 };
	Elf64_Dyn d;
	Elf64_Sym sym;
	const char *err;
	char tag[8];

	if (counts != NULL)
		counts->renamed = counts->weakened = 0;
	if (gen < 1 || gen > FS_ELFCOPY_MAX_GEN)
		return "generation out of range 1..255";
	for (size_t i = 0; i < nset; i++)
		if (fs_elfcopy_generation(set[i]) < 0)
			return "a copy-set name starts with neither \"lib\" nor a generation tag";
	if ((err = parse(&im, image, size)) != NULL)
		return err;

	for (size_t i = 0; i < im.dyn_count && get_dyn(&im, i, &d) && d.d_tag != DT_NULL; i++)
		if ((d.d_tag == DT_SONAME || d.d_tag == DT_NEEDED) &&
		    (err = consider(&im, d.d_un.d_val, set, nset, &r)) != NULL)
			return err;
	if ((err = walk_verneed(&im, set, nset, &r, NULL)) != NULL ||
	    (err = walk_verneed(&im, NULL, 0, &r, overlaps)) != NULL)
		return err;
	for (size_t i = 0; i < im.sym_count; i++) {
		get(&im, im.sym_off + (uint64_t)i * sizeof(sym), &sym, sizeof(sym));
		if (overlaps(&r, sym.st_name))
			return "a symbol name shares bytes with a name to rename";
	}

	/* Everything checked: now edit. */
	snprintf(tag, sizeof(tag), "g%02x", gen);
	for (unsigned i = 0; i < r.n; i++)
		memcpy(image + im.str_off + r.at[i], tag, FS_ELFCOPY_TAG_LEN);
	unsigned weakened = 0;
	for (size_t i = 0; i < im.sym_count; i++) {
		uint64_t off = im.sym_off + (uint64_t)i * sizeof(sym);

		memcpy(&sym, image + off, sizeof(sym));
		if (ELF64_ST_BIND(sym.st_info) != STB_GNU_UNIQUE)
			continue;
		sym.st_info = ELF64_ST_INFO(STB_WEAK, ELF64_ST_TYPE(sym.st_info));
		memcpy(image + off, &sym, sizeof(sym));
		weakened++;
	}
	if (counts != NULL) {
		counts->renamed = r.n;
		counts->weakened = weakened;
	}
	return NULL;
}

/* --- reading names ------------------------------------------------------------- */

int fs_elfcopy_find_build_id(const unsigned char *notes, size_t len, const uint8_t **id, size_t *id_len)
{
	size_t off = 0;
	Elf64_Nhdr nh;

	while (in_bounds(len, off, sizeof(nh))) {
		memcpy(&nh, notes + off, sizeof(nh));
		uint64_t name_sz = ((uint64_t)nh.n_namesz + 3) & ~(uint64_t)3;
		uint64_t desc_sz = ((uint64_t)nh.n_descsz + 3) & ~(uint64_t)3;
		uint64_t name_at = off + sizeof(nh), desc_at = name_at + name_sz;

		if (!in_bounds(len, name_at, name_sz) || !in_bounds(len, desc_at, nh.n_descsz))
			return 0;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(notes + name_at, "GNU", 4) == 0 &&
		    nh.n_descsz > 0) {
			*id = notes + desc_at;
			*id_len = nh.n_descsz;
			return 1;
		}
		if (!in_bounds(len, desc_at, desc_sz))
			return 0;
		off = (size_t)(desc_at + desc_sz);
	}
	return 0;
}

const char *fs_elfcopy_names(const unsigned char *image, size_t size, struct fs_elfcopy_names *out)
{
	struct img im;
	Elf64_Dyn d;
	Elf64_Phdr ph;
	const char *err, *s;

	memset(out, 0, sizeof(*out));
	if ((err = parse(&im, image, size)) != NULL)
		return err;
	for (size_t i = 0; i < im.dyn_count && get_dyn(&im, i, &d) && d.d_tag != DT_NULL; i++) {
		if (d.d_tag != DT_SONAME && d.d_tag != DT_NEEDED)
			continue;
		if ((s = dynstr(&im, d.d_un.d_val)) == NULL)
			return "a dependency name outside .dynstr";
		if (d.d_tag == DT_SONAME) {
			out->soname = s;
		} else {
			if (out->nneeded == FS_ELFCOPY_MAX_NEEDED)
				return "more than 128 DT_NEEDED entries";
			out->needed[out->nneeded++] = s;
		}
	}
	for (unsigned i = 0; i < im.eh.e_phnum && out->build_id == NULL; i++)
		if (get_phdr(&im, i, &ph) && ph.p_type == PT_NOTE && in_bounds(size, ph.p_offset, ph.p_filesz))
			fs_elfcopy_find_build_id(image + ph.p_offset, (size_t)ph.p_filesz, &out->build_id,
						 &out->build_id_len);
	return NULL;
}
