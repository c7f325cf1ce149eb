#!/bin/sh
# The CPU test suite (make test). Exit status: 0 when everything passed.
set -u
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
fail=0
pass=0

echo "== operators: float64 finite differences"
"$B/test_ops_f64" grad "$B/gradcheck.tsv" > "$B/gradcheck.log" || fail=$((fail + 1))
echo "== operators: PyTorch oracle"
rm -rf "$B/oracle" && mkdir -p "$B/oracle"
if "$B/test_ops" dump "$B/oracle" && "$PY" tests/oracle.py "$B/oracle"; then
    if "$B/test_ops" check "$B/oracle" "$B/gradcheck.tsv"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
else
    echo "FAIL: the PyTorch oracle did not run (make deps installs python3-torch)"
    fail=$((fail + 1))
fi

for t in "$B"/tests/t_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    if "$t"; then pass=$((pass + 1)); else echo "FAIL: $t"; fail=$((fail + 1)); fi
done
for t in tests/t_*.sh; do
    [ -f "$t" ] || continue
    echo "== $(basename "$t")"
    if BUILD="$B" PY="$PY" sh "$t"; then pass=$((pass + 1)); else echo "FAIL: $t"; fail=$((fail + 1)); fi
done
echo "suites: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
