#!/usr/bin/env bash
# Where gRPC is absent, lacks a symbol the shim needs, or is a version the shim
# was not tested with, a program under the shim behaves exactly as without it,
# with at most one warn line. Usage: run.sh SHIM BUILD_DIR
set -u
shim=$(realpath "$1")
dir=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../../scripts/verdicts.sh"

# run NAME LIBDIR PRELOAD [ENV...] -- CMD...: stdout, stderr and status into $tmp/NAME.*
run() {
	local name=$1 libdir=$2 preload=$3
	shift 3
	local envs=()
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	env ${libdir:+LD_LIBRARY_PATH=$libdir} ${preload:+LD_PRELOAD=$preload} "${envs[@]}" \
		timeout 20 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	echo $? >"$tmp/$name.rc"
}

shim_lines() { grep -c 'grpc-forksafe: ' "$tmp/$1.err"; }

same_as_without() {
	local name=$1
	if ! cmp -s "$tmp/$name.out" "$tmp/$name-plain.out"; then
		fail "$name" "stdout differs from the run without the shim: $(paste -sd' ' "$tmp/$name.out")"
	elif ! cmp -s "$tmp/$name.rc" "$tmp/$name-plain.rc"; then
		fail "$name" "exit status $(cat "$tmp/$name.rc"), without the shim $(cat "$tmp/$name-plain.rc")"
	else
		return 0
	fi
	return 1
}

# 1. No gRPC at all: not one line from the shim, same output and status.
script='echo out; echo err >&2; (echo child) ; exit 3'
run nogrpc "" "$shim" -- sh -c "$script"
run nogrpc-plain "" "" -- sh -c "$script"
if same_as_without nogrpc; then
	if cmp -s "$tmp/nogrpc.err" "$tmp/nogrpc-plain.err"; then pass "no gRPC: same output, status and stderr"
	else fail "no gRPC" "stderr differs: $(paste -sd' ' "$tmp/nogrpc.err")"; fi
fi

# 2. A libgrpc without core's fork hooks: one warn line, then pure pass-through.
run missing "$dir/missing" "$shim" -- "$dir/fork-once"
run missing-plain "$dir/missing" "" -- "$dir/fork-once"
if same_as_without missing; then
	if [ "$(shim_lines missing)" != 1 ] || ! grep -q 'warn: libgrpc lacks _Z12grpc_preforkv' "$tmp/missing.err"; then
		fail "libgrpc lacking symbols" "expected one warn line naming the symbol, got: $(paste -sd'|' "$tmp/missing.err")"
	elif grep -q 'fake:' "$tmp/missing.err"; then
		fail "libgrpc lacking symbols" "the shim still acted: $(grep 'fake:' "$tmp/missing.err" | paste -sd'|')"
	else pass "libgrpc lacking symbols: one warn line, program unchanged"; fi
fi

# 3. An untested core version: one warn line, pass-through...
run untested "$dir/untested" "$shim" -- "$dir/fork-once"
run untested-plain "$dir/untested" "" -- "$dir/fork-once"
if same_as_without untested; then
	if [ "$(shim_lines untested)" != 1 ] || ! grep -q 'warn: gRPC core 30.0.0 is untested' "$tmp/untested.err"; then
		fail "untested gRPC" "expected one warn line, got: $(paste -sd'|' "$tmp/untested.err")"
	elif grep -q 'fake:' "$tmp/untested.err"; then
		fail "untested gRPC" "the shim still acted: $(grep 'fake:' "$tmp/untested.err" | paste -sd'|')"
	else pass "untested gRPC: one warn line, program unchanged"; fi
fi

# ... unless the user opts in: then the shim acts (which shows the checks above
# can tell acting from not acting). By default the child gets a fresh gRPC:
# its call goes to a channel made in a private copy of the library (whose
# channel numbers start again at 0), and core's fork hooks are not run.
run optin "$dir/untested" "$shim" GRPC_FORKSAFE_ALLOW_UNTESTED=1 -- "$dir/fork-once"
if ! grep -q 'fake: grpc_prefork called' "$tmp/optin.err" && grep -q 'fake: channel argument forksafe.generation' "$tmp/optin.err" &&
	[ "$(head -1 "$tmp/optin.out")" = "call on channel 0 of g01grpc.so.29" ] && [ "$(cat "$tmp/optin.rc")" = 0 ]; then
	pass "GRPC_FORKSAFE_ALLOW_UNTESTED=1: the shim acts; the child's call reaches its private copy"
else
	fail "GRPC_FORKSAFE_ALLOW_UNTESTED=1" "out: $(paste -sd'|' "$tmp/optin.out") err: $(paste -sd'|' "$tmp/optin.err")"
fi
# With the inherited gRPC, core's hooks run and the call goes to a
# replacement channel made in the same library.
run optin-inherited "$dir/untested" "$shim" GRPC_FORKSAFE_ALLOW_UNTESTED=1 GRPC_FORKSAFE_CHILD_GRPC=inherited -- "$dir/fork-once"
if grep -q 'fake: grpc_prefork called' "$tmp/optin-inherited.err" &&
	grep -q 'fake: channel argument forksafe.generation' "$tmp/optin-inherited.err" &&
	[ "$(head -1 "$tmp/optin-inherited.out")" = "call on channel 1 of libgrpc.so.29" ] &&
	[ "$(cat "$tmp/optin-inherited.rc")" = 0 ]; then
	pass "GRPC_FORKSAFE_ALLOW_UNTESTED=1 GRPC_FORKSAFE_CHILD_GRPC=inherited: the shim acts"
else
	fail "GRPC_FORKSAFE_ALLOW_UNTESTED=1 GRPC_FORKSAFE_CHILD_GRPC=inherited" \
		"out: $(paste -sd'|' "$tmp/optin-inherited.out") err: $(paste -sd'|' "$tmp/optin-inherited.err")"
fi

summary pass-through
