#!/bin/sh
# The layering of src/ (src/README): each folder includes only the folders
# below it, and no unit (a .c with its .h) reaches itself through includes.
# Prints the folder graph; fails on an edge not allowed or on a circle.
set -eu
: "${top_srcdir:?run through make check}"
cd "$top_srcdir/src"
# which folder may include which (besides itself)
allowed="pki:common accounts:pki accounts:common ssh:pki ssh:common wire:pki wire:common
helper:wire helper:pki helper:common pam:accounts pam:pki pam:ssh pam:wire pam:common
tools:pam tools:accounts tools:pki tools:ssh tools:wire tools:common
watch:helper watch:common"
edges=$(for f in */*.c */*.h; do
	from=${f%%/*}
	sed -n 's|^#include "\([a-z]*\)/\([a-z_0-9]*\)\.h".*|\1/\2|p' "$f" | while read -r h; do
		printf '%s %s %s\n' "$from" "${h%%/*}" "${f%.*} ${h}"
	done
done)
failed=0
echo "$edges" | awk '$1 != $2 { print $1 " -> " $2 }' | sort | uniq -c | sed 's/^/layers: /'
for e in $(echo "$edges" | awk '$1 != $2 { print $1 ":" $2 }' | sort -u); do
	case " $(echo $allowed) " in
	*" $e "*) ;;
	*) echo "layers: $e is not allowed (src/README):"; echo "$edges" | awk -v e="$e" '$1 ":" $2 == e { print "  " $3 " includes " $4 }'
	   failed=1 ;;
	esac
done
# circles between units: a depth-first walk of unit -> unit edges
echo "$edges" | awk '{ u = $3; v = $4; if (u != v) print u, v }' | sort -u > "${TMPDIR:-/tmp}/piv-layers.$$"
trap 'rm -f "${TMPDIR:-/tmp}/piv-layers.$$"' EXIT
circle=$(awk '
	{ adj[$1] = adj[$1] " " $2; nodes[$1]; nodes[$2] }
	function visit(n,   i, k, list) {
		if (state[n] == 1) { found = found " " n; return 1 }
		if (state[n] == 2) return 0
		state[n] = 1
		k = split(adj[n], list, " ")
		for (i = 1; i <= k; i++)
			if (visit(list[i])) { if (!done) found = found " <- " n; if (list[i] == n) done = 1; return 1 }
		state[n] = 2
		return 0
	}
	END { for (n in nodes) if (visit(n)) { print found; exit } }' "${TMPDIR:-/tmp}/piv-layers.$$")
if [ -n "$circle" ]; then
	echo "layers: an include circle:$circle"
	failed=1
fi
[ "$failed" = 0 ] && echo "layers: no circle, every edge goes down"
exit "$failed"
