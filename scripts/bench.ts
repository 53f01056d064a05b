/**
 * Benchmarks one model on this machine's WebGPU adapter: the engine's forward and DDIM sample, the
 * engine's best plain f32 matmul in the same run (a kernel-quality figure), and with --peers the
 * same model through ONNX Runtime (Web's WebGPU EP on the same adapter, Node's CPU EP) in the
 * same process. Runs under Deno and Node; `--help` lists the options.
 */
import { type ConvKernels, KERNEL_FAMILIES } from '../src/ops/conv2d.ts';
import { type Precision, PRECISIONS } from '../src/gpu/shader_source.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { requestGpu } from '../src/gpu/device.ts';
import { needsStderrRelay, runWithStderrRelay } from '../src/cli/stderr_relay.ts';
import type { ModelFiles } from '../src/pipeline.ts';
import { type BenchOptions, type BenchResult, formatBenchmark, runBenchmark } from '../src/profile/bench.ts';
import { chromeTrace } from '../src/profile/profiler.ts';
import { formatTextToImageBenchmark, runTextToImageBenchmark, type TextToImageBenchResult } from '../src/profile/bench_text_to_image.ts';
import { readStableDiffusionConfigs } from '../src/fs/config_dir.ts';
import { isLayoutName, isSdLayoutName, layoutModel, LAYOUTS, SD_LAYOUTS, sdLayoutModel } from './layouts.ts';
import { findPeerModel, formatPeers, type PeersResult, runPeers } from './peers/bench_peers.ts';
import { PEER_NAMES, type PeerName } from './peers/peers.ts';
import { formatSdPeers, runSdPeers, SD_COMPONENTS, type SdComponent, sdPeerModelName, type SdPeersResult } from './peers/sd_peers.ts';

export interface BenchCliResult extends BenchResult {
  host: HostRecord & { settings: Record<string, unknown> };
  /** With --peers: the same model through ONNX Runtime, and the engine timed the same way. */
  peers?: PeersResult;
}

/** A Stable Diffusion layout's benchmark (--layout sd15|sd21), with the host it ran on. */
export interface TextToImageBenchCliResult extends TextToImageBenchResult {
  host: HostRecord;
}

/** --layout sd15 --peers: one component beside ONNX Runtime, with the host it ran on. */
export interface SdPeersCliResult extends SdPeersResult {
  host: HostRecord;
}

/** WebGPU's guaranteed limits: what every adapter offers a page. */
const WEBGPU_DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20 };

class UsageError extends Error {}

export const USAGE = `Benchmarks a model's forward and DDIM sampling on this WebGPU adapter, beside the rate of a
plain f32 matmul measured in the same run (kernel quality) and, with --peers, ONNX Runtime.

  deno run -A scripts/bench.ts [options]
  node scripts/node.mjs scripts/bench.ts [options]      (npm run bench -- [options])

Options:
  --model DIR        a diffusers UNet2DModel folder (config.json + safetensors); default weights/emoji32
  --layout NAME      cifar10 | celebahq: that checkpoint's layout with random weights;
                     sd15 | sd21: Stable Diffusion 1.5 / 2.1 (../shared/golden/sd/configs) with
                     random F16 weights, the whole text-to-image pipeline: one prompt's encoding,
                     one UNet forward at batch 2 (guidance's), a VAE decode, a guided sample
                     (--steps, default 2), and the GPU memory per component, at the peak and the
                     largest binding; --repeats (3) and --warmup (1) apply, --quick is 1 and 0
  --height H, --width W
                     sd15 | sd21: the image in pixels, a multiple of 8 (the UNet's sample_size x 8:
                     512 for sd15, 768 for sd21)
  --default-limits   sd15 | sd21: hold every graph to WebGPU's guaranteed limits (128 MiB bindings,
                     256 MiB buffers), what any page gets, instead of the adapter's
  --batch N          images per forward (1)
  --kernels FAMILY   the conv kernels: registers (weights in uniform windows), registers-storage
                     (the same kernels reading one storage buffer), tiled (GPUs: 64 x 64 tiles),
                     tiled-wide (64 channels x 128 pixels) or tiled-wide-subgroups (the same,
                     weights by subgroupShuffle; needs subgroups); by default the adapter's
                     (registers on a software adapter, tiled otherwise)
  --precision P      f32 | f16 | f16-packed: how the UNet's weights and activations are stored (f32;
                     f16 without shader-f16, and f16-packed, keep f16 weights and f32 activations;
                     the JSON's precision says which ran)
  --steps S          DDIM steps of the timed sample (50)
  --repeats R        timed forwards, after the warm-up (10)
  --warmup W         untimed forwards first (3); with 0, no warm-up sample before the DDIM run either
  --matmul-size N    time the floor's matmuls at N^3 only (default: from 256, doubling to 4096
                     while one takes under 20 ms)
  --json FILE        also write the result as JSON
  --trace FILE       also write the node-by-node profile as a Chrome trace (chrome://tracing, Perfetto);
                     with --layout sd15|sd21, one UNet forward's (profiled on a GPU anyway, on a
                     software adapter only when a trace is asked for: it times each node alone)
  --quick            a tiny setting for CI: 1 warm-up, 1 timed forward, a 1-step sample, 128^3 matmuls
  --peers[=LIST]     then the same model through ONNX Runtime in this process: ort-webgpu
                     (onnxruntime-web's WebGPU EP on this adapter) and ort-cpu (onnxruntime-node,
                     Node only); LIST picks some, e.g. --peers=ort-cpu. Same batch, steps, repeats.
                     With --layout sd15: instead of the pipeline's figures, one component (below)
                     in the engine and each peer on the same inputs, --batch images (the UNet sees
                     twice that), forwards only (--repeats 3, --warmup 1), a guided DDIM step
                     and a 50-step image at full size projected from them
  --component C      with --layout sd15 --peers: unet (default; sd15_unet.onnx) or vae-decoder
                     (sd15_vae_decoder.onnx); their graph-only weights are made up once into
                     --peers-cache and reused
  --peer-onnx FILE   the model as ONNX (x f32 [b,3,s,s], t int64 [b] -> eps); by default
                     emoji32.onnx or <layout>.onnx from --peers-dir
  --peers-dir DIR    where those are (../shared/peers)
  --peers-cache DIR  where made-up external data is written once and reused (build/peers)
  --list-kernels     print the kernel families, one a line, and exit (the GPU kit times each tiled one)
  -h, --help

Prints a table to stdout and progress to stderr; both name the adapter.`;

interface Args {
  model?: string;
  layout?: string;
  height?: number;
  width?: number;
  defaultLimits?: boolean;
  batch: number;
  kernels?: ConvKernels;
  precision?: Precision;
  steps?: number;
  repeats?: number;
  warmup?: number;
  json?: string;
  trace?: string;
  matmulSize?: number;
  quick: boolean;
  help: boolean;
  peers?: PeerName[];
  peerOnnx?: string;
  peersDir: string;
  peersCache?: string;
  component?: SdComponent;
}

export function parseArgs(argv: string[]): Args {
  const args: Args = { batch: 1, quick: false, help: false, peersDir: '../shared/peers' };
  const positive = (flag: string, value: string | undefined): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a positive integer, got ${value ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--model':
        args.model = value();
        break;
      case '--layout':
        args.layout = value();
        break;
      case '--batch':
        args.batch = positive(flag, value());
        break;
      case '--height':
        args.height = positive(flag, value());
        break;
      case '--width':
        args.width = positive(flag, value());
        break;
      case '--default-limits':
        args.defaultLimits = true;
        break;
      case '--kernels': {
        const family = value();
        const known = KERNEL_FAMILIES.find((k) => k === family);
        if (!known) throw new UsageError(`--kernels takes ${KERNEL_FAMILIES.join(', ')}; got ${family}`);
        args.kernels = known;
        break;
      }
      case '--precision': {
        const precision = value();
        const known = PRECISIONS.find((p) => p === precision);
        if (!known) throw new UsageError(`--precision takes ${PRECISIONS.join(', ')}; got ${precision}`);
        args.precision = known;
        break;
      }
      case '--steps':
        args.steps = positive(flag, value());
        break;
      case '--repeats':
        args.repeats = positive(flag, value());
        break;
      case '--warmup':
        args.warmup = Number(value());
        break;
      case '--json':
        args.json = value();
        break;
      case '--trace':
        args.trace = value();
        break;
      case '--matmul-size':
        args.matmulSize = positive(flag, value());
        break;
      case '--quick':
        args.quick = true;
        break;
      case '--peers':
        args.peers = [...PEER_NAMES];
        break;
      case '--peer-onnx':
        args.peerOnnx = value();
        break;
      case '--peers-dir':
        args.peersDir = value();
        break;
      case '--peers-cache':
        args.peersCache = value();
        break;
      case '--component': {
        const component = value();
        const known = SD_COMPONENTS.find((c) => c === component);
        if (!known) throw new UsageError(`--component takes ${SD_COMPONENTS.join(' or ')}; got ${component}`);
        args.component = known;
        break;
      }
      case '-h':
      case '--help':
        args.help = true;
        break;
      default:
        if (flag.startsWith('--peers=')) {
          const names = flag.slice('--peers='.length).split(',');
          const bad = names.filter((n) => !(PEER_NAMES as readonly string[]).includes(n));
          if (bad.length || !names.length) {
            throw new UsageError(`--peers= takes ${PEER_NAMES.join(' and/or ')}, comma-separated; got ${bad.join(',')}`);
          }
          args.peers = names as PeerName[];
          break;
        }
        throw new UsageError(`unknown option ${flag} (try --help)`);
    }
  }
  if (args.model && args.layout) throw new UsageError('give --model or --layout, not both');
  if (args.layout && !isLayoutName(args.layout) && !isSdLayoutName(args.layout)) {
    throw new UsageError(
      `--layout takes ${Object.keys(LAYOUTS).join(' or ')} (UNet2DModel) or ${Object.keys(SD_LAYOUTS).join(' or ')} ` +
        `(Stable Diffusion), got ${args.layout}`,
    );
  }
  const textToImage = args.layout !== undefined && isSdLayoutName(args.layout);
  for (const [flag, given] of [['--height', args.height], ['--width', args.width], ['--default-limits', args.defaultLimits]] as const) {
    if (given !== undefined && !textToImage) throw new UsageError(`${flag} goes with --layout sd15 or sd21`);
  }
  if (textToImage && args.batch !== 1 && !args.peers) {
    throw new UsageError('--layout sd15/sd21 times batch 2 (guidance), not --batch (with --peers, --batch is the images)');
  }
  if (args.component && !(textToImage && args.peers)) throw new UsageError('--component goes with --layout sd15 or sd21 and --peers');
  if (args.peerOnnx && !args.peers) throw new UsageError('--peer-onnx goes with --peers');
  if (args.warmup !== undefined && !(Number.isInteger(args.warmup) && args.warmup >= 0)) {
    throw new UsageError(`--warmup takes a whole number, got ${args.warmup}`);
  }
  return args;
}

function readModelDir(dir: string): ModelFiles {
  const config = join(dir, 'config.json');
  const weights = join(dir, 'diffusion_pytorch_model.safetensors');
  if (!existsSync(config) || !existsSync(weights)) {
    throw new UsageError(`${dir} is not a model folder: it needs config.json and diffusion_pytorch_model.safetensors`);
  }
  const scheduler = join(dir, 'scheduler_config.json');
  return {
    config: JSON.parse(readFileSync(config, 'utf8')),
    weights: new Uint8Array(readFileSync(weights)),
    schedulerConfig: existsSync(scheduler) ? JSON.parse(readFileSync(scheduler, 'utf8')) : undefined,
  };
}

/** Runs the benchmark the command line asks for; prints the table, writes the JSON. */
export async function main(
  argv: string[],
  io: { out?: (s: string) => void; err?: (s: string) => void; gpu?: BenchOptions['gpu'] } = {},
): Promise<BenchCliResult | TextToImageBenchCliResult | SdPeersCliResult> {
  const out = io.out ?? ((s: string) => console.log(s));
  const err = io.err ?? ((s: string) => console.error(s));
  const args = parseArgs(argv);
  if (args.layout && isSdLayoutName(args.layout)) {
    if (args.peers) return await mainSdPeers(args, args.layout, args.peers, { out, err, gpu: io.gpu });
    return await mainTextToImage(args, args.layout, { out, err, gpu: io.gpu });
  }
  let modelName: string;
  let modelSource: string;
  let files: ModelFiles;
  if (args.layout && isLayoutName(args.layout)) {
    modelName = `${args.layout} layout`;
    modelSource = `${LAYOUTS[args.layout].repo} config, random weights`;
    err(`generating random weights for ${LAYOUTS[args.layout].repo} ...`);
    files = layoutModel(args.layout);
  } else {
    const dir = args.model ?? 'weights/emoji32';
    modelName = dir.replace(/\/+$/, '').split('/').pop()!;
    modelSource = dir;
    files = readModelDir(dir);
  }
  // The peers' model is found before the long engine run, so a missing file costs nothing.
  const peerModel = args.peers
    ? findPeerModel({ onnx: args.peerOnnx, peersDir: args.peersDir, layout: args.layout, modelName })
    : undefined;
  if (peerModel && 'missing' in peerModel) throw new UsageError(peerModel.missing);
  const settings: BenchOptions = {
    modelName,
    modelSource,
    files,
    gpu: io.gpu,
    batch: args.batch,
    kernels: args.kernels,
    precision: args.precision,
    steps: args.steps ?? (args.quick ? 1 : 50),
    repeats: args.repeats ?? (args.quick ? 1 : 10),
    warmup: args.warmup ?? (args.quick ? 1 : 3),
    profileSteps: args.quick ? 1 : undefined,
    ddimWarmup: !args.quick && (args.warmup ?? 1) > 0,
    matmul: args.matmulSize
      ? { minSize: args.matmulSize, maxSize: args.matmulSize, repeats: args.quick ? 2 : undefined }
      : args.quick
      ? { minSize: 128, maxSize: 128, repeats: 2 }
      : undefined,
    log: err,
    cpuClock: () => {
      const used = process.cpuUsage();
      return (used.user + used.system) / 1000;
    },
    onProfile: (profile) => {
      if (args.trace) writeJson(args.trace, chromeTrace(profile), err);
    },
  };
  const loadAverageBefore = loadavg();
  const gpu = settings.gpu ?? await requestGpu();
  const result = await runBenchmark({ ...settings, gpu });
  const peers = peerModel && args.peers
    ? await runPeers({
      gpu,
      files,
      model: peerModel,
      which: args.peers,
      engine: result,
      repeats: settings.repeats!,
      warmup: settings.warmup!,
      log: err,
      cacheDir: args.peersCache,
    })
    : undefined;
  const host = {
    ...hostNow(loadAverageBefore),
    settings: {
      batch: settings.batch,
      steps: settings.steps,
      repeats: settings.repeats,
      warmup: settings.warmup,
      ddimWarmup: settings.ddimWarmup,
      quick: args.quick,
    },
  };
  const full: BenchCliResult = { ...result, host, ...(peers ? { peers } : {}) };
  out(formatBenchmark(result));
  if (peers) out('\n' + formatPeers(peers, result.model.batch));
  out(hostLine(host));
  if (args.json) writeJson(args.json, full, err);
  return full;
}

function runtimeName(): string {
  return 'Deno' in globalThis
    ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
    : `node ${process.version}`;
}

export interface HostRecord {
  runtime: string;
  cpus: number;
  loadAverageBefore: number[];
  loadAverageAfter: number[];
}

/** The host a benchmark ran on, with the load average before it (given) and now. */
function hostNow(loadAverageBefore: number[]): HostRecord {
  return { runtime: runtimeName(), cpus: cpus().length, loadAverageBefore, loadAverageAfter: loadavg() };
}

function hostLine(host: HostRecord): string {
  const load = (values: number[]) => values.map((v) => v.toFixed(1)).join(' ');
  return `host: ${host.runtime}, ${host.cpus} CPUs, load average ${load(host.loadAverageBefore)} before, ${
    load(host.loadAverageAfter)
  } after`;
}

/** --layout sd15 | sd21: the text-to-image pipeline, component by component. */
async function mainTextToImage(
  args: Args,
  layout: keyof typeof SD_LAYOUTS,
  io: { out: (s: string) => void; err: (s: string) => void; gpu?: BenchOptions['gpu'] },
): Promise<TextToImageBenchCliResult> {
  const { repo, configs } = SD_LAYOUTS[layout];
  io.err(`generating random F16 weights for ${repo} (../shared/golden/sd/configs/${configs}) ...`);
  const start = performance.now();
  const files = sdLayoutModel(layout, { dtype: 'F16' });
  const filesMs = performance.now() - start;
  const sampleSize = (files.config as { sample_size?: number }).sample_size ?? 64;
  const loadAverageBefore = loadavg();
  const gpu = io.gpu ?? await requestGpu();
  const result = await runTextToImageBenchmark({
    modelName: `${layout} layout`,
    modelSource: `${repo} configs, random weights`,
    files,
    gpu,
    height: args.height ?? args.width ?? sampleSize * 8,
    width: args.width ?? args.height ?? sampleSize * 8,
    precision: args.precision,
    limits: args.defaultLimits ? WEBGPU_DEFAULT_LIMITS : undefined,
    repeats: args.repeats ?? (args.quick ? 1 : 3),
    warmup: args.warmup ?? (args.quick ? 0 : 1),
    steps: args.steps ?? (args.quick ? 1 : 2),
    filesMs,
    log: io.err,
    profile: args.trace ? true : undefined,
    onProfile: (profile) => {
      if (args.trace) writeJson(args.trace, chromeTrace(profile), io.err);
    },
  });
  const full: TextToImageBenchCliResult = {
    ...result,
    host: hostNow(loadAverageBefore),
  };
  io.out(formatTextToImageBenchmark(result));
  io.out(hostLine(full.host));
  if (args.json) writeJson(args.json, full, io.err);
  return full;
}

/** --layout sd15 --peers: one component in the engine and in each peer, on the same inputs. */
async function mainSdPeers(
  args: Args,
  layout: keyof typeof SD_LAYOUTS,
  which: PeerName[],
  io: { out: (s: string) => void; err: (s: string) => void; gpu?: BenchOptions['gpu'] },
): Promise<SdPeersCliResult> {
  const component = args.component ?? 'unet';
  const { configs } = SD_LAYOUTS[layout];
  const sd = readStableDiffusionConfigs(join('../shared/golden/sd/configs', configs));
  // The peers' model is found before the long engine run, so a missing file costs nothing.
  const model = findPeerModel({
    onnx: args.peerOnnx,
    peersDir: args.peersDir,
    layout: sdPeerModelName(layout, component),
    modelName: `${layout} ${component}`,
  });
  if ('missing' in model) throw new UsageError(model.missing);
  const config = (component === 'unet' ? sd.unet : sd.vae) as Record<string, unknown>;
  const fullSize = ((sd.unet as { sample_size?: number }).sample_size ?? 64) * 8;
  const height = args.height ?? args.width ?? fullSize;
  const width = args.width ?? args.height ?? fullSize;
  if (height % 8 || width % 8) throw new UsageError(`--height and --width are pixels, multiples of 8; got ${height}x${width}`);
  const loadAverageBefore = loadavg();
  const gpu = io.gpu ?? await requestGpu();
  const repeats = args.repeats ?? (args.quick ? 1 : 3);
  const result = await runSdPeers({
    gpu,
    component,
    config,
    schedulerConfig: sd.scheduler as Record<string, unknown> | undefined,
    model,
    images: args.batch,
    height,
    width,
    precision: args.precision,
    kernels: args.kernels,
    limits: args.defaultLimits ? WEBGPU_DEFAULT_LIMITS : undefined,
    repeats,
    // The first forward is always untimed (it compiles shaders); --warmup counts it.
    warmup: Math.max(0, (args.warmup ?? 1) - 1),
    which,
    cacheDir: args.peersCache,
    log: io.err,
  });
  const full: SdPeersCliResult = {
    ...result,
    host: hostNow(loadAverageBefore),
  };
  io.out(formatSdPeers(result));
  io.out(hostLine(full.host));
  if (args.json) writeJson(args.json, full, io.err);
  return full;
}

function writeJson(file: string, value: unknown, err: (s: string) => void): void {
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
  err(`wrote ${path}`);
}

function isEntryPoint(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === 'boolean') return meta.main;
  const entry = process.argv[1];
  return !!entry && resolve(entry) === fileURLToPath(import.meta.url);
}

if (isEntryPoint()) {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
  } else if (argv.includes('--list-kernels')) {
    console.log(KERNEL_FAMILIES.join('\n'));
  } else {
    try {
      // Node with stderr on a file or socket (a benchmark's log) runs it in a child, to keep Dawn's
      // notes off that log, as the command line does.
      const relayed = needsStderrRelay() ? runWithStderrRelay(argv) : undefined;
      if (relayed) process.exit(await relayed);
      await main(argv);
      process.exit(0);
    } catch (error) {
      if (error instanceof UsageError) {
        console.error(`bench: ${error.message}`);
        process.exit(2);
      }
      throw error;
    }
  }
}
