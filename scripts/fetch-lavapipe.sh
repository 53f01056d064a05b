#!/usr/bin/env bash
# Fetches Mesa 25's lavapipe (a software Vulkan driver) from Debian's bookworm-backports suite
# into .vulkan/ inside the project, without touching the system's apt configuration.
# Dawn rejects bookworm's own Mesa 22.3 lavapipe, hence the backports build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.vulkan"
icd="$dest/lvp_icd.json"
if [ -f "$icd" ] && [ -f "$dest/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" ]; then
  echo "lavapipe already in $dest"; exit 0
fi
mesa_version="${MESA_VERSION:-25.0.7-2~bpo12+1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/debs"
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$work/sources.list"
apt_opts=(-oDir::Etc::SourceList="$work/sources.list" -oDir::Etc::SourceParts=/dev/null
          -oDir::State::Lists="$work/lists" -oAPT::Get::List-Cleanup=0)
apt-get "${apt_opts[@]}" update -qq
(cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq \
   "mesa-vulkan-drivers=$mesa_version" libdrm2/bookworm-backports libdrm-amdgpu1/bookworm-backports)
rm -rf "$dest.partial"; mkdir -p "$dest.partial"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$dest.partial"; done
lib="$dest.partial/usr/lib/x86_64-linux-gnu"
# The driver needs libdrm >= 2.4.121; bookworm's is older. Pointing the driver's RUNPATH at its own
# folder makes it find the backported libdrm without LD_LIBRARY_PATH, so the engine can select
# this driver from inside a running process.
patchelf --set-rpath '$ORIGIN' "$lib/libvulkan_lvp.so"
cat > "$dest.partial/lvp_icd.json" <<JSON
{ "file_format_version": "1.0.1",
  "ICD": { "library_path": "$dest/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so", "api_version": "1.4.305" } }
JSON
rm -rf "$dest"; mv "$dest.partial" "$dest"
echo "lavapipe installed in $dest"
