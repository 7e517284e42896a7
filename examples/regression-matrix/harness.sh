#!/bin/sh
# harness SUITE [--scale N]: run every case /tests/SUITE/*.in through the calculator and
# compare with its .golden file. Writes /out/junit.xml (a testcase per case) and, for a
# case that differs, /out/diffs/SUITE/CASE.diff; exits 1 if any case differs.
set -u
suite=$1
shift
scale=1
while [ $# -gt 0 ]; do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        *) echo "harness: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "/out/diffs/$suite"
junit=/out/junit.xml
failed=0
total=0
echo "<testsuites><testsuite name=\"$suite\">" > "$junit"
for input in /tests/"$suite"/*.in; do
    name=$(basename "$input" .in)
    total=$((total + 1))
    actual=/tmp/$name.actual
    awk -v scale="$scale" -f /usr/local/lib/calc.awk "$input" > "$actual"
    if diff -u "/tests/$suite/$name.golden" "$actual" > "/out/diffs/$suite/$name.diff"; then
        rm "/out/diffs/$suite/$name.diff"
        echo "  <testcase classname=\"$suite\" name=\"$name\"/>" >> "$junit"
        echo "ok   $suite/$name"
    else
        failed=$((failed + 1))
        echo "  <testcase classname=\"$suite\" name=\"$name\"><failure message=\"differs from $name.golden\"/></testcase>" >> "$junit"
        echo "FAIL $suite/$name:"
        cat "/out/diffs/$suite/$name.diff"
    fi
done
echo "</testsuite></testsuites>" >> "$junit"
echo "$suite: $((total - failed)) of $total cases passed"
[ "$failed" -eq 0 ]
