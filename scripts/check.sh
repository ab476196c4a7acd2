#!/usr/bin/env bash
# The whole test suite (README: `bun run test`): type-check, every test under Bun, then the portable
# core's tests under Deno with the two runners' counts compared. The last line sums them up.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
status=0

echo "== typecheck: $(node_modules/.bin/tsc --version)"
if node_modules/.bin/tsc --noEmit -p tsconfig.json; then echo "typecheck: ok"; else echo "typecheck: FAILED"; status=1; fi

echo "== bpf objects rebuild byte for byte"
bpf_fail=0
if sh bpf/check-reproducible.sh; then echo "bpf: reproducible"; else echo "bpf: FAILED (the committed bpf/tidegate.bpf.o is not what bpf/ builds)"; status=1; bpf_fail=1; fi

echo "== bun test"
bun test 2>&1 | tee .tmp/bun-test.log
[ "${PIPESTATUS[0]}" = 0 ] || status=1
pass=$(grep -E '^ *[0-9]+ pass$' .tmp/bun-test.log | tail -1 | tr -dc 0-9)
fail=$(grep -E '^ *[0-9]+ fail$' .tmp/bun-test.log | tail -1 | tr -dc 0-9)

echo "== portable core under Deno"
bun scripts/deno-parity.ts | tee .tmp/deno-parity.log
[ "${PIPESTATUS[0]}" = 0 ] || status=1
dpass=$(sed -n 's/^deno-parity: \([0-9]*\) passed.*/\1/p' .tmp/deno-parity.log)
dfail=$(sed -n 's/^deno-parity: [0-9]* passed, \([0-9]*\) failed.*/\1/p' .tmp/deno-parity.log)

total_pass=$(( ${pass:-0} + ${dpass:-0} ))
total_fail=$(( ${fail:-0} + ${dfail:-0} + bpf_fail ))
[ "$status" = 0 ] || [ "$total_fail" -gt 0 ] || total_fail=1
echo "bun: ${pass:-0} passed, ${fail:-0} failed; deno: ${dpass:-0} passed, ${dfail:-0} failed"
echo "tests: $total_pass passed, $total_fail failed"
exit $status
