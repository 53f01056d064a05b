#!/usr/bin/env bash
# The one set-up command after cloning: system packages, npm packages, and (on Linux) the software
# Vulkan driver that lets WebGPU run on a machine with no GPU.
#
#   bash scripts/setup.sh              # or: npm run setup
#   bash scripts/setup.sh --ci         # npm ci instead of npm install (exact lockfile, clean tree)
#   bash scripts/setup.sh --browser    # also Debian's chromium, for the headless browser test
#   bash scripts/setup.sh --only npm   # one step: system, npm or vulkan (CI times each)
#
# Safe to run again: each step skips what is already there. Prints how long each step took.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

ci=0
browser=0
only=''
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1 ;;
    --browser) browser=1 ;;
    --only) only="${2:-}"; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$only" in
  ''|system|npm|vulkan) ;;
  *) echo "setup: --only takes system, npm or vulkan" >&2; exit 2 ;;
esac

# Runs a command with its output kept aside, shown only if it fails.
quiet() {
  local log status=0
  log="$(mktemp)"
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" = 0 ]; then rm -f "$log"; return 0; fi
  echo "setup: failed ($status): $*" >&2
  tail -n 60 "$log" >&2
  rm -f "$log"
  return "$status"
}

now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }

# Runs one named step and prints its duration.
step() {
  local name="$1" start
  shift
  start=$(now)
  echo "==> $name"
  "$@"
  awk -v a="$start" -v b="$(now)" -v n="$name" 'BEGIN { printf "    %s: %.1fs\n", n, b - a }'
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

system_packages() {
  if [ "$(uname -s)" != Linux ]; then
    echo "    not Linux: no system packages needed (WebGPU comes from the platform's GPU driver)"
    return 0
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    echo "    no apt here: install the Vulkan loader (libvulkan.so.1) and patchelf with your package manager"
    return 0
  fi
  # libvulkan1: the Vulkan loader Dawn and Deno open. patchelf: fetch-lavapipe.sh fixes the driver's
  # library path with it. chromium: the headless browser test.
  local wanted=(libvulkan1 patchelf)
  if [ "$browser" = 1 ]; then wanted+=(chromium); fi
  local missing=()
  for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "    already installed: ${wanted[*]}"
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if [ "$ci" = 1 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "setup: missing system packages: ${missing[*]}. Install them, then run this again:" >&2
      echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "    installing ${missing[*]}"
  # Without recommends: chromium's would bring systemd, perl, samba and a print stack.
  quiet "${sudo[@]}" apt-get update -qq
  quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

npm_packages() {
  # --ignore-scripts is not used: package.json's allowScripts lets esbuild, deno and webgpu run
  # their install steps (they put native binaries in place) and nothing else. It denies
  # onnxruntime-node's, which downloads CUDA libraries from api.nuget.org (unreachable here; its CPU
  # build ships in the package); npm before 11 ignores allowScripts, so ORT's own switch is set too.
  export ONNXRUNTIME_NODE_INSTALL=skip
  if [ "$ci" = 1 ]; then
    quiet npm ci --no-audit --no-fund --loglevel=error
  else
    quiet npm install --no-audit --no-fund --loglevel=error
  fi
}

software_vulkan() {
  if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ] || ! command -v apt-get >/dev/null; then
    echo "    skipped: the software driver is fetched for Debian/Ubuntu on x86-64 only"
    return 0
  fi
  quiet bash scripts/fetch-lavapipe.sh
  echo "    lavapipe in .vulkan/ (the engine offers it to Vulkan beside any real GPU, which is preferred)"
}

want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
if want system; then step "system packages" system_packages; fi
if want npm; then step "npm packages" npm_packages; fi
if want vulkan; then step "software Vulkan driver (lavapipe)" software_vulkan; fi
if [ -z "$only" ]; then echo "setup done. Try: npm test, or npm run sample"; fi
