/**
 * `bench --peers`: after the engine's own figures, the same model through each peer in the same
 * process, and the engine timed the same way beside them (its forward with the input uploaded and
 * eps read back, as `UNet.forward` does for a user; its DDIM sample is the benchmark's own).
 * Each peer's time over the engine's is `timesEngine` (above 1: the engine is faster).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Gpu } from '../../src/gpu/device.ts';
import { readUNet, UNet } from '../../src/models/unet_2d_model.ts';
import type { ModelFiles } from '../../src/pipeline.ts';
import type { BenchResult } from '../../src/profile/bench.ts';
import { median } from '../../src/profile/timing.ts';
import { scheduleFromConfig } from '../../src/sampler/schedule.ts';
import type { PeerModel } from './onnx.ts';
import { openPeer, PeerUnavailableError } from './ort.ts';
import { type PeerName, type PeerTimings, relativeL2, timePeer, uniformInput } from './peers.ts';

export interface PeerEntry extends PeerTimings {
  runtime: string;
  adapter: string;
  /** Whether the peer's WebGPU adapter is the engine's (by name); absent for the CPU. */
  sameAdapter?: boolean;
  sessionMs: number;
  /** Peer time over the engine's: forward (both with upload and readback) and the whole DDIM sample. */
  timesEngine: { forward: number; ddim: number | null };
  /** Relative L2 distance of the peer's eps from the engine's on the same input, when both have the same weights. */
  epsRelL2VsEngine: number | null;
}

export interface PeersResult {
  onnx: { name: string; weights: "the engine model's" | 'random (graph-only file, external data made up)' };
  engine: {
    adapter: string;
    /** Median forward from the input array to the eps array (upload, run, readback), timed as the peers are. */
    forwardMs: number;
    forwardMsAll: number[];
    ddimMs: number;
    ddimSteps: number;
  };
  peers: Partial<Record<PeerName, PeerEntry | { error: string }>>;
}

/** Which ONNX file stands for the benchmarked model, from ../shared/peers (or the file given). */
export function findPeerModel(
  options: { onnx?: string; peersDir: string; layout?: string; modelName: string },
): PeerModel | { missing: string } {
  let file = options.onnx;
  let sameWeights = false;
  if (!file) {
    if (options.layout) file = join(options.peersDir, `${options.layout}.onnx`);
    else if (options.modelName === 'emoji32') {
      file = join(options.peersDir, 'emoji32.onnx');
      sameWeights = true;
    } else return { missing: `no ONNX file is known for ${options.modelName}: give one with --peer-onnx FILE` };
  }
  if (!existsSync(file)) return { missing: `${file} is missing (the peers' models live in ../shared/peers; --peers-dir DIR)` };
  // A graph-only file has a JSON beside it giving its external data (cifar10.json: externalData, bytes).
  const meta = file.replace(/\.onnx$/, '.json');
  let externalData: PeerModel['externalData'];
  if (meta !== file && existsSync(meta)) {
    let m;
    try {
      m = JSON.parse(readFileSync(meta, 'utf8'));
    } catch (e) {
      return { missing: `${meta} (beside the ONNX file, giving its external data) is not JSON: ${(e as Error).message}` };
    }
    if (typeof m.externalData === 'string' && Number.isInteger(m.bytes)) externalData = { path: m.externalData, bytes: m.bytes };
  }
  return { name: basename(file), graph: new Uint8Array(readFileSync(file)), externalData, sameWeights: sameWeights && !externalData };
}

export async function runPeers(options: {
  gpu: Gpu;
  files: ModelFiles;
  model: PeerModel;
  which: PeerName[];
  engine: BenchResult;
  repeats: number;
  warmup: number;
  log: (line: string) => void;
  cacheDir?: string;
}): Promise<PeersResult> {
  const { gpu, engine, log } = options;
  const batch = engine.model.batch;
  const steps = engine.ddim.steps;
  const schedule = scheduleFromConfig(options.files.schedulerConfig as Record<string, unknown> | undefined);

  log(`peers: the engine's forward as a user calls it (upload, run, readback) ...`);
  const unet = await UNet.compile(gpu, readUNet(options.files), { batch });
  const [, c, h, w] = unet.sampleShape;
  const imageShape: [number, number, number] = [c, h, w];
  const x = uniformInput(batch * c * h * w, 7);
  const t = new Int32Array(batch).fill(500);
  let engineEps: Float32Array;
  const forwardMsAll: number[] = [];
  try {
    engineEps = await unet.forward(x, t);
    for (let i = 1; i < options.warmup; i++) await unet.forward(x, t);
    for (let i = 0; i < options.repeats; i++) {
      const start = performance.now();
      await unet.forward(x, t);
      forwardMsAll.push(performance.now() - start);
    }
  } finally {
    unet.destroy();
  }
  const result: PeersResult = {
    onnx: {
      name: options.model.name,
      weights: options.model.externalData ? 'random (graph-only file, external data made up)' : "the engine model's",
    },
    engine: { adapter: engine.adapter, forwardMs: median(forwardMsAll), forwardMsAll, ddimMs: engine.ddim.wallMs, ddimSteps: steps },
    peers: {},
  };

  for (const name of options.which) {
    log(`peers: ${name} with ${options.model.name} at batch ${batch} ...`);
    let peer;
    try {
      peer = await openPeer(name, { gpu, model: options.model, imageShape, cacheDir: options.cacheDir, log });
    } catch (e) {
      const message = e instanceof PeerUnavailableError ? e.message : `${(e as Error).name}: ${(e as Error).message}`;
      log(`  ${name}: not run: ${message}`);
      result.peers[name] = { error: message };
      continue;
    }
    try {
      log(`  ${name}: ${peer.runtime} on ${peer.adapter}; session in ${(peer.sessionMs / 1000).toFixed(1)} s`);
      const { output, ...timings } = await timePeer(peer, schedule, {
        batch,
        imageShape,
        steps,
        repeats: options.repeats,
        warmup: options.warmup,
        log,
      });
      result.peers[name] = {
        runtime: peer.runtime,
        adapter: peer.adapter,
        ...(name === 'ort-webgpu' ? { sameAdapter: peer.adapter === engine.adapter } : {}),
        sessionMs: peer.sessionMs,
        ...timings,
        timesEngine: {
          forward: timings.forwardMs / result.engine.forwardMs,
          ddim: timings.ddim.forwards === engine.ddim.forwards ? timings.ddim.wallMs / engine.ddim.wallMs : null,
        },
        epsRelL2VsEngine: options.model.sameWeights ? relativeL2(engineEps, output) : null,
      };
    } catch (e) {
      const message = `${(e as Error).name}: ${(e as Error).message}`;
      log(`  ${name}: failed: ${message}`);
      result.peers[name] = { error: message };
    } finally {
      await peer.release();
    }
  }
  return result;
}

const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** The engine and its peers side by side, for the terminal. */
export function formatPeers(r: PeersResult, batch: number): string {
  const rows: string[][] = [['', 'forward', 'x engine', `DDIM-${r.engine.ddimSteps}`, 'x engine', 'adapter']];
  rows.push(['this engine', ms(r.engine.forwardMs), '1', ms(r.engine.ddimMs), '1', r.engine.adapter]);
  const notes: string[] = [];
  for (const [name, p] of Object.entries(r.peers)) {
    if ('error' in p) {
      rows.push([name, 'not run', '', '', '', p.error.slice(0, 60)]);
      continue;
    }
    rows.push([
      name,
      ms(p.forwardMs),
      p.timesEngine.forward.toFixed(2),
      ms(p.ddim.wallMs),
      p.timesEngine.ddim?.toFixed(2) ?? '-',
      p.adapter + (p.sameAdapter === false ? " (NOT the engine's)" : ''),
    ]);
    notes.push(
      `${name}: ${p.runtime}; session ${ms(p.sessionMs)}, first forward ${ms(p.firstForwardMs)}` +
        (p.epsRelL2VsEngine !== null ? `; eps vs the engine's, rel. L2 ${p.epsRelL2VsEngine.toExponential(2)}` : ''),
    );
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)) + 2);
  return [
    `peers: ${r.onnx.name} (weights: ${r.onnx.weights}), batch ${batch}; forwards from input array to eps array, median; ` +
    `x engine = its time / the engine's`,
    ...rows.map((row) => row.map((cell, i) => (i === 0 ? pad(cell, widths[i]) : i === 5 ? `  ${cell}` : lpad(cell, widths[i]))).join('')),
    ...notes,
  ].join('\n');
}
