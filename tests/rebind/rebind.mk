# shim/rebind.c, re-pointing imports from one library set to another, tested
# on libraries built here: libid_old.so and libid_new.so (one source built
# twice), libthird.so importing from the old one, libhook.so interposing one
# of its functions, libid_twn.so the identical twin a plan is written
# against. The test program is built three ways: PIE bound lazily,
# PIE bound at load with full RELRO, and not PIE. Then the same on the
# installed gRPC (grpc-rebind, below).
#
# Not among the ASan unit tests: ASan's dlopen refuses RTLD_DEEPBIND, with
# which the copies are loaded, and the checks compare the program's own data
# before and after, which ASan's runtime keeps changing. UBSan only here.

RB_DIR    := tests/rebind
RB_OUT    := $(BUILD)/rebind
RB_CFLAGS := -O1 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
             -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
RB_LIBS   := $(RB_OUT)/libid_old.so $(RB_OUT)/libid_new.so $(RB_OUT)/libid_twn.so $(RB_OUT)/libhook.so \
             $(RB_OUT)/libthird.so $(RB_OUT)/librebind.so
RB_TESTS  := $(RB_OUT)/rebind-pie-lazy $(RB_OUT)/rebind-pie-now $(RB_OUT)/rebind-nopie

.PHONY: test-rebind

$(RB_OUT)/libid_old.so: $(RB_DIR)/libid.c $(RB_DIR)/id.h $(RB_DIR)/libid.map
	@mkdir -p $(@D)
	$(CC) $(RB_CFLAGS) -fPIC -shared -Wl,-soname,libid_old.so -Wl,--version-script=$(RB_DIR)/libid.map \
	  -DID_NAME='"old"' -DID_NUM=100 -DID_OLD -o $@ $<

$(RB_OUT)/libid_new.so: $(RB_DIR)/libid.c $(RB_DIR)/id.h $(RB_DIR)/libid.map
	@mkdir -p $(@D)
	$(CC) $(RB_CFLAGS) -fPIC -shared -Wl,-soname,libid_new.so -Wl,--version-script=$(RB_DIR)/libid.map \
	  -DID_NAME='"new"' -DID_NUM=200 -o $@ $<

# An identical twin of libid_old.so under another soname, as the parent will
# load renamed copies of gRPC's libraries: same layout, other addresses.
$(RB_OUT)/libid_twn.so: $(RB_OUT)/libid_old.so $(RB_DIR)/rename_soname.py
	python3 $(RB_DIR)/rename_soname.py $< $@ libid_old.so=libid_twn.so

$(RB_OUT)/libhook.so: $(RB_DIR)/hook.c $(RB_DIR)/id.h
	@mkdir -p $(@D)
	$(CC) $(RB_CFLAGS) -fPIC -shared -o $@ $<

$(RB_OUT)/libthird.so: $(RB_DIR)/third.c $(RB_DIR)/third.h $(RB_OUT)/libid_old.so
	$(CC) $(RB_CFLAGS) -fPIC -shared -Wl,-z,lazy -Wl,-z,relro -o $@ $< -L$(RB_OUT) -lid_old

# The module as an object of its own, as it is inside the shim.
$(RB_OUT)/librebind.so: shim/rebind.c shim/rebind.h
	@mkdir -p $(@D)
	$(CC) $(RB_CFLAGS) -Ishim -fPIC -shared -Wl,-z,now -o $@ $< -ldl

# libhook before libid_old: it comes first in the global scope.
RB_LINK := -L$(RB_OUT) -Wl,--no-as-needed -lrebind -lthird -lhook -lid_old -lcriterion -ldl -Wl,-rpath,'$$ORIGIN'

$(RB_OUT)/rebind-pie-lazy: $(RB_DIR)/test_rebind.c $(RB_DIR)/third.h shim/rebind.h $(RB_LIBS)
	$(CC) $(RB_CFLAGS) -Ishim -fPIE -pie -Wl,-z,lazy -o $@ $< $(RB_LINK)

$(RB_OUT)/rebind-pie-now: $(RB_DIR)/test_rebind.c $(RB_DIR)/third.h shim/rebind.h $(RB_LIBS)
	$(CC) $(RB_CFLAGS) -Ishim -DREBIND_BOUND_AT_LOAD -fPIE -pie -Wl,-z,now -Wl,-z,relro -o $@ $< $(RB_LINK)

$(RB_OUT)/rebind-nopie: $(RB_DIR)/test_rebind.c $(RB_DIR)/third.h shim/rebind.h $(RB_LIBS)
	$(CC) $(RB_CFLAGS) -Ishim -fno-pie -no-pie -Wl,-z,lazy -o $@ $< $(RB_LINK)


# On the installed gRPC: a grpc++ program's imports re-pointed to renamed
# copies of libgrpc and libgrpc++ (sonames changed in place, same length).
# Where the linker finds them (grpc.pc's libdir is not where Debian puts them).
RB_GRPC_LIB    := $(shell $(CC) -print-file-name=libgrpc.so.29)
RB_GRPCXX_LIB  := $(shell $(CC) -print-file-name=libgrpc++.so.1.51)
RB_GRPC        := $(RB_OUT)/grpc-rebind
RB_COPIES      := $(RB_OUT)/copies

$(RB_COPIES)/libgrpz.so.29 $(RB_COPIES)/libgrpc+z.so.1.51 &: $(RB_DIR)/rename_soname.py
	@mkdir -p $(RB_COPIES)
	python3 $(RB_DIR)/rename_soname.py $(RB_GRPC_LIB) $(RB_COPIES)/libgrpz.so.29 \
	  libgrpc.so.29=libgrpz.so.29
	python3 $(RB_DIR)/rename_soname.py $(RB_GRPCXX_LIB) $(RB_COPIES)/libgrpc+z.so.1.51 \
	  libgrpc++.so.1.51=libgrpc+z.so.1.51 libgrpc.so.29=libgrpz.so.29

$(RB_GRPC): $(RB_DIR)/grpc_rebind.cc shim/rebind.h $(RB_OUT)/librebind.so
	$(CXX) -O1 -g -std=c++17 -Wall -Ishim -fPIE -pie $(shell pkg-config --cflags grpc++ 2>/dev/null) -o $@ $< \
	  -L$(RB_OUT) -lrebind -Wl,-rpath,'$$ORIGIN' $(shell pkg-config --libs grpc++ 2>/dev/null) -ldl

# A plan on a grpc++ program, written in a forked child against identical
# twins of libgrpc's whole dependency closure (make_twins.py).
RB_GRPC_PLAN := $(RB_OUT)/grpc-plan
RB_TWINS     := $(RB_OUT)/twins

$(RB_TWINS)/twins.txt: $(RB_DIR)/make_twins.py $(RB_DIR)/rename_soname.py
	python3 $(RB_DIR)/make_twins.py $(RB_GRPC_LIB) $(RB_TWINS)

$(RB_GRPC_PLAN): $(RB_DIR)/grpc_plan.cc shim/rebind.h $(RB_OUT)/librebind.so
	$(CXX) -O1 -g -std=c++17 -Wall -Ishim -fPIE -pie $(shell pkg-config --cflags grpc++ 2>/dev/null) -o $@ $< \
	  -L$(RB_OUT) -lrebind -Wl,-rpath,'$$ORIGIN' $(shell pkg-config --libs grpc++ 2>/dev/null) -ldl -lpthread

test-rebind: $(RB_TESTS) $(RB_GRPC) $(RB_COPIES)/libgrpz.so.29 $(RB_COPIES)/libgrpc+z.so.1.51 \
             $(RB_GRPC_PLAN) $(RB_TWINS)/twins.txt
	@failed=0; for t in $(RB_TESTS); do \
	  echo "== $$t"; $$t --jobs 2 || failed=1; \
	done; \
	echo "== $(RB_GRPC)"; $(RB_GRPC) $(RB_COPIES) || failed=1; \
	echo "== $(RB_GRPC_PLAN)"; $(RB_GRPC_PLAN) $(RB_TWINS) || failed=1; \
	exit $$failed
