# PASS/FAIL lines and the closing "N passed, N failed" line, for the test
# scripts. Source this file, then:
#   pass NAME
#   fail NAME REASON [EVIDENCE FILE...]   the last 40 lines of each file follow,
#                                         so a failure in CI reads from its log alone
#   summary [LABEL]                       the closing line; false if anything failed

PASSED=0 FAILED=0

pass() {
  PASSED=$((PASSED + 1))
  echo "PASS $1"
}

fail() {
  local f
  FAILED=$((FAILED + 1))
  echo "FAIL $1: $2"
  for f in "${@:3}"; do
    [ -s "$f" ] || continue
    echo "  --- $f (last 40 lines)"
    tail -n 40 "$f" | sed 's/^/  | /'
  done
}

summary() {
  echo "${1:+$1: }$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
