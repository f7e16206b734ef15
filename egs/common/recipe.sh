# Sourced by every egs/<corpus>/run.sh, after its corpus options.  The recipe declares them
#     mgb2_dir=/path/to/mgb2            (a default per option, with a "# " help line above)
#     recipe_options="mgb2_dir mer_thresh"
#     . "$(dirname "$0")/../common/recipe.sh"
# and then calls run_pipeline with its set names (--train-set ...).  What this file does:
#   * takes the recipe's own options (--mgb2-dir D) off the command line and exports them,
#     so the recipe's local/prepare.sh (stage 1) sees them;
#   * reads the recipe's conf/pipeline.conf ("--name=value" lines: the paper's settings) and
#     passes them to the generic run.sh; a name run.sh does not know is an error naming the
#     conf file (a misspelt setting silently left out would change the run);
#   * runs the generic "$udistil_root/run.sh" with those, --corpus-prep local/prepare.sh and
#     the remaining command-line arguments last, so the command line wins (ESPnet habit).
# Outputs (data/, exp/) go to the current directory, as for the generic run.sh.

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
udistil_root=$(cd "$recipe_dir/../.." && pwd)
pipeline_conf=${pipeline_conf:-$recipe_dir/conf/pipeline.conf}

. "$udistil_root/utils/option_help.sh"
recipe_help() {
  echo "Recipe options ($recipe_dir):"
  option_help "$recipe_dir/run.sh" $recipe_options
  echo "  (settings from $pipeline_conf are passed first; any option below overrides them)"
  echo
  echo "Pipeline options ($udistil_root/run.sh):"
  "$udistil_root/run.sh" --help | tail -n +2
}

# RESULTS.md records the command as the user typed it in the recipe's directory (not the
# generic run.sh's absolute path and the options this file adds), so it reruns anywhere.
UDISTIL_RECIPE_COMMAND=$(printf '%q ' "$0" "$@"); export UDISTIL_RECIPE_COMMAND=${UDISTIL_RECIPE_COMMAND% }

# Split "$@" into the recipe's options (assigned here) and the pipeline's (kept in order).
pipeline_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) recipe_help; exit 0 ;;
    --*)
      __key=${1%%=*}; __name=${__key#--}; __name=${__name//-/_}
      if [[ " $recipe_options " == *" $__name "* ]]; then
        if [[ $1 == *=* ]]; then printf -v "$__name" '%s' "${1#*=}"; shift
        else
          [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
          printf -v "$__name" '%s' "$2"; shift 2
        fi
        continue
      fi
      # Not ours: passed through verbatim (its value follows as a plain word).
      pipeline_args+=("$1"); shift ;;
    *) pipeline_args+=("$1"); shift ;;
  esac
done
unset __key __name
for __name in $recipe_options; do export "${__name?}"; done
unset __name

# "--name=value" lines of the pipeline conf; an option run.sh does not accept stops the run.
conf_args() {
  [ -f "$pipeline_conf" ] || return 0
  local known line name
  known=" $("$udistil_root/run.sh" --help | sed -n 's/^  --\([a-z0-9-]*\).*/\1/p' | tr '\n' ' ') "
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    line=$(echo "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
    [ -z "$line" ] && continue
    name=${line%%=*}; name=${name#--}
    if [[ $line != --*=* ]]; then
      echo "$pipeline_conf: cannot parse '$line' (expected --name=value)" >&2; exit 1
    elif [[ $known == *" $name "* ]]; then
      conf_pipeline_args+=("$line")
    else
      echo "$pipeline_conf: --$name is not an option of $udistil_root/run.sh (see ./run.sh --help); fix or remove the line" >&2
      exit 1
    fi
  done < "$pipeline_conf"
}

# run_pipeline [recipe's pipeline options, e.g. --train-set train]: conf first, then these,
# then the command line.
run_pipeline() {
  conf_pipeline_args=()
  conf_args
  exec "$udistil_root/run.sh" "${conf_pipeline_args[@]}" --corpus-prep "$recipe_dir/local/prepare.sh" \
    "$@" "${pipeline_args[@]}"
}
