#!/usr/bin/env bash
# make bench: budgets of DESIGN.md §9, measured as ratios in one run.
# On two shared cores one run is noise, so configurations are interleaved
# (A B A B …, ROUNDS times) and medians are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) exit 1; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "== token: full Verify vs raw ed25519.Verify (uncached decision budget: <= 1.35x)"
go test -c -o "$out/token.test" ./token/ >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  for b in BenchmarkVerify BenchmarkEd25519Verify; do
    "$out/token.test" -test.run '^$' -test.bench "^${b}\$" -test.benchmem -test.benchtime 1s \
      | awk -v b="$b" '$1 ~ "^"b"(-[0-9]+)?$" {print $3, $5, $7}' >>"$out/$b"
  done
done
v=$(cut -d' ' -f1 "$out/BenchmarkVerify" | median)
r=$(cut -d' ' -f1 "$out/BenchmarkEd25519Verify" | median)
va=$(cut -d' ' -f3 "$out/BenchmarkVerify" | median)
printf '%-28s %12s %10s\n' "benchmark (median of $ROUNDS)" "ns/op" "allocs/op"
printf '%-28s %12.0f %10s\n' "Verify (full)" "$v" "$va"
printf '%-28s %12.0f %10s\n' "ed25519.Verify (raw)" "$r" "0"
awk -v v="$v" -v r="$r" 'BEGIN {printf "ratio Verify/raw            %12.2fx  (budget <= 1.35x)\n", v/r}'
