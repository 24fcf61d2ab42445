# Sourced by scripts/deploy.sh: the command line, declared once. Each `option` row below drives
# the parser (parse_options), the format checks (check_option_formats), the help (usage) and the
# plan's options line (options_line); validate.sh adds the derived defaults and the checks that
# involve more than one option.
#
#   option FLAG var=VAR [arg=METAVAR] [default=VALUE] [match=ERE error=MESSAGE] [alias=-X] help=TEXT
#
# Without arg= the option is a switch (VAR becomes 1). default= is a literal default, shown in the
# help; defaults derived from other options are set by validate_options and said in the help text.
# match= is an extended regular expression a non-empty value must match once the derived defaults
# are in (error= is the message otherwise, %s the value).

OPTION_FLAGS=()
declare -A OPTION_VAR=() OPTION_ARG=() OPTION_DEFAULT=() OPTION_MATCH=() OPTION_ERROR=() OPTION_HELP=()
declare -A OPTION_ALIAS=() # alias -> flag

option() {
  local flag="$1" field key
  shift
  OPTION_FLAGS+=("$flag")
  OPTION_ARG[$flag]="" OPTION_DEFAULT[$flag]="" OPTION_MATCH[$flag]="" OPTION_ERROR[$flag]=""
  for field in "$@"; do
    key="${field%%=*}"
    case "$key" in
      var) OPTION_VAR[$flag]="${field#*=}" ;;
      arg) OPTION_ARG[$flag]="${field#*=}" ;;
      default) OPTION_DEFAULT[$flag]="${field#*=}" ;;
      match) OPTION_MATCH[$flag]="${field#*=}" ;;
      error) OPTION_ERROR[$flag]="${field#*=}" ;;
      help) OPTION_HELP[$flag]="${field#*=}" ;;
      alias) OPTION_ALIAS[${field#*=}]="$flag" ;;
      *) printf 'deploy: option %s: unknown field %s\n' "$flag" "$field" >&2 && return 1 ;;
    esac
  done
}

option --project var=PROJECT arg=ID \
  match='^[a-z][a-z0-9-]{4,28}[a-z0-9]$' \
  error="invalid project id '%s': 6-30 characters, lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen" \
  help='Google Cloud / Firebase project id (required; not a demo- project)'
option --region var=REGION arg=REGION default=us-central1 \
  match='^[a-z]+-[a-z]+[0-9]+$' error="invalid region '%s' (expected something like us-central1)" \
  help='Artifact Registry, VM and static address region'
option --zone var=ZONE arg=ZONE \
  match='^[a-z]+-[a-z]+[0-9]+-[a-z]$' error="invalid zone '%s' (expected something like us-central1-a)" \
  help='VM zone (default us-central1-a; REGION-b for other regions)'
option --runner-domain var=RUNNER_DOMAIN arg=DOMAIN \
  match='^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$' \
  error="invalid --runner-domain '%s' (a DNS name like runner.example.com, without https://)" \
  help="The runner's public name; RUNNER_URL and the ID-token audience are https://DOMAIN. Required unless --skip-runner and functions/.env.PROJECT already has RUNNER_URL. You create its DNS A record (printed at the end)."
option --machine-type var=MACHINE_TYPE arg=TYPE default=e2-standard-2 \
  match='^[a-z0-9-]+$' error="invalid machine type '%s'" \
  help='VM machine type'
option --firestore-location var=FIRESTORE_LOCATION arg=LOC \
  match='^[a-z0-9-]+$' error="invalid Firestore location '%s'" \
  help='Location of a new Firestore database (default: REGION; permanent)'
option --model-provider var=MODEL_PROVIDER arg=P \
  match='^(openai|vertex)$' error="invalid --model-provider '%s' (openai or vertex)" \
  help="openai: any OpenAI-compatible provider at --model-base-url, its key read from the MODEL_API_KEY environment variable (never an argument) and kept in Secret Manager; vertex: Vertex AI with the VM's service account (no key). Default: none (the agent answers offline)"
option --model-base-url var=MODEL_BASE_URL arg=URL \
  match='^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$' \
  error="invalid --model-base-url '%s' (https://..., e.g. https://api.openai.com/v1)" \
  help="openai: the provider's base URL, e.g. https://api.openai.com/v1"
option --model-allowlist var=MODEL_ALLOWLIST arg=LIST \
  match='^[A-Za-z0-9._:/@-]+(,[A-Za-z0-9._:/@-]+)*$' \
  error="invalid model name in --model-allowlist '%s' (comma-separated names)" \
  help='Comma-separated models runs may use (default: any)'
option --model-default var=MODEL_DEFAULT arg=MODEL \
  match='^[A-Za-z0-9._:/@-]+$' error="invalid model name '%s'" \
  help='The model of runs that name none'
option --vertex-location var=VERTEX_LOCATION arg=LOC \
  match='^[a-z0-9-]+$' error="invalid --vertex-location '%s'" \
  help='vertex: the Vertex AI location (default: REGION)'
option --runners var=RUNNERS arg=MIN..MAX \
  match='^[0-9]{1,3}(\.\.[0-9]{1,3})?$' error="invalid --runners '%s' (MIN..MAX, e.g. 2..10, or N)" \
  help='A fleet of MIN to MAX runner VMs (autoscaled; N alone means N..N) behind an internal load balancer, workspaces in Cloud Storage, the functions on a VPC connector. Replaces --runner-domain. Default: one VM, no fleet'
option --bucket var=BUCKET arg=NAME \
  match='^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$' \
  error="invalid --bucket '%s' (3-63 lowercase letters, digits, - and _; not starting with goog)" \
  help="The fleet's workspace bucket (default: PROJECT-agent-workspaces)"
option --proxy-subnet-range var=PROXY_SUBNET_RANGE arg=R \
  match='^(([0-9]{1,3})\.){3}[0-9]{1,3}/([0-9]{1,2})$' error="invalid range '%s' (expected a CIDR like 10.127.0.0/23)" \
  help="The balancer's proxy-only subnet, if REGION has none (default 10.127.0.0/23)"
option --connector-range var=CONNECTOR_RANGE arg=R \
  match='^(([0-9]{1,3})\.){3}[0-9]{1,3}/([0-9]{1,2})$' error="invalid range '%s' (expected a CIDR like 10.127.0.0/23)" \
  help="The VPC connector's /28 (default 10.8.0.0/28)"
option --skip-runner var=SKIP_RUNNER \
  help='Skip images, registry, VM or fleet, network (steps 4-6, 8, 9)'
option --skip-firebase var=SKIP_FIREBASE \
  help='Skip Firestore database, functions params and firebase deploy (3, 10, 11)'
option --dry-run var=DRY_RUN \
  help='Print every command and file content; run nothing, write nothing'
option --help var=SHOW_HELP alias=-h help='This help'

# The provider's key comes from the environment only: an argument would show in `ps` and history.
MODEL_API_KEY="${MODEL_API_KEY:-}"

# init_options: every option's variable at its default (switches at 0).
init_options() {
  local flag
  for flag in "${OPTION_FLAGS[@]}"; do
    if [[ -n ${OPTION_ARG[$flag]} ]]; then
      printf -v "${OPTION_VAR[$flag]}" '%s' "${OPTION_DEFAULT[$flag]}"
    else
      printf -v "${OPTION_VAR[$flag]}" 0
    fi
  done
}

usage_error() {
  printf 'deploy.sh: %s\n' "$1" >&2
  printf 'Run scripts/deploy.sh --help for usage.\n' >&2
  exit 2
}

# parse_options ARG...: sets the options' variables (--flag VALUE or --flag=VALUE); --help prints
# the usage and exits 0; anything else is refused (exit 2).
parse_options() {
  local arg flag
  while (($# > 0)); do
    arg="$1"
    shift
    flag="${arg%%=*}"
    if [[ -v OPTION_ALIAS[$flag] ]]; then flag="${OPTION_ALIAS[$flag]}"; fi
    if ! [[ -v OPTION_VAR[$flag] ]]; then usage_error "unknown argument: $arg"; fi
    if [[ $flag == --help ]]; then
      usage
      exit 0
    fi
    if [[ -z ${OPTION_ARG[$flag]} ]]; then
      if [[ $arg == *=* ]]; then usage_error "$flag takes no value"; fi
      printf -v "${OPTION_VAR[$flag]}" 1
    elif [[ $arg == *=* ]]; then
      printf -v "${OPTION_VAR[$flag]}" '%s' "${arg#*=}"
    else
      if (($# == 0)); then usage_error "$flag needs a value"; fi
      printf -v "${OPTION_VAR[$flag]}" '%s' "$1"
      shift
    fi
  done
}

# check_option_formats: every non-empty value against its row's match= (in the table's order).
check_option_formats() {
  local flag var value
  for flag in "${OPTION_FLAGS[@]}"; do
    [[ -n ${OPTION_MATCH[$flag]} ]] || continue
    var="${OPTION_VAR[$flag]}"
    value="${!var}"
    if [[ -n $value ]] && ! [[ $value =~ ${OPTION_MATCH[$flag]} ]]; then option_error "$flag" "$value"; fi
  done
}

# option_error FLAG VALUE: refuses VALUE with FLAG's error= message.
option_error() {
  local message
  # The table's message is the format (its own text, never the value).
  printf -v message "${OPTION_ERROR[$1]}" "$2"
  usage_error "$message"
}

# options_line: sets REPLY to the options in effect (defaults filled in) as a command line.
options_line() {
  local flag var args=()
  for flag in "${OPTION_FLAGS[@]}"; do
    var="${OPTION_VAR[$flag]}"
    if [[ -n ${OPTION_ARG[$flag]} ]]; then
      if [[ -n ${!var} ]]; then args+=("$flag" "${!var}"); fi
    elif [[ ${!var} == 1 && $flag != --help ]]; then
      args+=("$flag")
    fi
  done
  fmt_cmd "${args[@]}"
  REPLY="$CMD_TEXT"
}

# wrap WIDTH TEXT: sets REPLY to TEXT's lines of at most WIDTH characters (words are not split).
wrap() {
  local width="$1" word words line="" out=""
  read -ra words <<<"$2"
  for word in "${words[@]}"; do
    if [[ -n $line && $((${#line} + 1 + ${#word})) -gt $width ]]; then
      out+="$line"$'\n'
      line="$word"
    else
      line+="${line:+ }$word"
    fi
  done
  REPLY="$out$line"
}

usage() {
  local flag alias names text first=1 line
  printf '%s\n' \
    "Usage: scripts/deploy.sh --project PROJECT [--region us-central1] [--zone us-central1-a]" \
    "                         [--runner-domain runner.example.com | --runners MIN..MAX]" \
    "                         [--dry-run] [--skip-runner] [--skip-firebase] [OPTION...]" \
    "" \
    "Deploys the runner (Compute Engine VM with Docker, behind Caddy for HTTPS) or a fleet of them" \
    "(--runners), their images (Artifact Registry), the service accounts, and Cloud Functions +" \
    "Firestore rules + Hosting." \
    ""
  for flag in "${OPTION_FLAGS[@]}"; do
    names="$flag"
    for alias in "${!OPTION_ALIAS[@]}"; do
      if [[ ${OPTION_ALIAS[$alias]} == "$flag" ]]; then names="$alias, $flag"; fi
    done
    names+="${OPTION_ARG[$flag]:+ ${OPTION_ARG[$flag]}}"
    text="${OPTION_HELP[$flag]}"
    if [[ -n ${OPTION_DEFAULT[$flag]} ]]; then text+=" (default ${OPTION_DEFAULT[$flag]})"; fi
    wrap 75 "$text"
    first=1
    while IFS= read -r line; do
      if ((first)); then printf '  %-24s %s\n' "$names" "$line"; else printf '%27s%s\n' "" "$line"; fi
      first=0
    done <<<"$REPLY"
  done
  printf '%s\n' "" "Exit codes: 0 done, 1 a step failed (the message names it and what to check), 2 bad arguments."
}
