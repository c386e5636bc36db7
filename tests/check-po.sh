#!/bin/bash
# tests/check-po.sh SOURCE_ROOT: every message of the sources listed in
# po/POTFILES.in has a translation in each po/LANG.po of po/LINGUAS, none of
# them fuzzy, and each catalogue compiles with msgfmt --check. Fails naming
# the language and the messages; `ninja -C build transfusion-update-po`
# brings a .po up to date, and then its translator fills it in.
set -euo pipefail
root=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
# The keywords of meson's i18n.gettext(preset: 'glib').
xgettext --from-code=UTF-8 --add-comments --keyword=_ --keyword=N_ --keyword=C_:1c,2 \
  --keyword=NC_:1c,2 --keyword=g_dcgettext:2 --keyword=g_dngettext:2,3 \
  --keyword=g_dpgettext2:2c,3 --flag=N_:1:pass-c-format --flag=C_:2:pass-c-format \
  --flag=NC_:2:pass-c-format --flag=g_dngettext:2:pass-c-format \
  --flag=g_strdup_printf:1:c-format --flag=g_string_printf:2:c-format \
  --flag=g_string_append_printf:2:c-format --flag=g_error_new:3:c-format \
  --flag=g_set_error:4:c-format --flag=g_markup_printf_escaped:1:c-format \
  --flag=g_log:3:c-format --flag=g_print:1:c-format --flag=g_printerr:1:c-format \
  --flag=g_printf:1:c-format --flag=g_fprintf:2:c-format --flag=g_sprintf:2:c-format \
  --flag=g_snprintf:3:c-format \
  --files-from=po/POTFILES.in --output="$work/messages.pot" 2> "$work/xgettext.log" || {
    cat "$work/xgettext.log" >&2
    exit 1
  }
status=0
for lang in $(grep -v '^#' po/LINGUAS); do
  msgmerge --quiet --no-fuzzy-matching --output-file="$work/$lang.po" "po/$lang.po" \
    "$work/messages.pot"
  msgfmt --check --output-file=/dev/null "$work/$lang.po"
  missing=$(msgattrib --untranslated --no-obsolete "$work/$lang.po" | grep -c '^msgid ' || true)
  fuzzy=$(msgattrib --only-fuzzy --no-obsolete "$work/$lang.po" | grep -c '^msgid ' || true)
  # msgattrib prints the header entry too, when it prints anything
  [ "$missing" -gt 0 ] && missing=$((missing - 1))
  [ "$fuzzy" -gt 0 ] && fuzzy=$((fuzzy - 1))
  total=$(grep -c '^msgid ' "$work/messages.pot")
  echo "$lang: $((total - 1)) messages, $missing untranslated, $fuzzy fuzzy"
  if [ "$missing" -gt 0 ] || [ "$fuzzy" -gt 0 ]; then
    msgattrib --untranslated --no-obsolete "$work/$lang.po" | grep -A1 '^msgid ' | tail -n +3 >&2
    msgattrib --only-fuzzy --no-obsolete "$work/$lang.po" | grep -A1 '^msgid ' | tail -n +3 >&2
    status=1
  fi
  # the committed file, too, has nothing fuzzy
  if msgattrib --only-fuzzy --no-obsolete "po/$lang.po" | grep -q '^msgid '; then
    echo "po/$lang.po has fuzzy messages" >&2
    status=1
  fi
done
exit $status
