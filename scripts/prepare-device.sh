#!/usr/bin/env bash
# Prepares .device/ (git-ignored): what a machine with a real GPU and no npm or internet needs to
# run the benchmark and the golden tests, in under 64 MiB. Then, on that machine, from the
# repository root:   bash .device/run.sh        (results and logs land in $OUT, else .device/out)
#
#   bash scripts/prepare-device.sh               for the project's device tool, which copies this
#                                                checkout (weights/emoji32 included) and carries
#                                                .device/ beside it: every golden file is packed
#   bash scripts/prepare-device.sh --standalone  also packs the emoji32 weights, for a machine
#                                                without this checkout; to stay under 64 MiB only
#                                                the DDIM golden comes along then
#   bash scripts/prepare-device.sh --sd15        Stable Diffusion 1.5 instead: the SD goldens (tiny SD
#                                                folder, its references) and the DDIM golden, the
#                                                engine's SD 1.5 layout (random weights) and PyTorch
#                                                fp16 beside it; no ONNX Runtime (the SD goldens
#                                                take its room). Then: bash .device/run.sh
#   --dir DIR                                    somewhere else than .device/
#
# What goes in:
#   node.xz                    this machine's node (Node 20), stripped and xz-compressed
#   app/bench.mjs, golden.mjs  esbuild bundles of scripts/bench.ts and the golden suites
#                              (test/*golden*.test.ts and clip_text_model; Dawn's bindings outside)
#   layout                     unet (UNet2DModel: emoji32, CIFAR-10, CelebA-HQ) or sd15: what run.sh runs
#   app/node_modules/webgpu    Dawn's bindings, Linux x64 only, dawn.node xz-compressed
#   golden/*.xz                the golden tensors the tests read from ../shared/golden
#   app/node_modules/onnxruntime-web   its WebGPU build (the bundle and the wasm, xz): the peer
#   peers/                     the graph-only cifar10 and celebahq ONNX files and their .json
#                              (emoji32.onnx, 36 MB of weights, does not fit); torch_bench.py,
#                              the layouts' diffusers configs, diffusers' source (for PyTorch)
#   weights/emoji32/           (--standalone) the default model, compressed
#   lib/                       the Vulkan loader and GL dispatch libraries, used only where the
#                              machine lacks them (see /work/shared/docs/gpu-runtimes.md)
#   run.sh                     unpacks into a temporary folder, sets up Vulkan, runs it all
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

standalone=0
layout=unet
dev="$root/.device"
while [ $# -gt 0 ]; do
  case "$1" in
    --standalone) standalone=1 ;;
    --sd15) layout=sd15 ;;
    --dir) dev="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "prepare-device: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

LIMIT=$((64 * 1024 * 1024))
# Compressed copies are kept here between runs (xz of the weights alone takes half a minute).
cache="$root/build/device/cache"
golden_src="$root/../shared/golden"
esbuild="$root/node_modules/.bin/esbuild"
[ -x "$esbuild" ] || { echo "prepare-device: esbuild is missing: run npm install first" >&2; exit 1; }
[ -f node_modules/webgpu/dist/linux-x64/dawn.node ] || { echo "prepare-device: node_modules/webgpu (linux-x64) is missing: run npm install first" >&2; exit 1; }
[ -d "$golden_src" ] || { echo "prepare-device: $golden_src is missing" >&2; exit 1; }

# xz of a file into place, skipped when the packed copy is newer than its source.
pack() {
  local src="$1" dst="$2" level="${3:--6}"
  if [ -f "$dst" ] && [ "$dst" -nt "$src" ]; then return; fi
  mkdir -p "$(dirname "$dst")"
  xz "$level" -T1 -c "$src" > "$dst.tmp"
  mv "$dst.tmp" "$dst"
}

echo "prepare-device: into $dev ($([ $standalone = 1 ] && echo standalone || echo 'for the device tool'), layout $layout)"
mkdir -p "$dev"
echo "$layout" > "$dev/layout"
# What the other mode packed, and old bundles, go; the slow-to-compress node binary stays.
rm -rf "$dev/app" "$dev/golden" "$dev/weights" "$dev/lib" "$dev/out" "$dev/peers"

# node: stripped of its debug info (99 MB -> 86 MB) before compression.
node_bin="$(readlink -f "$(command -v node)")"
node_version="$(node --version)"
if [ ! -f "$dev/node.xz" ] || [ "$(cat "$dev/node.version" 2>/dev/null)" != "$node_version" ] || [ "$node_bin" -nt "$dev/node.xz" ]; then
  echo "  node $node_version: strip and xz (about a minute) ..."
  tmp="$(mktemp)"
  if command -v strip >/dev/null; then strip -o "$tmp" "$node_bin"; else cp "$node_bin" "$tmp"; fi
  xz -9e -T1 -c "$tmp" > "$dev/node.xz.tmp"
  mv "$dev/node.xz.tmp" "$dev/node.xz"
  rm -f "$tmp"
  echo "$node_version" > "$dev/node.version"
fi

echo "  bundles ..."
mkdir -p "$dev/app" build/device
banner="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
"$esbuild" scripts/bench.ts --bundle --platform=node --format=esm --target=node20 --external:webgpu \
  --log-level=error "--banner:js=$banner" --outfile="$dev/app/bench.mjs"
golden_tests=()
for f in test/*golden*.test.ts test/clip_text_model.test.ts; do golden_tests+=("$(basename "$f")"); done
{
  echo "// Generated by scripts/prepare-device.sh: the golden suites in one bundle."
  echo "import process from 'node:process';"
  echo "import { runSuites } from '../../test/harness.ts';"
  echo "const suites: Record<string, () => Promise<unknown>> = {"
  for f in "${golden_tests[@]}"; do echo "  '$f': () => import('../../test/$f'),"; done
  echo "};"
  echo "const filters = process.argv.slice(2);"
  echo "const names = Object.keys(suites).filter((n) => filters.length === 0 || filters.some((w) => n.includes(w)));"
  echo "process.exit(await runSuites(names, (n) => suites[n]()));"
} > build/device/golden-entry.ts
"$esbuild" build/device/golden-entry.ts --bundle --platform=node --format=esm --target=node20 --external:webgpu \
  --log-level=error "--banner:js=$banner" --outfile="$dev/app/golden.mjs"

echo "  webgpu (Dawn, linux-x64) ..."
wg="$dev/app/node_modules/webgpu"
mkdir -p "$wg/dist/linux-x64"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js node_modules/webgpu/LICENSE.md "$wg/"
pack node_modules/webgpu/dist/linux-x64/dawn.node "$cache/dawn.node.xz"
cp "$cache/dawn.node.xz" "$wg/dist/linux-x64/dawn.node.xz"

if [ $layout = unet ]; then
  echo "  onnxruntime-web (WebGPU build) ..."
  ow="$dev/app/node_modules/onnxruntime-web"
  mkdir -p "$ow/dist"
  cp node_modules/onnxruntime-web/package.json "$ow/"
  cp node_modules/onnxruntime-web/dist/ort.webgpu.bundle.min.mjs node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.mjs "$ow/dist/"
  pack node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm "$cache/ort-asyncify.wasm.xz"
  cp "$cache/ort-asyncify.wasm.xz" "$ow/dist/ort-wasm-simd-threaded.asyncify.wasm.xz"
fi

echo "  peers (ONNX graphs, PyTorch script, configs, diffusers source) ..."
peers_src="$root/../shared/peers"
mkdir -p "$dev/peers/configs"
peer_files=(cifar10.onnx cifar10.json celebahq.onnx celebahq.json diffusers-src.tar.xz)
[ $layout = sd15 ] && peer_files=(diffusers-src.tar.xz)
for f in "${peer_files[@]}"; do
  if [ -f "$peers_src/$f" ]; then cp "$peers_src/$f" "$dev/peers/"; else echo "    (no $peers_src/$f)"; fi
done
cp scripts/peers/torch_bench.py scripts/peers/device_summary.mjs "$dev/peers/"
node scripts/node.mjs scripts/peers/write_configs.ts "$dev/peers/configs" >/dev/null
# SD 1.5's component configs, for PyTorch's UNet2DConditionModel and AutoencoderKL.
[ $layout = sd15 ] && cp -r "$golden_src/sd/configs/sd15" "$dev/peers/configs/sd15"

echo "  golden files ..."
if [ $layout = sd15 ]; then
  # The SD suites' files (text_to_image, unet_2d_condition, autoencoder, clip_text_model golden),
  # the published configs the bench builds SD 1.5 from, and the DDIM golden (not --standalone:
  # it needs the checkout's emoji32).
  golden_files=()
  [ $standalone = 1 ] || golden_files=(meta.json emoji32_ddim.safetensors)
  golden_files+=(sd/sd.safetensors sd/ldm.safetensors sd/tokenizer_cases.json)
  while IFS= read -r f; do golden_files+=("${f#"$golden_src/"}"); done < <(
    find "$golden_src/sd/tiny-sd" "$golden_src/sd/tiny-ldm/vqvae" "$golden_src/sd/configs" -type f | sort)
elif [ $standalone = 1 ]; then
  golden_files=(meta.json emoji32_ddim.safetensors)
else
  golden_files=(meta.json emoji32_ddim.safetensors emoji32_unet.safetensors tiny64_unet.safetensors
    tiny64_legacy/config.json tiny64_legacy/diffusion_pytorch_model.safetensors)
fi
for f in "${golden_files[@]}"; do
  pack "$golden_src/$f" "$cache/golden/$f.xz"
  mkdir -p "$(dirname "$dev/golden/$f")"
  cp "$cache/golden/$f.xz" "$dev/golden/$f.xz"
done

if [ $standalone = 1 ] && [ $layout = unet ]; then
  echo "  weights/emoji32 ..."
  mkdir -p "$dev/weights/emoji32"
  for f in weights/emoji32/*; do
    case "$f" in
      *.safetensors) pack "$f" "$cache/$f.xz"; cp "$cache/$f.xz" "$dev/$f.xz" ;;
      *) cp "$f" "$dev/$f" ;;
    esac
  done
fi

echo "  Vulkan loader and GL dispatch libraries (used only where missing) ..."
mkdir -p "$dev/lib"
for lib in libvulkan.so.1 libGLdispatch.so.0 libGLX.so.0 libEGL.so.1; do
  path="$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')"
  if [ -n "$path" ]; then cp -L "$path" "$dev/lib/$lib"; else echo "    (no $lib on this machine)"; fi
done

cat > "$dev/run.sh" <<'RUN'
#!/usr/bin/env bash
# On this machine's GPU, from what scripts/prepare-device.sh packed, in this order:
#   1. the golden tests (every UNet and DDIM golden), once per conv kernel family (each tiled
#      shape, registers);
#   2. the engine's benchmark (emoji32, and the CIFAR-10 and CelebA-HQ-256 layouts with random
#      weights) with onnxruntime-web's WebGPU EP on the same Dawn adapter beside it (--peers);
#      emoji32 at batch 64 once more per tiled family (bench-emoji32-b64-<family>.json), so one
#      run times every tile shape and the summary names the fastest; and each at precision f16;
#   3. PyTorch on the same card for the same layouts: eager, CUDA graphs, torch.compile;
#   4. results.json and results.md (one table, the card's name) from all of it.
# A kit packed with --sd15 runs instead, each step with its own time limit, within DEADLINE:
#   1. the SD goldens (text-to-image, conditional UNet, autoencoders, CLIP text model) and DDIM's;
#   2. the engine's SD 1.5 layout (random weights) at f16: a UNet forward at batch 2 (one image
#      under guidance, 64x64 latents) and a 50-step 512x512 text-to-image (bench-sd15-f16.json);
#   3. PyTorch fp16 on the same card: diffusers' UNet2DConditionModel from the same config with
#      eager attention (AttnProcessor) and with scaled_dot_product_attention (AttnProcessor2_0):
#      the forward, and the same 50 guided steps then the VAE decode (torch-sd15.json);
#   4. the engine at f32: the forward (bench-sd15-f32.json); 5. results.json and results.md.
#   bash .device/run.sh            results, logs and traces go to $OUT (else .device/out)
# Knobs: QUICK=1 (tiny settings, the UNet goldens only: checks the kit, measures nothing),
# MODELS="emoji32 cifar10 celebahq" (which to benchmark), BATCHES=0 (skip the big-batch runs),
# GOLDEN=0, PEERS=0, TORCH=0 (skip a part), TORCH_MODES="eager cuda-graphs compile",
# STEP_TIMEOUT=seconds per run (default 300), PYTHON (default python3); DEADLINE=seconds for the
# whole run (sd15: 570 by default, so one 600-second call returns everything that finished; a
# step is cut off where it would pass it), SD_STEPS (sd15: 50).
set -uo pipefail
dev="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$dev/.." && pwd)"
OUT="${OUT:-$dev/out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec > >(tee -a "$OUT/run.log") 2>&1
work="$(mktemp -d "${TMPDIR:-/tmp}/ddim-device.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="$work/xdg"; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"

unxz_to() { # unxz_to SRC.xz DST, with Python's lzma where the machine has no xz
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}

echo "=== unpack into $work"
mkdir -p "$work/bin" "$work/shared"
unxz_to "$dev/node.xz" "$work/bin/node" && chmod +x "$work/bin/node"
cp -r "$dev/app" "$work/app"
unxz_to "$dev/app/node_modules/webgpu/dist/linux-x64/dawn.node.xz" "$work/app/node_modules/webgpu/dist/linux-x64/dawn.node"
rm -f "$work/app/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
(cd "$dev/golden" && find . -name '*.xz') | while read -r f; do
  mkdir -p "$(dirname "$work/shared/golden/$f")"
  unxz_to "$dev/golden/$f" "$work/shared/golden/${f%.xz}"
done
mkdir -p "$work/app/weights"
if [ -f "$repo/weights/emoji32/diffusion_pytorch_model.safetensors" ]; then
  ln -s "$repo/weights/emoji32" "$work/app/weights/emoji32"
  echo "weights: the checkout's weights/emoji32"
elif [ -d "$dev/weights/emoji32" ]; then
  mkdir -p "$work/app/weights/emoji32"
  for f in "$dev/weights/emoji32"/*; do
    case "$f" in *.xz) unxz_to "$f" "$work/app/weights/emoji32/$(basename "${f%.xz}")" ;; *) cp "$f" "$work/app/weights/emoji32/" ;; esac
  done
  echo "weights: packed copy"
else
  echo "weights: none found (no checkout beside .device and not packed with --standalone)"
  [ "$(cat "$dev/layout" 2>/dev/null)" = sd15 ] || exit 1
fi
if [ -f "$dev/app/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm.xz" ]; then
  unxz_to "$dev/app/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm.xz" "$work/app/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm"
  rm -f "$work/app/node_modules/onnxruntime-web/dist/"*.xz
fi
mkdir -p "$work/shared/peers"
cp "$dev/peers/"*.onnx "$dev/peers/"*.json "$work/shared/peers/" 2>/dev/null
export PATH="$work/bin:$PATH"
echo "node $(node --version)"

echo "=== vulkan"
# The loader and GL dispatch libraries, from the kit only where the machine has none.
for lib in libvulkan.so.1 libGLdispatch.so.0; do
  if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
    export LD_LIBRARY_PATH="$dev/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "$lib missing on this machine: using the kit's lib/"
    break
  fi
done
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
# No NVIDIA driver manifest where the loader looks: point it at the one the driver ships.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && ! grep -qsl nvidia /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; echo "VK_DRIVER_FILES=$icd"; break; fi
  done
fi
# The checkout's software driver, if there is one, is offered beside any GPU (the engine prefers
# the GPU); on a machine with no GPU it is what runs.
[ -f "$repo/.vulkan/lvp_icd.json" ] && export DDIM_VULKAN_DIR="$repo/.vulkan"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

failures=0
layout="$(cat "$dev/layout" 2>/dev/null || echo unet)"
step_timeout="${STEP_TIMEOUT:-300}"
deadline="${DEADLINE:-}"
[ -z "$deadline" ] && [ "$layout" = sd15 ] && deadline=570
run() { # run NAME COMMAND...   (cut off after STEP_TIMEOUT, or where it would pass DEADLINE)
  local name="$1"; shift
  local limit="$step_timeout"
  if [ -n "$deadline" ]; then
    # 10 seconds are kept for the summary.
    local left=$((deadline - SECONDS - 10))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 15 ]; then
      echo "=== $name: not run, $((deadline - SECONDS)) s left of DEADLINE=$deadline"
      failures=$((failures + 1))
      return
    fi
  fi
  echo "=== $name (limit ${limit} s): $*"
  local start=$SECONDS
  (cd "$work/app" && timeout "$limit" "$@")
  local status=$?
  echo "=== $name: exit $status, $((SECONDS - start)) s"
  [ $status = 0 ] || failures=$((failures + 1))
}
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
peers=()
bench() { # bench NAME ARGS...   (with the WebGPU peer where an ONNX file of the model is packed)
  local name="$1"; shift
  local with=()
  if [ "${PEERS:-1}" = 1 ]; then
    case "$name" in
      emoji32*)
        if [ -f "$work/shared/peers/emoji32.onnx" ]; then with=(--peers=ort-webgpu --peers-dir "$work/shared/peers")
        elif [ "${QUICK:-0}" = 1 ]; then with=(--peers=ort-webgpu --peer-onnx "$dev/peers/configs/quick-32.onnx"); fi ;;
      *) with=(--peers=ort-webgpu --peers-dir "$work/shared/peers") ;;
    esac
  fi
  run "bench $name" node bench.mjs "$@" "${with[@]}" "${quick[@]}" --json "$OUT/bench-$name.json" --trace "$OUT/trace-$name.json"
}

models=" ${MODELS:-emoji32 cifar10 celebahq} "
wants() { [[ "$models" == *" $1 "* ]]; }
# The tiled families (tile shapes) this build has, from the bundle itself.
tiled_families="$(cd "$work/app" && node bench.mjs --list-kernels | grep '^tiled' | tr '\n' ' ')"
[ -n "$tiled_families" ] || tiled_families=tiled
echo "tiled families: $tiled_families"
python="${PYTHON:-python3}"
# diffusers' source unpacked for PyTorch (no network there); says why not where it cannot be.
torch_ready() {
  if [ "${TORCH:-1}" != 1 ]; then echo "=== torch: skipped (TORCH=0)"; return 1; fi
  if [ ! -f "$dev/peers/diffusers-src.tar.xz" ]; then echo "=== torch: skipped, the kit has no diffusers source"; return 1; fi
  if ! "$python" -c 'import torch' 2>/dev/null; then
    if [ "${QUICK:-0}" = 1 ]; then echo "=== torch: skipped, $python has no torch (QUICK: the PyTorch step is not checked here)"
    else echo "=== torch: FAILED, $python has no torch: no PyTorch numbers"; failures=$((failures + 1)); fi
    return 1
  fi
  [ -d "$work/diffusers/src" ] || { mkdir -p "$work/diffusers" && "$python" -c \
    'import lzma, sys, tarfile; tarfile.open(fileobj=lzma.open(sys.argv[1])).extractall(sys.argv[2])' \
    "$dev/peers/diffusers-src.tar.xz" "$work/diffusers"; }
}
if [ "$layout" = sd15 ]; then
  # 1. Goldens first, once, with the adapter's own kernels (GOLDEN_KERNELS=tiled-wide ... for more).
  if [ "${GOLDEN:-1}" = 1 ]; then
    golden=(text_to_image_golden unet_2d_condition_golden autoencoder_golden clip_text_model)
    # DDIM's golden samples emoji32 (2.5 minutes on a software driver: not in QUICK).
    [ -f "$work/shared/golden/emoji32_ddim.safetensors" ] && [ -e "$work/app/weights/emoji32" ] && [ "${QUICK:-0}" != 1 ] &&
      golden+=(ddim_golden)
    step_timeout="${STEP_TIMEOUT:-150}"
    for kernels in ${GOLDEN_KERNELS:-default}; do
      if [ "$kernels" = default ]; then run "golden sd15" node golden.mjs "${golden[@]}"
      else run "golden sd15 ($kernels kernels)" env DDIM_KERNELS=$kernels node golden.mjs "${golden[@]}"; fi
    done
  fi
  # 2. The engine at f16: the forward and a whole 512x512 image (QUICK: 64x64, 2 steps).
  sd_steps="${SD_STEPS:-50}"
  size=()
  if [ "${QUICK:-0}" = 1 ]; then size=(--height 64 --width 64); sd_steps=2; fi
  sd_bench() { # sd_bench PRECISION STEPS REPEATS
    local repeats="$3"
    [ "${QUICK:-0}" = 1 ] && repeats=1
    run "bench sd15-$1" node bench.mjs --layout sd15 --precision "$1" --steps "$2" --repeats "$repeats" \
      "${size[@]}" "${quick[@]}" --json "$OUT/bench-sd15-$1.json"
  }
  step_timeout="${STEP_TIMEOUT:-240}"
  # A software driver needs ~4 minutes for QUICK's 64x64 (the UNet's 860M weights, compiled, run).
  [ "${QUICK:-0}" = 1 ] && step_timeout="${STEP_TIMEOUT:-400}"
  sd_bench f16 "$sd_steps" 5
  # 3. PyTorch fp16 on the same card: eager attention and SDPA.
  if torch_ready; then
    step_timeout="${STEP_TIMEOUT:-180}"
    run torch env PYTHONPATH="$work/diffusers/src${PYTHONPATH:+:$PYTHONPATH}" "$python" "$dev/peers/torch_bench.py" \
      --configs "$dev/peers/configs" --layouts sd15 --modes "$(echo ${TORCH_MODES:-eager sdpa} | tr ' ' ',')" \
      --steps "$sd_steps" --out "$OUT/torch-sd15.json" "${quick[@]}"
  fi
  # 4. The engine at f32: the forward (and one guided step).
  if [ "${QUICK:-0}" = 1 ]; then
    echo "=== bench sd15-f32: not run in QUICK (the f16 command at --precision f32; 3.4 GB of f32 weights)"
  else
    step_timeout="${STEP_TIMEOUT:-150}"
    sd_bench f32 1 3
  fi
  deadline=""
  step_timeout=60
  run summary node "$dev/peers/device_summary.mjs" "$OUT"
  echo "=== done: $failures failed; results in $OUT"
  exit $((failures > 0))
fi
# 1. Goldens first, so a wrong answer is known before any time is spent on speed; every family.
# The UNet2DModel suites: this kit does not pack the SD suites' files (--sd15 does).
golden=(unet_golden ddim_golden)
[ -f "$work/shared/golden/emoji32_unet.safetensors" ] || golden=(ddim)
[ "${QUICK:-0}" = 1 ] && [ "${golden[*]}" = "unet_golden ddim_golden" ] && golden=(unet_golden)
if [ "${GOLDEN:-1}" = 1 ]; then
  for kernels in $tiled_families registers; do
    run "golden ($kernels kernels)" env DDIM_KERNELS=$kernels node golden.mjs "${golden[@]}"
  done
fi
# 2. The engine, with ORT-web beside it on the same adapter.
wants emoji32 && bench emoji32-b1 --model weights/emoji32
if command -v nvidia-smi >/dev/null && grep -qs '"adapter": "llvmpipe' "$OUT/bench-emoji32-b1.json"; then
  echo "WARNING: this machine has an NVIDIA GPU but the benchmark ran on the software driver: check the Vulkan set-up above"
fi
wants cifar10 && bench cifar10-b1 --layout cifar10
wants celebahq && bench celebahq-b1 --layout celebahq --repeats 5
if [ "${BATCHES:-1}" = 1 ] && [ "${QUICK:-0}" != 1 ]; then
  wants emoji32 && bench emoji32-b64 --model weights/emoji32 --batch 64 --steps 10 --repeats 5
  # Every tile shape on the same card (the engine alone: the peers ran above).
  for kernels in $tiled_families; do
    wants emoji32 && PEERS=0 bench "emoji32-b64-$kernels" --model weights/emoji32 --batch 64 --steps 10 --repeats 5 --kernels "$kernels"
  done
  # And at precision f16, where the card has shader-f16 (Dawn's NVIDIA toggle is set by the engine).
  for kernels in $tiled_families; do
    wants emoji32 && PEERS=0 bench "emoji32-b64-f16-$kernels" --model weights/emoji32 --batch 64 --steps 10 --repeats 5 --kernels "$kernels" --precision f16
  done
  wants cifar10 && bench cifar10-b64 --layout cifar10 --batch 64 --steps 10 --repeats 5
  wants celebahq && bench celebahq-b8 --layout celebahq --batch 8 --steps 10 --repeats 3
fi
# 3. PyTorch on the same card (diffusers from the packed source; no network there).
if torch_ready; then
  layouts="$(echo $models | tr ' ' ',')"
  modes="$(echo ${TORCH_MODES:-eager cuda-graphs compile} | tr ' ' ',')"
  run torch env PYTHONPATH="$work/diffusers/src${PYTHONPATH:+:$PYTHONPATH}" "$python" "$dev/peers/torch_bench.py" \
    --configs "$dev/peers/configs" --layouts "$layouts" --modes "$modes" --out "$OUT/torch.json" "${quick[@]}"
fi
# 4. One JSON and one table.
run summary node "$dev/peers/device_summary.mjs" "$OUT"
echo "=== done: $failures failed; results in $OUT"
exit $((failures > 0))
RUN
chmod +x "$dev/run.sh"

size=$(du -sb "$dev" | cut -f1)
echo "prepare-device: $(numfmt --to=iec-i --suffix=B "$size") in $dev (limit 64 MiB)"
du -sh "$dev"/* | sed 's/^/  /'
if [ "$size" -ge "$LIMIT" ]; then
  echo "prepare-device: too big to carry (over 64 MiB)" >&2
  exit 1
fi
