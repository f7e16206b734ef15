# Sourced by utils/parse_options.sh and egs/common/recipe.sh: one way to list a script's
# options for --help.
#     option_help SCRIPT [NAME...]
# prints "  --name  value  help" for every variable assigned at the top of SCRIPT (above the
# line that sources parse_options.sh or recipe.sh), its current value, and the "# " comment
# lines right above its assignment, joined; with NAMEs, only those variables.

option_help() {
  local script=$1; shift
  local only=" $* " line name prev=""
  while IFS= read -r line; do
    [[ $line == *"parse_options.sh"* || $line == *"common/recipe.sh"* ]] && [[ $line != \#* ]] && break
    if [[ $line =~ ^([a-z_][a-z0-9_]*)= ]]; then
      name=${BASH_REMATCH[1]}
      if [ $# -eq 0 ] || [[ $only == *" $name "* ]]; then
        printf "  --%-22s %-28s %s\n" "${name//_/-}" "${!name-}" "$prev"
      fi
      prev=""
    elif [[ $line =~ ^#\ (.*) ]]; then
      prev="${prev:+$prev }${BASH_REMATCH[1]}"
    else
      prev=""
    fi
  done < "$script"
}
