# Sourced (not executed) by a run.sh after its variable defaults:
#     stage=0; nj=4; . utils/parse_options.sh
# Every variable already defined becomes a flag: --nj 8, --stop-stage 3 (dashes map to
# underscores), --foo=bar also works.  --help lists the variables with their current values
# (lines starting with "# " right above an assignment in the calling script become its help).
# Unknown flags are an error, so a typo never silently runs the default.

__po_script=${0}
. "$(dirname "${BASH_SOURCE[0]}")/option_help.sh"
__po_help() {
  echo "usage: $__po_script [--option value]..."
  echo "options (current value):"
  option_help "$__po_script"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) __po_help; exit 0 ;;
    --*=*) __po_key=${1%%=*}; __po_val=${1#*=}; shift ;;
    --*)
      __po_key=$1
      if [ $# -lt 2 ]; then echo "$__po_script: option $1 needs a value" >&2; exit 1; fi
      __po_val=$2; shift 2 ;;
    *) break ;;
  esac
  __po_name=${__po_key#--}
  __po_name=${__po_name//-/_}
  if [[ ! $__po_name =~ ^[a-zA-Z_][a-zA-Z0-9_]*$ ]] || [ -z "${!__po_name+x}" ]; then
    echo "$__po_script: unknown option $__po_key (see --help)" >&2
    exit 1
  fi
  printf -v "$__po_name" '%s' "$__po_val"
done
unset __po_key __po_val __po_name
true
