#!/usr/bin/env python3
"""PyTorch on the same card as the engine's benchmark, for the same layouts: diffusers'
UNet2DModel with random weights (speed does not depend on them), fp32 with TF32 off, in three
modes: eager; CUDA graphs (one forward captured, replayed per step); torch.compile. For each: a
forward at batch 1, a DDIM-50 sample at batch 1 (diffusers' DDIMScheduler stepping between
forwards, as a diffusers user writes it) and a forward at a throughput batch.

Needs torch and diffusers' source on PYTHONPATH (../shared/peers/diffusers-src.tar.xz: its src/).
  python3 torch_bench.py --configs DIR --out torch.json [--quick] [--layouts emoji32,cifar10]
DIR holds <layout>.json (diffusers configs; scripts/prepare-device.sh writes them). --quick: 2
DDIM steps, 1 timed forward, batch 2 as the throughput batch: checks the script, measures nothing.
A mode the machine lacks (no CUDA, or no torch.compile) is recorded with the reason, not fatal."""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

THROUGHPUT_BATCH = {'emoji32': 64, 'cifar10': 64, 'celebahq': 8}
MODES = ('eager', 'cuda-graphs', 'compile')


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--configs', required=True, help='folder of <layout>.json diffusers configs')
    p.add_argument('--layouts', default='emoji32,cifar10,celebahq')
    p.add_argument('--modes', default=','.join(MODES))
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda when there is one)')
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--quick', action='store_true')
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    args.layouts = [s for s in args.layouts.split(',') if s]
    args.modes = [s for s in args.modes.split(',') if s]
    for m in args.modes:
        if m not in MODES:
            p.error(f'--modes takes {", ".join(MODES)}; got {m}')
    for name in args.layouts:
        if not os.path.isfile(os.path.join(args.configs, f'{name}.json')):
            p.error(f'no {name}.json in {args.configs}')
    if args.quick:
        args.steps, args.repeats, args.warmup = 2, 1, 1
    return args


class Unavailable(Exception):
    pass


def main(argv):
    args = parse_args(argv)
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cuda = device == 'cuda'
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    card = torch.cuda.get_device_name() if cuda else f'CPU ({os.cpu_count()} cores)'
    print(f'torch {torch.__version__} on {card}', flush=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return (time.perf_counter() - start) * 1000

    def forward_fn(model, mode, batch, size):
        """A callable running one forward on static inputs, for the mode; returns (fn, x, t, out)."""
        x = torch.randn(batch, 3, size, size, device=device)
        t = torch.full((batch,), 500, dtype=torch.long, device=device)
        if mode == 'eager':
            return (lambda: model(x, t).sample), x, t
        if mode == 'compile':
            if not hasattr(torch, 'compile'):
                raise Unavailable(f'torch {torch.__version__} has no torch.compile')
            compiled = torch.compile(model)
            return (lambda: compiled(x, t).sample), x, t
        if not cuda:
            raise Unavailable('CUDA graphs need a CUDA device')
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(x, t)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model(x, t).sample

        def replay():
            graph.replay()
            return out

        return replay, x, t

    results = []
    for name in args.layouts:
        with open(os.path.join(args.configs, f'{name}.json')) as f:
            config = {k: v for k, v in json.load(f).items() if not k.startswith('_')}
        torch.manual_seed(0)
        model = UNet2DModel(**config).to(device).eval()
        params = sum(p.numel() for p in model.parameters())
        size = config['sample_size']
        big = 2 if args.quick else THROUGHPUT_BATCH.get(name, 8)
        for mode in args.modes:
            entry = {'layout': name, 'mode': mode, 'params': params, 'sampleSize': size}
            print(f'{name} {mode} ...', flush=True)
            try:
                with torch.inference_mode() if mode != 'cuda-graphs' else torch.no_grad():
                    for batch, key in ((1, 'b1'), (big, f'b{big}')):
                        setup_start = time.perf_counter()
                        fn, x, t = forward_fn(model, mode, batch, size)
                        first = timed(fn)  # compiles (torch.compile) or warms caches
                        entry[f'{key}SetupMs'] = (time.perf_counter() - setup_start) * 1000
                        entry[f'{key}FirstMs'] = first
                        for _ in range(max(0, args.warmup - 1)):
                            fn()
                        times = [timed(fn) for _ in range(args.repeats)]
                        entry[f'{key}ForwardMs'] = statistics.median(times)
                        if batch == 1:
                            # DDIM as a diffusers user writes it: the scheduler steps between forwards.
                            scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule='linear')
                            scheduler.set_timesteps(args.steps)

                            def sample():
                                x.copy_(torch.randn(x.shape, device=device))
                                sample_x = x.clone()
                                for step_t in scheduler.timesteps:
                                    x.copy_(sample_x)
                                    t.fill_(int(step_t))
                                    eps = fn()
                                    sample_x = scheduler.step(eps, step_t, sample_x).prev_sample
                                return sample_x.cpu()

                            sample()  # the scheduler's and the graphs' first use
                            entry['ddimSteps'] = args.steps
                            entry['ddimMs'] = timed(sample)
                entry['batch'] = big
            except Unavailable as e:
                entry['error'] = str(e)
            except Exception as e:  # a mode that fails here still lets the others run
                entry['error'] = f'{type(e).__name__}: {e}'
                traceback.print_exc()
            print('  ' + json.dumps(entry), flush=True)
            results.append(entry)
            write(args.out, card, torch.__version__, device, args.quick, results)  # kept if a later mode runs out of time
        del model
        if cuda:
            torch.cuda.empty_cache()
    write(args.out, card, torch.__version__, device, args.quick, results)
    print(f'wrote {args.out}')
    return 0


def write(path, card, version, device, quick, results):
    out = {'schema': 'ddim-webgpu-torch/1', 'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
           'card': card, 'torch': version, 'device': device, 'quick': quick, 'results': results}
    with open(path + '.tmp', 'w') as f:
        json.dump(out, f, indent=2)
    os.replace(path + '.tmp', path)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
