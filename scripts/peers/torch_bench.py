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
A mode the machine lacks (no CUDA, or no torch.compile) is recorded with the reason, not fatal.

Stable Diffusion layouts (--layouts sd15: DIR/sd15/{unet,vae,scheduler}/*config.json, the published
configs): diffusers' UNet2DConditionModel in fp16 (fp32 on a CPU) with random weights, in modes
eager (AttnProcessor: attention as matmul, softmax, matmul) and sdpa (AttnProcessor2_0:
torch's scaled_dot_product_attention); each: a forward at batch 2 (one image under guidance) and
a text-to-image of --steps guided DDIM steps (7.5) then AutoencoderKL's decode (fp32 where the VAE
config says force_upcast, as diffusers' pipeline runs it); prompt embeddings are random (CLIP
needs transformers). --quick: 8x8 latents (a 64x64 image), 2 steps."""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

THROUGHPUT_BATCH = {'emoji32': 64, 'cifar10': 64, 'celebahq': 8}
MODES = ('eager', 'cuda-graphs', 'compile')
SD_MODES = ('eager', 'sdpa')


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--configs', required=True, help='folder of <layout>.json diffusers configs')
    p.add_argument('--layouts', default='emoji32,cifar10,celebahq')
    p.add_argument('--modes', default=None, help=f'UNet2DModel: {",".join(MODES)} (all); SD: {",".join(SD_MODES)} (both)')
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda when there is one)')
    p.add_argument('--steps', type=int, default=50, help='DDIM steps of the sample (50; --quick: 2)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--quick', action='store_true')
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    args.layouts = [s for s in args.layouts.split(',') if s]
    sd = [name for name in args.layouts if is_sd_layout(args.configs, name)]
    if sd and len(sd) != len(args.layouts):
        p.error(f'give Stable Diffusion layouts ({", ".join(sd)}) apart from UNet2DModel ones')
    allowed = SD_MODES if sd else MODES
    args.modes = [s for s in (args.modes or ','.join(allowed)).split(',') if s]
    for m in args.modes:
        if m not in allowed:
            p.error(f'--modes takes {", ".join(allowed)} for {"Stable Diffusion" if sd else "UNet2DModel"} layouts; got {m}')
    for name in args.layouts:
        if not sd and not os.path.isfile(os.path.join(args.configs, f'{name}.json')):
            p.error(f'no {name}.json nor {name}/unet/config.json in {args.configs}')
    args.sd = bool(sd)
    if args.quick:
        args.steps, args.repeats, args.warmup = 2, 1, 1
    return args


class Unavailable(Exception):
    pass


def is_sd_layout(configs, name):
    return os.path.isfile(os.path.join(configs, name, 'unet', 'config.json'))


def wall_timer(torch, cuda):
    """fn -> its wall time in ms, the GPU's queue drained before and after."""
    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return (time.perf_counter() - start) * 1000

    return timed


def read_config(path):
    with open(path) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith('_')}


def main(argv):
    args = parse_args(argv)
    if args.sd:
        return main_sd(args)
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cuda = device == 'cuda'
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    card = torch.cuda.get_device_name() if cuda else f'CPU ({os.cpu_count()} cores)'
    print(f'torch {torch.__version__} on {card}', flush=True)

    timed = wall_timer(torch, cuda)

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


def main_sd(args):
    """Stable Diffusion: the UNet forward at batch 2 and a guided text-to-image, per attention mode."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cuda = device == 'cuda'
    # fp16 as SD is run on GPUs; a CPU has few fp16 kernels, so it checks the script in fp32.
    dtype = torch.float16 if cuda else torch.float32
    card = torch.cuda.get_device_name() if cuda else f'CPU ({os.cpu_count()} cores)'
    print(f'torch {torch.__version__} on {card}, {dtype}', flush=True)

    timed = wall_timer(torch, cuda)

    def build(cls, config, model_dtype):
        # Made on the device (torch >= 2: torch.device as a context), so 860M random values are
        # not drawn on the CPU first.
        start = time.perf_counter()
        torch.manual_seed(0)
        if hasattr(torch.device(device), '__enter__'):
            with torch.device(device):
                model = cls(**config)
        else:
            model = cls(**config)
        model = model.to(device=device, dtype=model_dtype).eval()
        return model, (time.perf_counter() - start) * 1000

    results = []
    for name in args.layouts:
        folder = os.path.join(args.configs, name)
        unet_config = read_config(os.path.join(folder, 'unet', 'config.json'))
        vae_config = read_config(os.path.join(folder, 'vae', 'config.json'))
        scheduler_config = read_config(os.path.join(folder, 'scheduler', 'scheduler_config.json'))
        latent = 8 if args.quick else unet_config.get('sample_size', 64)
        scale = 2 ** (len(vae_config.get('block_out_channels', [0] * 4)) - 1)
        unet, unet_build_ms = build(UNet2DConditionModel, unet_config, dtype)
        vae_dtype = torch.float32 if vae_config.get('force_upcast', True) else dtype
        vae, vae_build_ms = build(AutoencoderKL, vae_config, vae_dtype)
        params = sum(p.numel() for p in unet.parameters())
        hidden = unet_config.get('cross_attention_dim', 768)
        channels = unet_config.get('in_channels', 4)
        scaling = vae_config.get('scaling_factor', 0.18215)
        generator = torch.Generator(device=device).manual_seed(0)
        sample = torch.randn(2, channels, latent, latent, device=device, dtype=dtype, generator=generator)
        states = torch.randn(2, 77, hidden, device=device, dtype=dtype, generator=generator) * 0.5
        timestep = torch.tensor(500, device=device)
        for mode in args.modes:
            entry = {
                'layout': name, 'kind': 'text-to-image', 'mode': mode, 'dtype': str(dtype).replace('torch.', ''),
                'vaeDtype': str(vae_dtype).replace('torch.', ''), 'params': params, 'latent': latent,
                'height': latent * scale, 'width': latent * scale, 'batch': 2,
                'unetBuildMs': unet_build_ms, 'vaeBuildMs': vae_build_ms,
                'attention': 'AttnProcessor' if mode == 'eager' else 'AttnProcessor2_0',
            }
            print(f'{name} {mode} ({entry["attention"]}) ...', flush=True)
            try:
                unet.set_attn_processor(AttnProcessor() if mode == 'eager' else AttnProcessor2_0())
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    forward = lambda: unet(sample, timestep, encoder_hidden_states=states).sample
                    entry['firstForwardMs'] = timed(forward)
                    for _ in range(max(0, args.warmup - 1)):
                        forward()
                    times = [timed(forward) for _ in range(args.repeats)]
                    entry['forwardMs'] = statistics.median(times)
                    entry['forwardMsAll'] = times

                    scheduler = DDIMScheduler.from_config(scheduler_config)

                    def text_to_image():
                        scheduler.set_timesteps(args.steps)
                        x = torch.randn(1, channels, latent, latent, device=device, dtype=dtype, generator=generator)
                        for t in scheduler.timesteps:
                            eps = unet(torch.cat([x, x]), t, encoder_hidden_states=states).sample
                            uncond, text = eps.chunk(2)
                            x = scheduler.step(uncond + 7.5 * (text - uncond), t, x).prev_sample
                        return vae.decode((x / scaling).to(vae_dtype)).sample.float().cpu()

                    text_to_image()  # the scheduler's and the VAE's first use
                    entry['steps'] = args.steps
                    entry['sampleMs'] = timed(text_to_image)
                    z = torch.randn(1, vae_config.get('latent_channels', 4), latent, latent, device=device, dtype=vae_dtype)
                    entry['vaeDecodeMs'] = statistics.median([timed(lambda: vae.decode(z).sample) for _ in range(args.repeats)])
                if cuda:
                    entry['peakMemoryBytes'] = torch.cuda.max_memory_allocated()
            except Exception as e:  # a mode that fails here still lets the other run
                entry['error'] = f'{type(e).__name__}: {e}'
                traceback.print_exc()
            print('  ' + json.dumps(entry), flush=True)
            results.append(entry)
            write(args.out, card, torch.__version__, device, args.quick, results)  # kept if a later mode runs out of time
        del unet, vae
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
