/* Finding gRPC's functions in a program linked with libgrpc.a, from its symbol
 * table. Each test writes a small ELF file whose symbol table lays out
 * functions the way a linker would, and asks which addresses are gRPC's. */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libc.h"
#include "symranges.h"

struct fake_sym {
	const char *name;
	unsigned bind; /* STB_GLOBAL or STB_LOCAL */
	uint64_t start, size;
};

static char path[64];

static void setup(void)
{
	fs_libc_resolve();
	path[0] = '\0';
}

static void teardown(void)
{
	fs_symranges_free();
	if (path[0] != '\0')
		unlink(path);
}

TestSuite(symranges, .init = setup, .fini = teardown, .timeout = 10);

/* Writes an ELF64 file holding only a symbol table and its string table. */
static const char *write_elf(const struct fake_sym *syms, size_t n)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Shdr sh[3] = { { 0 } };
	Elf64_Sym table[32] = { { 0 } };
	char strs[1024] = "";
	size_t used = 1;
	FILE *f;
	int fd;

	cr_assert_lt(n, 31);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(syms[i].name) + 1;

		cr_assert_lt(used + len, sizeof(strs));
		memcpy(strs + used, syms[i].name, len);
		table[i + 1].st_name = (Elf64_Word)used;
		table[i + 1].st_info = ELF64_ST_INFO(syms[i].bind, STT_FUNC);
		table[i + 1].st_shndx = 1;
		table[i + 1].st_value = syms[i].start;
		table[i + 1].st_size = syms[i].size;
		used += len;
	}
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_shentsize = sizeof(Elf64_Shdr);
	eh.e_shnum = 3;
	eh.e_shoff = sizeof(eh);
	sh[1].sh_type = SHT_SYMTAB;
	sh[1].sh_link = 2;
	sh[1].sh_entsize = sizeof(Elf64_Sym);
	sh[1].sh_offset = sizeof(eh) + sizeof(sh);
	sh[1].sh_size = (n + 1) * sizeof(Elf64_Sym);
	sh[2].sh_type = SHT_STRTAB;
	sh[2].sh_offset = sh[1].sh_offset + sh[1].sh_size;
	sh[2].sh_size = used;

	strcpy(path, "/tmp/fs-symranges-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "wb");
	cr_assert_not_null(f);
	fwrite(&eh, sizeof(eh), 1, f);
	fwrite(sh, sizeof(sh), 1, f);
	fwrite(table, sizeof(Elf64_Sym), n + 1, f);
	fwrite(strs, 1, used, f);
	fclose(f);
	return path;
}

Test(symranges, names)
{
	cr_expect(fs_symranges_name_is_grpc("grpc_init"));
	cr_expect(fs_symranges_name_is_grpc("gpr_mu_lock"));
	cr_expect(fs_symranges_name_is_grpc("upb_Arena_New"));
	cr_expect(fs_symranges_name_is_grpc("address_sorting_rfc_6724_sort"));
	cr_expect(fs_symranges_name_is_grpc("ares__open_socket"));
	cr_expect(fs_symranges_name_is_grpc("_ZN9grpc_core7Channel6CreateEv"));
	cr_expect(fs_symranges_name_is_grpc("_ZN4grpc13CreateChannelERKNSt7__cxx1112basic_string"));
	cr_expect(fs_symranges_name_is_grpc("_ZN17grpc_event_engine12experimental4PollEv"));
	cr_expect(fs_symranges_name_is_grpc("_Z43grpc_create_dualstack_socket_using_factoryP19grpc_socket_factory"));
	cr_expect_not(fs_symranges_name_is_grpc("main"));
	cr_expect_not(fs_symranges_name_is_grpc("_ZL13create_socketPFiiiiE"));
	cr_expect_not(fs_symranges_name_is_grpc("_ZN7myprog9open_sinkEv"));
	cr_expect_not(fs_symranges_name_is_grpc("socket"));
	cr_expect(fs_symranges_name_is_grpc("_ZNK9grpc_core6Slice4dataEv"));
	cr_expect(fs_symranges_name_is_grpc("_ZZN9grpc_core7Channel6CreateEvENKUlvE_clEv"), "a lambda in gRPC");
	cr_expect(fs_symranges_name_is_grpc("_ZN12_GLOBAL__N_114grpc_tcp_stateC2Ev"));
	/* Only the function's own scope counts, never its parameters' types. */
	cr_expect_not(fs_symranges_name_is_grpc("_ZN3app13HandlerSocketEPN4grpc13ServerContextE"));
	cr_expect_not(fs_symranges_name_is_grpc("_Z10open_for_rpcRN4grpc16ChannelArgumentsE"));
	cr_expect_not(fs_symranges_name_is_grpc("_ZNSt6vectorIN9grpc_core5SliceESaIS1_EE9push_backEv"));
	cr_expect_not(fs_symranges_name_is_grpc("_ZN12_GLOBAL__N_19open_sinkEv"));
	cr_expect_not(fs_symranges_name_is_grpc("_Z"));
	cr_expect_not(fs_symranges_name_is_grpc("_ZN99"));
}

/* The layout a linker makes of libgrpc.a's objects: a static helper (plain
 * name) sits among its object's gRPC functions. */
Test(symranges, helper_between_grpc_functions_is_grpc)
{
	const struct fake_sym syms[] = {
		{ "main", STB_GLOBAL, 0x1000, 0x80 },
		{ "grpc_init", STB_GLOBAL, 0x1800, 0x40 },
		{ "grpc_set_socket_cloexec", STB_GLOBAL, 0x2000, 0x40 },
		{ "_ZL13create_socketPFiiiiE", STB_LOCAL, 0x2040, 0x60 },
		{ "_Z43grpc_create_dualstack_socket_using_factoryP19grpc_socket_factory", STB_GLOBAL, 0x20c0, 0x100 },
	};

	cr_assert_eq(fs_symranges_load(write_elf(syms, 5)), 3);
	cr_expect_not(fs_symranges_contains(0x1010), "the program's own main");
	cr_expect(fs_symranges_contains(0x2000));
	cr_expect(fs_symranges_contains(0x2050), "the helper inside gRPC's object");
	cr_expect(fs_symranges_contains(0x20b0), "padding between gRPC functions");
	cr_expect(fs_symranges_contains(0x21bf));
	cr_expect_not(fs_symranges_contains(0x21c0), "past the last gRPC function");
}

/* A helper of the program's that happens to follow a gRPC function (an inline
 * gRPC template emitted into the program's object, say) stays the program's:
 * its descriptors must never be taken for gRPC's. So does that gRPC function,
 * alone among the program's own. */
Test(symranges, helper_next_to_program_code_is_not_grpc)
{
	const struct fake_sym syms[] = {
		{ "_ZN4grpc6Status2OKE", STB_GLOBAL, 0x1000, 0x20 },
		{ "_ZL9open_sinkv", STB_LOCAL, 0x1020, 0x40 },
		{ "_ZL10send_bytesv", STB_LOCAL, 0x1060, 0x40 },
		{ "run_child", STB_GLOBAL, 0x10a0, 0x40 },
		{ "_ZL11early_local", STB_LOCAL, 0x0800, 0x40 },
		{ "grpc_init", STB_GLOBAL, 0x4000, 0x40 },
	};

	cr_assert_eq(fs_symranges_load(write_elf(syms, 6)), 2);
	cr_expect_not(fs_symranges_contains(0x1010), "a gRPC inline alone among the program's code is the program's");
	cr_expect_not(fs_symranges_contains(0x1030));
	cr_expect_not(fs_symranges_contains(0x1070));
	cr_expect_not(fs_symranges_contains(0x10b0));
	cr_expect_not(fs_symranges_contains(0x0810), "a helper before everything has no gRPC neighbour");
}

/* Constructors come in aliases at one address; mangled names inside gRPC's
 * namespaces count whatever their binding (anonymous namespaces are local). */
Test(symranges, aliases_and_local_mangled_names)
{
	const struct fake_sym syms[] = {
		{ "_ZN9grpc_core6FooC2Ev", STB_GLOBAL, 0x3000, 0x40 },
		{ "_ZN9grpc_core6FooC1Ev", STB_GLOBAL, 0x3000, 0x40 },
		{ "_ZN9grpc_core12_GLOBAL__N_13BarEv", STB_LOCAL, 0x3040, 0x40 },
		{ "unrelated", STB_GLOBAL, 0x3080, 0x10 },
		{ "grpc_init", STB_GLOBAL, 0x4000, 0x40 },
	};

	cr_assert_eq(fs_symranges_load(write_elf(syms, 5)), 4);
	cr_expect(fs_symranges_contains(0x3000));
	cr_expect(fs_symranges_contains(0x307f));
	cr_expect_not(fs_symranges_contains(0x3080));
}

/* A grpc++ program that uses libgrpc.so has gRPC-named functions of its own
 * (inline code from gRPC's headers, generated stubs) but no grpc_init: none
 * of its code is taken for gRPC's. */
Test(symranges, a_program_without_grpc_init_has_no_grpc_linked_in)
{
	const struct fake_sym syms[] = {
		{ "_ZN4grpc6StatusD2Ev", STB_WEAK, 0x1000, 0x20 },
		{ "_ZL9open_sinkv", STB_LOCAL, 0x1020, 0x40 },
		{ "_ZN4grpc8internal12CallOpSetIfEv", STB_WEAK, 0x1060, 0x40 },
	};

	cr_expect_eq(fs_symranges_load(write_elf(syms, 3)), 0);
	cr_expect_not(fs_symranges_contains(0x1030));
}

/* gRPC has free functions outside its namespaces too; a static helper next to
 * one is recognised by its gRPC parameter types. A member function of the
 * program's taking gRPC types stays the program's. */
Test(symranges, static_helper_with_grpc_parameters_is_grpc)
{
	const struct fake_sym syms[] = {
		{ "_Z28TcpOptionsFromEndpointConfigRKN17grpc_event_engine12experimental14EndpointConfigE",
		  STB_GLOBAL, 0x1000, 0x40 },
		/* wakeup_fd_eventfd.cc: its helpers come together */
		{ "_ZL14eventfd_createP14grpc_wakeup_fd", STB_LOCAL, 0x1040, 0x40 },
		{ "_ZL15eventfd_consumeP14grpc_wakeup_fd", STB_LOCAL, 0x1080, 0x40 },
		{ "_ZN12_GLOBAL__N_18EchoImpl3SayEPN4grpc13ServerContextE", STB_LOCAL, 0x10c0, 0x40 },
		{ "main", STB_GLOBAL, 0x1100, 0x40 },
		{ "grpc_init", STB_GLOBAL, 0x2000, 0x40 },
	};

	cr_assert_eq(fs_symranges_load(write_elf(syms, 6)), 3);
	cr_expect(fs_symranges_contains(0x1050));
	cr_expect_not(fs_symranges_contains(0x1010));
	cr_expect_not(fs_symranges_contains(0x10d0), "the program's service method");
}

Test(symranges, no_grpc_or_no_symbol_table_finds_nothing)
{
	const struct fake_sym syms[] = {
		{ "main", STB_GLOBAL, 0x1000, 0x80 },
		{ "_ZL6helperv", STB_LOCAL, 0x1080, 0x10 },
	};
	FILE *f;

	cr_expect_eq(fs_symranges_load(write_elf(syms, 2)), 0);
	cr_expect_not(fs_symranges_contains(0x1000));
	cr_expect_eq(fs_symranges_load("/nonexistent/program"), 0);
	/* A truncated or foreign file is refused, never read past its end. */
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	fputs("\177ELF garbage", f);
	fclose(f);
	cr_expect_eq(fs_symranges_load(path), 0);
}

/* A program's own function with a gRPC-like name, among the program's own
 * code, is the program's; gRPC's own functions, which come in runs, stay
 * gRPC's, including one whose name does not say so between them. */
Test(symranges, a_programs_own_grpc_named_function_is_the_programs)
{
	const struct fake_sym syms[] = {
		{ "main", STB_GLOBAL, 0x1000, 0x40 },
		{ "grpc_my_reconnect", STB_GLOBAL, 0x1040, 0x40 },
		{ "parse_args", STB_GLOBAL, 0x1080, 0x40 },
		{ "grpc_init", STB_GLOBAL, 0x2000, 0x40 },
		{ "grpc_shutdown", STB_GLOBAL, 0x2040, 0x40 },
		{ "tsi_create_fake_handshaker", STB_GLOBAL, 0x2080, 0x40 },
		{ "grpc_fake_transport_security_credentials_create", STB_GLOBAL, 0x20c0, 0x40 },
		{ "grpc_fake_server_security_connector_create", STB_GLOBAL, 0x2100, 0x40 },
	};

	cr_assert_eq(fs_symranges_load(write_elf(syms, 8)), 5);
	cr_expect_not(fs_symranges_contains(0x1050), "the program's grpc_my_reconnect");
	cr_expect(fs_symranges_contains(0x2010));
	cr_expect(fs_symranges_contains(0x20d0));
	cr_expect(fs_symranges_contains(0x2110));
}

/* The file is mapped, not copied: when it changes between the pass that
 * counts the functions and the pass that records them, the second must not
 * record more than the first counted. A thread turns 28 symbols from data
 * into functions and back while the table is read, over and over; without
 * the bound the recording pass writes past its array (ASan aborts). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

static atomic_bool stop_flipping;

struct flipper {
	int fd;
	off_t first; /* file offset of the first flipped symbol */
	unsigned n;
};

static void *flip(void *arg)
{
	struct flipper *f = arg;
	Elf64_Sym sym;

	for (unsigned round = 0; !atomic_load(&stop_flipping); round++) {
		for (unsigned i = 0; i < f->n; i++) {
			off_t at = f->first + (off_t)i * (off_t)sizeof(sym);

			if (pread(f->fd, &sym, sizeof(sym), at) != sizeof(sym))
				return NULL;
			sym.st_info = ELF64_ST_INFO(STB_GLOBAL, round % 2 ? STT_FUNC : STT_OBJECT);
			if (pwrite(f->fd, &sym, sizeof(sym), at) != sizeof(sym))
				return NULL;
		}
	}
	return NULL;
}

Test(symranges, a_file_that_changes_between_the_two_passes_is_read_within_bounds)
{
	struct fake_sym syms[30] = { { "grpc_init", STB_GLOBAL, 0x1000, 0x10 },
				     { "main", STB_GLOBAL, 0x1010, 0x10 } };
	char names[28][16];
	struct flipper f;
	pthread_t t;

	for (unsigned i = 0; i < 28; i++) {
		snprintf(names[i], sizeof(names[i]), "grpc_fn%u", i);
		syms[i + 2] = (struct fake_sym){ names[i], STB_GLOBAL, 0x2000 + 0x10 * i, 0x10 };
	}
	write_elf(syms, 30);
	f.fd = open(path, O_RDWR);
	cr_assert_geq(f.fd, 0);
	/* ELF header, 3 section headers, the null symbol, grpc_init, main. */
	f.first = (off_t)(sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Shdr) + 3 * sizeof(Elf64_Sym));
	f.n = 28;
	pthread_create(&t, NULL, flip, &f);
	for (int i = 0; i < 20000; i++) {
		size_t found = fs_symranges_load(path);

		cr_assert_leq(found, 29);
		fs_symranges_free();
	}
	atomic_store(&stop_flipping, true);
	pthread_join(t, NULL);
	close(f.fd);
}
