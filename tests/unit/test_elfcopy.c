/* The ELF edit that makes private copies of gRPC's libraries. Each test
 * transforms an installed library file in memory and reads the result back
 * with a parse of its own, which goes through the section headers (the edit
 * itself goes through the dynamic segment), so the two cannot share a
 * mistake. Damaged images must give an error, never a crash (ASan watches). */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elfcopy.h"

#define LIBDIR "/usr/lib/x86_64-linux-gnu/"

static unsigned char *load(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_gt(n, 0);
	rewind(f);
	buf = malloc((size_t)n);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*size = (size_t)n;
	return buf;
}

/* --- the test's own reading, through section headers --------------------- */

struct view {
	unsigned char *p;
	size_t size;
	const Elf64_Shdr *sh;
	unsigned nsh;
};

static struct view view_of(unsigned char *p, size_t size)
{
	struct view v = { p, size, NULL, 0 };
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)p;

	cr_assert_geq(size, sizeof(*eh));
	cr_assert_leq(eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), size);
	v.sh = (const Elf64_Shdr *)(p + eh->e_shoff);
	v.nsh = eh->e_shnum;
	return v;
}

static const Elf64_Shdr *section(const struct view *v, uint32_t type)
{
	for (unsigned i = 0; i < v->nsh; i++)
		if (v->sh[i].sh_type == type)
			return &v->sh[i];
	return NULL;
}

static const char *str(const struct view *v, const Elf64_Shdr *strtab, uint64_t at)
{
	cr_assert_lt(at, strtab->sh_size);
	return (const char *)v->p + strtab->sh_offset + at;
}

/* DT_SONAME's string and the DT_NEEDED strings, joined by spaces. */
static void dynamic_names(const struct view *v, char *soname, size_t ssize, char *needed, size_t nsize)
{
	const Elf64_Shdr *dyn = section(v, SHT_DYNAMIC);
	const Elf64_Dyn *d;

	cr_assert_not_null(dyn);
	d = (const Elf64_Dyn *)(v->p + dyn->sh_offset);
	soname[0] = needed[0] = '\0';
	for (size_t i = 0; i < dyn->sh_size / sizeof(*d) && d[i].d_tag != DT_NULL; i++) {
		if (d[i].d_tag == DT_SONAME)
			snprintf(soname, ssize, "%s", str(v, &v->sh[dyn->sh_link], d[i].d_un.d_val));
		else if (d[i].d_tag == DT_NEEDED)
			snprintf(needed + strlen(needed), nsize - strlen(needed), "%s ",
				 str(v, &v->sh[dyn->sh_link], d[i].d_un.d_val));
	}
}

/* The verneed file names, joined by spaces. */
static void verneed_files(const struct view *v, char *out, size_t size)
{
	const Elf64_Shdr *vr = section(v, SHT_GNU_verneed);
	size_t off;

	out[0] = '\0';
	cr_assert_not_null(vr);
	off = vr->sh_offset;
	for (uint64_t i = 0; i < vr->sh_info; i++) {
		const Elf64_Verneed *vn = (const Elf64_Verneed *)(v->p + off);

		snprintf(out + strlen(out), size - strlen(out), "%s ", str(v, &v->sh[vr->sh_link], vn->vn_file));
		if (vn->vn_next == 0)
			break;
		off += vn->vn_next;
	}
}

static unsigned count_binding(const struct view *v, unsigned bind)
{
	const Elf64_Shdr *ds = section(v, SHT_DYNSYM);
	const Elf64_Sym *s = (const Elf64_Sym *)(v->p + ds->sh_offset);
	unsigned n = 0;

	for (size_t i = 0; i < ds->sh_size / sizeof(*s); i++)
		n += ELF64_ST_BIND(s[i].st_info) == bind;
	return n;
}

static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)) != NULL; p++)
		if ((p == list || p[-1] == ' ') && p[len] == ' ')
			return true;
	return false;
}

TestSuite(elfcopy, .timeout = 60);

/* --- names ---------------------------------------------------------------- */

Test(elfcopy, rename_names)
{
	char out[64];

	cr_assert_null(fs_elfcopy_rename("libgrpc.so.29", 1, out, sizeof(out)));
	cr_assert_str_eq(out, "g01grpc.so.29");
	cr_assert_null(fs_elfcopy_rename("libgrpc.so.29", 255, out, sizeof(out)));
	cr_assert_str_eq(out, "gffgrpc.so.29");
	cr_assert_null(fs_elfcopy_rename("g01grpc.so.29", 2, out, sizeof(out)));
	cr_assert_str_eq(out, "g02grpc.so.29");
	cr_assert_null(fs_elfcopy_rename("g1agrpc++.so.1.51", 27, out, sizeof(out)));
	cr_assert_str_eq(out, "g1bgrpc++.so.1.51");

	cr_assert_eq(fs_elfcopy_generation("libz.so.1"), 0);
	cr_assert_eq(fs_elfcopy_generation("g0az.so.1"), 10);
	cr_assert_eq(fs_elfcopy_generation("g00z.so.1"), -1);
	cr_assert_eq(fs_elfcopy_generation("gA1z.so.1"), -1);
	cr_assert_eq(fs_elfcopy_generation("g1"), -1);
	cr_assert_eq(fs_elfcopy_generation(""), -1);

	cr_assert_not_null(fs_elfcopy_rename("libgrpc.so.29", 0, out, sizeof(out)));
	cr_assert_not_null(fs_elfcopy_rename("libgrpc.so.29", 256, out, sizeof(out)));
	cr_assert_not_null(fs_elfcopy_rename("grpc.so.29", 1, out, sizeof(out)));
	cr_assert_not_null(fs_elfcopy_rename("li", 1, out, sizeof(out)));
	cr_assert_not_null(fs_elfcopy_rename("libgrpc.so.29", 1, out, 13), "no room for the NUL");
}

Test(elfcopy, names_of_a_real_library)
{
	size_t size;
	unsigned char *img = load(LIBDIR "libgpr.so.29", &size);
	struct fs_elfcopy_names n;

	cr_assert_null(fs_elfcopy_names(img, size, &n));
	cr_assert_str_eq(n.soname, "libgpr.so.29");
	cr_assert_geq(n.nneeded, 5);
	bool absl = false, libc = false;
	for (size_t i = 0; i < n.nneeded; i++) {
		absl |= strcmp(n.needed[i], "libabsl_synchronization.so.20220623") == 0;
		libc |= strcmp(n.needed[i], "libc.so.6") == 0;
	}
	cr_assert(absl && libc);
	cr_assert_not_null(n.build_id);
	cr_assert_eq(n.build_id_len, 20);
	free(img);
}

/* --- the transform on real libraries ------------------------------------------ */

static const char *const grpc_set[] = {
	"libgrpc.so.29", "libgpr.so.29", "libupb.so.29", "libssl.so.3", "libcrypto.so.3",
	"libaddress_sorting.so.29", "libz.so.1", "libcares.so.2", "libre2.so.9",
	"libabsl_synchronization.so.20220623",
};
#define NSET (sizeof(grpc_set) / sizeof(grpc_set[0]))

Test(elfcopy, transform_libgrpc)
{
	size_t size;
	unsigned char *img = load(LIBDIR "libgrpc.so.29", &size);
	struct view v = view_of(img, size);
	struct fs_elfcopy_counts c;
	char soname[64], needed[4096], files[1024];
	unsigned unique = count_binding(&v, STB_GNU_UNIQUE), weak = count_binding(&v, STB_WEAK);

	cr_assert_gt(unique, 100, "libgrpc has STB_GNU_UNIQUE symbols to weaken (%u)", unique);
	cr_assert_null(fs_elfcopy_transform(img, size, 1, grpc_set, NSET, &c));

	dynamic_names(&v, soname, sizeof(soname), needed, sizeof(needed));
	cr_assert_str_eq(soname, "g01grpc.so.29");
	cr_assert(has_word(needed, "g01gpr.so.29"), "needed: %s", needed);
	cr_assert(has_word(needed, "g01ssl.so.3"), "needed: %s", needed);
	cr_assert(has_word(needed, "g01crypto.so.3"), "needed: %s", needed);
	cr_assert(has_word(needed, "g01absl_synchronization.so.20220623"), "needed: %s", needed);
	cr_assert(has_word(needed, "libabsl_strings.so.20220623"), "not in the set, unchanged: %s", needed);
	cr_assert(has_word(needed, "libc.so.6") && has_word(needed, "libstdc++.so.6"), "needed: %s", needed);
	cr_assert(!has_word(needed, "libgpr.so.29") && !has_word(needed, "libssl.so.3"), "needed: %s", needed);

	verneed_files(&v, files, sizeof(files));
	cr_assert(has_word(files, "g01ssl.so.3") && has_word(files, "g01crypto.so.3"), "verneed: %s", files);
	cr_assert(has_word(files, "libc.so.6") && has_word(files, "libm.so.6"), "verneed: %s", files);

	cr_assert_eq(count_binding(&v, STB_GNU_UNIQUE), 0);
	cr_assert_eq(count_binding(&v, STB_WEAK), weak + unique);
	cr_assert_eq(c.weakened, unique);
	/* The soname and each needed member once (the verneed entries share
	 * their strings with DT_NEEDED in this file). */
	cr_assert_geq(c.renamed, 9, "renamed %u", c.renamed);
	free(img);
}

/* A generation-1 copy becomes a generation-2 copy: the set is then named by
 * its generation-1 names. Transforming twice changes nothing more. */
Test(elfcopy, generation_to_next)
{
	size_t size;
	unsigned char *img = load(LIBDIR "libgrpc.so.29", &size);
	struct view v = view_of(img, size);
	const char *set1[NSET];
	char names[NSET][64], soname[64], needed[4096], files[1024];
	struct fs_elfcopy_counts c1, c2;

	cr_assert_null(fs_elfcopy_transform(img, size, 1, grpc_set, NSET, &c1));
	for (size_t i = 0; i < NSET; i++) {
		cr_assert_null(fs_elfcopy_rename(grpc_set[i], 1, names[i], sizeof(names[i])));
		set1[i] = names[i];
	}
	cr_assert_null(fs_elfcopy_transform(img, size, 2, set1, NSET, &c2));
	cr_assert_eq(c2.renamed, c1.renamed);
	cr_assert_eq(c2.weakened, 0, "nothing unique is left to weaken");

	dynamic_names(&v, soname, sizeof(soname), needed, sizeof(needed));
	cr_assert_str_eq(soname, "g02grpc.so.29");
	cr_assert(has_word(needed, "g02gpr.so.29") && !has_word(needed, "g01gpr.so.29"), "needed: %s", needed);
	verneed_files(&v, files, sizeof(files));
	cr_assert(has_word(files, "g02ssl.so.3"), "verneed: %s", files);

	/* The original names are no longer there to rename. */
	cr_assert_null(fs_elfcopy_transform(img, size, 3, grpc_set, NSET, &c2));
	cr_assert_eq(c2.renamed, 0);
	free(img);
}

Test(elfcopy, set_name_without_lib)
{
	size_t size;
	unsigned char *img = load(LIBDIR "libgpr.so.29", &size);
	const char *set[] = { "libgpr.so.29", "gpr-extra.so" };

	cr_assert_not_null(fs_elfcopy_transform(img, size, 1, set, 2, NULL));
	cr_assert_not_null(fs_elfcopy_transform(img, size, 0, set, 1, NULL));
	cr_assert_not_null(fs_elfcopy_transform(img, size, 256, set, 1, NULL));
	free(img);
}

/* --- damaged images ------------------------------------------------------------ */

Test(elfcopy, truncated_images)
{
	size_t size;
	unsigned char *orig = load(LIBDIR "libgpr.so.29", &size);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)orig;
	struct view v = view_of(orig, size);
	const Elf64_Shdr *dyn = section(&v, SHT_DYNAMIC);
	size_t dyn_end = dyn->sh_offset + dyn->sh_size;
	unsigned errors = 0, tried = 0;

	/* Every length up to the first page, then steps through the file: each a
	 * buffer of exactly that size, so ASan sees any read past it. The second
	 * pass has no section headers (they lie at the file's end, so any cut
	 * loses them): the symbols are then counted from the hash table. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t len = 0; len < size; len = len < 4096 ? len + 1 : len + 997) {
			unsigned char *cut = malloc(len ? len : 1);
			const char *err;

			memcpy(cut, orig, len);
			if (pass == 1 && len >= sizeof(*eh))
				((Elf64_Ehdr *)cut)->e_shoff = 0;
			err = fs_elfcopy_transform(cut, len, 1, grpc_set, NSET, NULL);
			tried++;
			errors += err != NULL;
			if (len < sizeof(*eh) || len < eh->e_phoff + eh->e_phnum * sizeof(Elf64_Phdr) ||
			    len < dyn_end)
				cr_assert_not_null(err, "an image cut at %zu bytes (dynamic section ends at %zu) "
							"was accepted", len, dyn_end);
			if (pass == 1 && len > dyn_end)
				cr_assert_null(err, "without section headers, a cut at %zu after everything the "
						    "edit needs (%zu): %s", len, dyn_end, err);
			free(cut);
		}
	}
	cr_assert_gt(errors, 4096);
	cr_log_info("%u truncated images, %u errors", tried, errors);
	free(orig);
}

static unsigned char *patched(const unsigned char *orig, size_t size)
{
	unsigned char *p = malloc(size);

	memcpy(p, orig, size);
	return p;
}

/* The dynamic array entry of tag in a copy: its address in the image. */
static Elf64_Dyn *dyn_entry(unsigned char *img, size_t size, Elf64_Sxword tag)
{
	struct view v = view_of(img, size);
	const Elf64_Shdr *dyn = section(&v, SHT_DYNAMIC);
	Elf64_Dyn *d = (Elf64_Dyn *)(img + dyn->sh_offset);

	for (size_t i = 0; i < dyn->sh_size / sizeof(*d); i++)
		if (d[i].d_tag == tag)
			return &d[i];
	cr_assert_fail("no dynamic tag %ld", (long)tag);
	return NULL;
}

Test(elfcopy, corrupted_images)
{
	size_t size;
	unsigned char *orig = load(LIBDIR "libgrpc.so.29", &size), *p;
	Elf64_Ehdr *eh;

	p = patched(orig, size);
	p[0] = 0x7e;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "bad magic");
	free(p);

	p = patched(orig, size);
	((Elf64_Ehdr *)p)->e_machine = EM_AARCH64;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "another machine");
	free(p);

	p = patched(orig, size);
	eh = (Elf64_Ehdr *)p;
	eh->e_phoff = UINT64_MAX - 8;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "program headers far away");
	free(p);

	p = patched(orig, size);
	dyn_entry(p, size, DT_STRSZ)->d_un.d_val = UINT64_MAX;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "huge DT_STRSZ");
	free(p);

	p = patched(orig, size);
	dyn_entry(p, size, DT_STRTAB)->d_un.d_ptr = 0xfffffffffff0;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "DT_STRTAB unmapped");
	free(p);

	p = patched(orig, size);
	dyn_entry(p, size, DT_NEEDED)->d_un.d_val = 0x7fffffff;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "DT_NEEDED past .dynstr");
	free(p);

	p = patched(orig, size);
	dyn_entry(p, size, DT_VERNEEDNUM)->d_un.d_val = UINT64_MAX;
	cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "huge DT_VERNEEDNUM");
	free(p);

	/* .dynstr no longer NUL-terminated: the last string runs off its end. */
	p = patched(orig, size);
	{
		Elf64_Dyn *strsz = dyn_entry(p, size, DT_STRSZ);
		struct view v = view_of(p, size);
		const Elf64_Shdr *ds = section(&v, SHT_DYNSYM);
		const Elf64_Shdr *dstr = &v.sh[ds->sh_link];
		const char *soname = str(&v, dstr, dyn_entry(p, size, DT_SONAME)->d_un.d_val);
		/* Cut .dynstr in the middle of the soname string. */
		strsz->d_un.d_val = (uint64_t)(soname - (const char *)p - (long)dstr->sh_offset) + 5;
		cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "unterminated .dynstr");
	}
	free(p);

	/* A symbol whose name starts inside a name to rename. */
	p = patched(orig, size);
	{
		struct view v = view_of(p, size);
		const Elf64_Shdr *ds = section(&v, SHT_DYNSYM);
		Elf64_Sym *s = (Elf64_Sym *)(p + ds->sh_offset);

		s[3].st_name = (Elf64_Word)dyn_entry(p, size, DT_SONAME)->d_un.d_val + 1;
		cr_assert_not_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, NULL), "shared bytes");
	}
	free(p);

	/* Section headers gone: the symbols are counted from the hash table. */
	p = patched(orig, size);
	{
		struct view v = view_of(p, size);
		unsigned unique = count_binding(&v, STB_GNU_UNIQUE);
		struct fs_elfcopy_counts c;

		((Elf64_Ehdr *)p)->e_shoff = 0;
		((Elf64_Ehdr *)p)->e_shnum = 0;
		cr_assert_null(fs_elfcopy_transform(p, size, 1, grpc_set, NSET, &c));
		cr_assert_eq(c.weakened, unique, "weakened %u of %u through DT_GNU_HASH", c.weakened, unique);
	}
	free(p);

	free(orig);
}

/* Flipped bytes in the headers and the dynamic data of a small library: any
 * answer but a crash. Deterministic. */
Test(elfcopy, flipped_bytes)
{
	size_t size;
	unsigned char *orig = load(LIBDIR "libgpr.so.29", &size), *p;
	const char *set[] = { "libgpr.so.29", "libabsl_time.so.20220623", "libgcc_s.so.1" };
	unsigned accepted = 0;

	srand(7);
	for (int round = 0; round < 4000; round++) {
		p = patched(orig, size);
		for (int k = 0; k < 1 + round % 4; k++) {
			size_t at = (size_t)rand() % 0x5000; /* headers, .dynsym, .dynstr, verneed */
			p[at] = (unsigned char)rand();
		}
		accepted += fs_elfcopy_transform(p, size, 1, set, 3, NULL) == NULL;
		free(p);
	}
	cr_log_info("%u of 4000 damaged images accepted", accepted);
	free(orig);
}
