#!/bin/sh
# pam_piv-compliance(7) cites, for each requirement, the tests that show it:
# ".I FILE NAME" for a cmocka case, ".I FILE \(dqTITLE\(dq" for a case of a
# shell test, ".I FILE" for a whole test script. This fails when a cited
# test no longer exists (a C case no longer registered in its program, a
# shell case title no longer in its script, a file gone) or when a
# requirement (.SS) cites none, so the map cannot quietly go stale.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
page=${1:-$src/man/pam_piv-compliance.7}
[ -f "$page" ] || { echo "compliance: no $page" >&2; exit 1; }

bad=0 rows=0 cites=0 row="" row_cites=0
end_row() {
	if [ -n "$row" ] && [ "$row_cites" = 0 ]; then
		echo "FAIL: '$row' cites no test"
		bad=$((bad + 1))
	fi
}
# shellcheck disable=SC2016
while IFS= read -r line; do
	case $line in
	'.SS '*)
		end_row
		row=$(printf '%s' "${line#.SS }" | tr -d '"' | sed 's/\\//g')
		rows=$((rows + 1)) row_cites=0
		continue ;;
	'.SH '*)
		end_row
		row="" row_cites=0
		continue ;;
	'.I tests/'*) ;;
	*) continue ;;
	esac
	rest=${line#.I }
	file=${rest%% *}
	[ "$file" = "$rest" ] && what="" || what=${rest#* }
	cites=$((cites + 1)) row_cites=$((row_cites + 1))
	if [ ! -f "$src/$file" ]; then
		echo "FAIL: $file (cited under '$row') does not exist"
		bad=$((bad + 1))
		continue
	fi
	case $what in
	'') ;;
	'\(dq'*)
		title=$(printf '%s' "$what" | sed 's/^\\(dq//; s/\\(dq$//')
		if ! grep -Fq "\"$title" "$src/$file"; then
			echo "FAIL: $file has no case \"$title\" (cited under '$row')"
			bad=$((bad + 1))
		fi ;;
	*)
		# registered in the program's table: cmocka_unit_test*(NAME or S(NAME)
		if ! grep -Eq "(cmocka_unit_test[a-z_]*|S)\([[:space:]]*$what[[:space:]]*[,)]" \
			"$src/$file"; then
			echo "FAIL: $file does not run $what (cited under '$row')"
			bad=$((bad + 1))
		fi ;;
	esac
done < "$page"
end_row
echo "compliance: $rows requirements, $cites citations, $bad problems"
[ "$rows" -gt 0 ] && [ "$bad" = 0 ]
