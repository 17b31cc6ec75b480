#!/bin/sh
# Prints, for the non-test Go files of the given directories, the files over
# FILE_MAX lines and the functions over FUNC_MAX lines (from `func` to its
# closing brace; gofmt puts both in column 0), longest first. Exits 1 when
# anything is over, so CI can hold the line.
#
#   scripts/longest.sh                     # framework api offers
#   FUNC_MAX=80 scripts/longest.sh deploy  # other directories, other limits
set -eu
cd "$(dirname "$0")/.."
FUNC_MAX=${FUNC_MAX:-120}
FILE_MAX=${FILE_MAX:-800}
[ $# -gt 0 ] || set -- framework api offers
files=$(find "$@" -name '*.go' ! -name '*_test.go' ! -path '*/testdata/*' | sort)
over=0
for f in $files; do
	n=$(wc -l <"$f")
	if [ "$n" -gt "$FILE_MAX" ]; then
		echo "file $f: $n lines (max $FILE_MAX)"
		over=1
	fi
done
# $files is a list of paths without spaces (git ls-files of Go files), split on purpose.
# shellcheck disable=SC2086
funcs=$(awk -v max="$FUNC_MAX" '
	/^func / { name = $0; sub(/[ \t]*\{[ \t]*$/, "", name); start = FNR; next }
	/^}/ && start { n = FNR - start + 1; if (n > max) printf "%d\t%s:%d\t%s\n", n, FILENAME, start, name; start = 0 }
' $files | sort -rn)
if [ -n "$funcs" ]; then
	echo "$funcs" | while IFS="$(printf '\t')" read -r n where name; do
		echo "func $where: $n lines (max $FUNC_MAX): $name"
	done
	over=1
fi
[ "$over" = 0 ] && echo "longest.sh: no file over $FILE_MAX lines, no function over $FUNC_MAX lines in $*"
exit $over
