# The operator's side: the grpc-forksafe command, `make install` and
# `make uninstall`, and the command's tests (`make test-wrapper`).
#
# Installed layout (override any of these on the make command line):
#   $(BINDIR)/grpc-forksafe
#   $(LIBDIR)/grpc-forksafe/libgrpc_forksafe.so   (a directory of its own: the
#       shim is preloaded, never linked against, so it stays off the linker path)
#   $(LIBDIR)/grpc-forksafe/python-layer/*.py      (the Python layer, found by
#       the shim next to itself)
#   $(MANDIR)/man1/grpc-forksafe.1, $(MANDIR)/man7/libgrpc_forksafe.7
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
MANDIR    ?= $(PREFIX)/share/man
PKGLIBDIR  = $(LIBDIR)/grpc-forksafe

WRAPPER        := $(BUILD)/grpc-forksafe
WRAPPER_SRCS   := $(wildcard tools/*.c)
WRAPPER_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -DFORKSAFE_VERSION='"$(VERSION)"'
MAN_PAGES      := man/grpc-forksafe.1 man/libgrpc_forksafe.7
# Where each page goes: man/NAME.N to $(MANDIR)/manN/NAME.N.
MAN_INSTALLED   = $(foreach p,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $(p)))/$(notdir $(p)))

# The installed command finds the library by this path from its own directory,
# so that an installation staged with DESTDIR, or moved as a whole, still works.
LIB_FROM_BIN = $(shell realpath -m --relative-to='$(BINDIR)' '$(PKGLIBDIR)')

.PHONY: install uninstall test-wrapper

all: $(WRAPPER)

# In the build tree the command looks for the library next to itself.
$(WRAPPER): $(WRAPPER_SRCS) $(wildcard tools/*.h) tools/tools.mk Makefile
	$(CC) $(WRAPPER_CFLAGS) -o $@ $(WRAPPER_SRCS) -lbsd

# The installed command is compiled here, with the paths chosen now, in a
# temporary directory: `sudo make install` leaves no root-owned file in $(BUILD).
install: $(SHIM) $(PY_LAYER)
	@for d in '$(BINDIR)' '$(LIBDIR)' '$(MANDIR)'; do case "$$d" in /*) ;; *) \
	  echo "grpc-forksafe: install directories must be absolute paths, not '$$d'" >&2; exit 2 ;; esac; done
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	echo "compiling grpc-forksafe for $(BINDIR): library at $(PKGLIBDIR), found as $(LIB_FROM_BIN) from the command" && \
	$(CC) $(WRAPPER_CFLAGS) -DFORKSAFE_LIB_REL='"$(LIB_FROM_BIN)"' -DFORKSAFE_LIB_ABS='"$(PKGLIBDIR)"' \
	      -o "$$tmp/grpc-forksafe" $(WRAPPER_SRCS) -lbsd && \
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(PKGLIBDIR)/python-layer' $(sort $(foreach m,$(MAN_INSTALLED),'$(DESTDIR)$(dir $(m))')) && \
	install -m 0755 "$$tmp/grpc-forksafe" '$(DESTDIR)$(BINDIR)/grpc-forksafe' && \
	install -m 0644 $(SHIM) '$(DESTDIR)$(PKGLIBDIR)/libgrpc_forksafe.so' && \
	install -m 0644 $(PY_LAYER) '$(DESTDIR)$(PKGLIBDIR)/python-layer/' && \
	for page in $(MAN_PAGES); do \
	  install -m 0644 "$$page" "$(DESTDIR)$(MANDIR)/man$${page##*.}/" || exit 1; done
	@echo "installed $(DESTDIR)$(BINDIR)/grpc-forksafe and $(DESTDIR)$(PKGLIBDIR)/libgrpc_forksafe.so"

# Takes the same PREFIX, LIBDIR, ... as the installation it removes.
uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/grpc-forksafe' '$(DESTDIR)$(PKGLIBDIR)/libgrpc_forksafe.so' \
	      $(foreach m,$(MAN_INSTALLED),'$(DESTDIR)$(m)') \
	      $(foreach f,$(notdir $(PY_LAYER)),'$(DESTDIR)$(PKGLIBDIR)/python-layer/$(f)')
	@# Python caches the layer's byte code next to it when it may write there.
	rm -rf '$(DESTDIR)$(PKGLIBDIR)/python-layer/__pycache__'
	@rmdir '$(DESTDIR)$(PKGLIBDIR)/python-layer' '$(DESTDIR)$(PKGLIBDIR)' 2>/dev/null || true

# The audit report on its own, fed hand-made logs by the tests; sanitizers,
# because it parses whatever the log holds.
AUDIT_REPORT := $(BUILD)/tests/wrapper/audit-report

$(AUDIT_REPORT): tests/wrapper/audit_report_main.c tools/audit_report.c tools/audit_report.h tools/cli.h
	@mkdir -p $(@D)
	$(CC) -O1 -g $(WARN) -std=gnu11 -D_GNU_SOURCE -Itools -fsanitize=address,undefined \
	      -fno-sanitize-recover=undefined -o $@ tests/wrapper/audit_report_main.c tools/audit_report.c

# A grpc++ server that forks while it serves, for the audit's tests.
FORKING_SERVER := $(BUILD)/tests/wrapper/forking-server

$(FORKING_SERVER): tests/wrapper/forking_server.cc $(ECHO_OBJS)
	@mkdir -p $(@D)
	$(CXX) $(GRPCXX_CFLAGS) -o $@ $< $(ECHO_OBJS) $(GRPCXX_LIBS)

# Forks and execs a program N times, for the test that the log file's
# complaint comes once.
FORK_EXEC := $(BUILD)/tests/wrapper/fork-exec

$(FORK_EXEC): tests/wrapper/fork_exec.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -std=gnu11 -o $@ $<

test-wrapper: $(WRAPPER) $(SHIM) $(ECHO_SERVER) $(FORK_CLIENT) $(AUDIT_REPORT) $(FORKING_SERVER) $(FORK_EXEC) $(PY_STUBS)
	@tests/wrapper/run.sh --build $(BUILD) --make '$(MAKE)'
