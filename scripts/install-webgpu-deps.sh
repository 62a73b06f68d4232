#!/usr/bin/env bash
# Installs what WebGPU (Dawn's Node binding, npm `webgpu`) needs to run on a Linux machine
# without a GPU: Mesa's software Vulkan driver (lavapipe) plus the Vulkan loader.
#
# Debian bookworm's own Mesa (22.3) is too old: Dawn refuses its lavapipe adapter, so the
# drivers come from bookworm-backports (Mesa 25). The backports suite is added on the same
# archive host the machine already uses (read from its apt sources, never hard-coded).
#
# Idempotent and quiet; meant for CI, run as root. Prints one line at the end.
# Env: WEBGPU_DEPS_FORCE=1 re-runs apt even when everything looks installed.
set -euo pipefail

log() { printf 'install-webgpu-deps: %s\n' "$*"; }
die() { printf 'install-webgpu-deps: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get)"
command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu only)"

. /etc/os-release
codename="${VERSION_CODENAME:-}"
[ "$codename" = bookworm ] || die "expected Debian bookworm, found '${PRETTY_NAME:-unknown}'"
backports="${codename}-backports"

# Already done? lavapipe ICD present with a Mesa >= 24 and the loader installed.
mesa_ok() {
  local v
  v="$(dpkg-query -W -f='${Status} ${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
  case "$v" in
    'install ok installed '*) ;;
    *) return 1 ;;
  esac
  v="${v##* }"
  dpkg --compare-versions "$v" ge 24 || return 1
  dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed' || return 1
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}
if [ "${WEBGPU_DEPS_FORCE:-0}" != 1 ] && mesa_ok; then
  log "already installed: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
  exit 0
fi

# Active apt source files (apt only reads *.list and *.sources in sources.list.d).
shopt -s nullglob
list_files=()
[ -f /etc/apt/sources.list ] && list_files+=(/etc/apt/sources.list)
list_files+=(/etc/apt/sources.list.d/*.list)
sources_files=(/etc/apt/sources.list.d/*.sources)
shopt -u nullglob

has_backports() {
  local f
  for f in "${list_files[@]}"; do
    grep -Eq "^[[:space:]]*deb[[:space:]].*[[:space:]]${backports}([[:space:]]|$)" "$f" && return 0
  done
  for f in "${sources_files[@]}"; do
    grep -Eiq "^[[:space:]]*Suites:.*[[:space:]]${backports}([[:space:]]|$)" "$f" && return 0
  done
  return 1
}

# The archive URI that serves the plain "<codename>" suite (not -security, not third parties).
find_archive_uri() {
  local f
  # deb822: one stanza per blank-line-separated paragraph.
  for f in "${sources_files[@]}"; do
    awk -v want="$codename" '
      function flush() {
        if (enabled && types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "") {
          n = split(suites, s, /[ \t]+/)
          for (i = 1; i <= n; i++) if (s[i] == want) {
            split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
          }
        }
        types = ""; uris = ""; suites = ""; enabled = 1
      }
      BEGIN { enabled = 1 }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        line = $0; key = tolower(line); sub(/:.*/, "", key); gsub(/[ \t]/, "", key)
        val = line; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+$/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled" && tolower(val) == "no") enabled = 0
      }
      END { if (!found) flush() }
    ' "$f" | head -n1 | grep . && return 0
  done
  # one-line format: deb [options] uri suite components...
  for f in "${list_files[@]}"; do
    awk -v want="$codename" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit }
      }
    ' "$f" | head -n1 | grep . && return 0
  done
  return 1
}

export DEBIAN_FRONTEND=noninteractive
apt_q=(-q -q -o Dpkg::Use-Pty=0)

if ! has_backports; then
  uri="$(find_archive_uri)" || die "no apt source serving '$codename' found to derive the archive host from"
  uri="${uri%/}"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  {
    echo "# Added by scripts/install-webgpu-deps.sh (Mesa 25 lavapipe for WebGPU/Dawn)."
    echo "Types: deb"
    echo "URIs: ${uri}"
    echo "Suites: ${backports}"
    echo "Components: main"
    if [ -f "$keyring" ]; then echo "Signed-By: ${keyring}"; fi
    # snapshot.debian.org serves frozen Release files whose Valid-Until has passed.
    case "$uri" in *snapshot.debian.org*) echo "Check-Valid-Until: no" ;; esac
  } >"/etc/apt/sources.list.d/${backports}.sources"
  log "added ${backports} from ${uri}"
fi

# Quiet, but show apt's own output if something goes wrong.
apt_log="$(mktemp)"
trap 'rm -f "$apt_log"' EXIT
run_apt() {
  if ! apt-get "${apt_q[@]}" "$@" >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "apt-get $* failed"
  fi
}
run_apt update
# -t: take Mesa (and the mesa-libgallium/libdrm/LLVM it pulls in) from backports; libvulkan1
# comes from bookworm itself when backports has none.
run_apt install -y --no-install-recommends -t "$backports" mesa-vulkan-drivers libvulkan1

mesa_ok || die "mesa-vulkan-drivers from ${backports} did not install a usable lavapipe ICD"
log "installed mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) from ${backports}"
