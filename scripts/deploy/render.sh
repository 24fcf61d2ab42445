# Sourced by scripts/deploy.sh: renders the checked-in templates beside it (the VM's startup and
# shutdown scripts, the balancer's backend service) with bash builtins only, so that --dry-run
# needs nothing on PATH. No eval: a value is text, never code, and is not rendered again.
#
# Template syntax (chosen not to collide with what the scripts themselves contain: Go templates
# such as {{json .Runtimes}}, shell expansions, curl's -H @file):
#   @NAME@        the value as one shell word: as it is when it holds only characters no shell
#                 treats specially (SHELL_SAFE_RE), single-quoted otherwise
#   @NAME:bare@   the value as it is, refused unless it is such a word: for places where quotes
#                 would be wrong (inside "...", YAML)
#   #@if NAME, #@else, #@end
#                 on lines of their own: the lines between are kept when NAME's value is neither
#                 empty nor 0; they nest
#   #@# TEXT      a comment for the template's reader, not written (it may sit inside a command
#                 continued over lines, where a shell comment would end the command)
# Refused (render_template fails, naming the template and line): a name without a value (in
# every branch, kept or not, so a typo cannot hide in the branch a test skips), a value with a
# newline or another control character (none is legitimate, and one would end a command early),
# a directive out of place, and a line continued with `\` followed by an empty line or by nothing
# (a `docker run` was once cut short at an empty continuation line).

# Characters no shell expands or splits on, in an argument (fmt_cmd shows commands with it too).
SHELL_SAFE_RE='^[-A-Za-z0-9_./:=,@%+^]+$'
PLACEHOLDER_RE='@([A-Z][A-Z0-9_]*)(:bare)?@'
DIRECTIVE_RE='^#@(if ([A-Za-z_][A-Za-z0-9_]*)|else|end)$'

# shell_quote VALUE: sets REPLY to VALUE as one shell word (quoted only if it needs to be).
shell_quote() {
  if [[ $1 =~ $SHELL_SAFE_RE ]]; then REPLY="$1"; else REPLY="'${1//\'/\'\\\'\'}'"; fi
}

# __render_error MESSAGE: names the template and line being rendered (render_template's locals).
__render_error() {
  local where="$__template"
  if [[ -n ${ROOT:-} ]]; then where="${where#"$ROOT"/}"; fi
  printf 'deploy: template %s, line %s: %s\n' "$where" "$__n" "$1" >&2
}

# render_template TEMPLATE VALUES OUT: renders the file TEMPLATE with the associative array named
# VALUES into the variable named OUT (every line newline-terminated). Returns 1 with a message on
# stderr if the template or a value is refused.
render_template() {
  local __template="$1" __out="$3"
  local -n __values="$2"
  local -a __lines=() __kept=() __keep=(1) __else=(0)
  local __line __rest __match __name __value __n=0 __i
  if ! mapfile -t __lines <"$__template"; then
    __render_error "cannot be read"
    return 1
  fi
  for __line in "${__lines[@]}"; do
    ((++__n))
    if [[ $__line == '#@#'* ]]; then continue; fi
    if [[ $__line =~ $DIRECTIVE_RE ]]; then
      case "${BASH_REMATCH[1]}" in
        if\ *)
          __name="${BASH_REMATCH[2]}"
          if ! [[ -v __values[$__name] ]]; then __render_error "#@if $__name: $__name has no value"; return 1; fi
          __value="${__values[$__name]}"
          if ((__keep[-1])) && [[ -n $__value && $__value != 0 ]]; then __keep+=(1); else __keep+=(0); fi
          __else+=(0)
          ;;
        else)
          if ((${#__keep[@]} < 2 || __else[-1])); then __render_error "#@else without #@if"; return 1; fi
          # Kept when the block around is kept and the #@if branch was not.
          if ((__keep[-2] && !__keep[-1])); then __keep[-1]=1; else __keep[-1]=0; fi
          __else[-1]=1
          ;;
        end)
          if ((${#__keep[@]} < 2)); then __render_error "#@end without #@if"; return 1; fi
          unset '__keep[-1]' '__else[-1]'
          ;;
      esac
      continue
    fi
    if [[ $__line == '#@'* ]]; then __render_error "unknown directive '$__line'"; return 1; fi
    __rest="$__line"
    __line=""
    while [[ $__rest =~ $PLACEHOLDER_RE ]]; do
      __match="${BASH_REMATCH[0]}"
      __name="${BASH_REMATCH[1]}"
      if ! [[ -v __values[$__name] ]]; then __render_error "@$__name@ has no value"; return 1; fi
      __value="${__values[$__name]}"
      if ((__keep[-1])); then
        if [[ $__value == *[[:cntrl:]]* ]]; then
          __render_error "the value of $__name holds a newline or another control character"
          return 1
        fi
        if [[ -n ${BASH_REMATCH[2]} ]]; then
          if ! [[ $__value =~ $SHELL_SAFE_RE ]]; then
            __render_error "the value of $__name must be a plain word here (letters, digits, -_./:=,@%+^), not '$__value'"
            return 1
          fi
        else
          shell_quote "$__value"
          __value="$REPLY"
        fi
      fi
      # Quoted patterns match literally: no character of a value is a pattern here.
      __line+="${__rest%%"$__match"*}$__value"
      __rest="${__rest#*"$__match"}"
    done
    if ((__keep[-1])); then __kept+=("$__line$__rest"); fi
  done
  if ((${#__keep[@]} > 1)); then __render_error "#@if without #@end"; return 1; fi
  for __i in "${!__kept[@]}"; do
    if [[ ${__kept[__i]} == *\\ ]] && { ((__i + 1 == ${#__kept[@]})) || [[ -z ${__kept[__i + 1]//[[:space:]]/} ]]; }; then
      __n="$((__i + 1)) of the output"
      __render_error "a line continued with \\ is followed by an empty line or nothing: the command would end there"
      return 1
    fi
  done
  printf -v "$__out" '%s\n' "${__kept[@]}"
}
