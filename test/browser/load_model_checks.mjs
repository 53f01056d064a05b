// loadModel (src/web/load_model.ts) checked in Node, where it runs unchanged (fetch only): against
// the demo's server for the real files, and through its `fetch` option for the pipeline layout,
// bodies of unknown length and the ways a download goes wrong. Used by run.mjs.

/** Responses for a fake folder at http://models.test/m/: path → body (string, bytes, or a status). */
function fakeFetch(files, { chunk = 1000, lengths = true, log = [] } = {}) {
  return async (url) => {
    const path = new URL(String(url)).pathname.replace(/^\/m\//, '');
    log.push(path);
    const file = files[path];
    if (file === undefined) return new Response('not found', { status: 404, statusText: 'Not Found' });
    if (typeof file === 'number') return new Response('error', { status: file, statusText: file === 500 ? 'Internal Server Error' : '' });
    const bytes = typeof file === 'string' ? new TextEncoder().encode(file) : (file.bytes ?? file);
    // A stream in small chunks, so progress is reported more than once.
    const body = new ReadableStream({
      start(controller) {
        for (let at = 0; at < bytes.length; at += chunk) controller.enqueue(bytes.slice(at, at + chunk));
        controller.close();
      },
    });
    const headers = {};
    if (lengths) headers['content-length'] = String(file.announce ?? bytes.length);
    return new Response(body, { status: 200, headers });
  };
}

async function rejects(promise, pattern, what) {
  try {
    await promise;
  } catch (e) {
    if (e.name !== 'ModelLoadError') throw new Error(`${what}: threw ${e.name} (${e.message}), not ModelLoadError`);
    if (!pattern.test(e.message)) throw new Error(`${what}: the message "${e.message}" does not match ${pattern}`);
    return e;
  }
  throw new Error(`${what}: did not throw`);
}

export async function loadModelChecks(test, check, serverUrl, { loadModel, parseSafetensors }) {
  await test("loadModel: the demo server's emoji32 folder, without a trailing slash, with progress", async () => {
    const progress = [];
    const files = await loadModel(`${serverUrl}weights/emoji32`, {
      onProgress: (loaded, total, file) => progress.push({ loaded, total, file }),
    });
    check(files.config?._class_name === 'UNet2DModel', `config.json came back as ${JSON.stringify(files.config)?.slice(0, 80)}`);
    check(files.schedulerConfig?.beta_schedule === 'linear', 'scheduler_config.json was not read');
    check(parseSafetensors(files.weights).tensors.size > 100, 'the weights do not parse as safetensors');
    for (const name of ['config.json', 'diffusion_pytorch_model.safetensors', 'scheduler_config.json']) {
      const reports = progress.filter((p) => p.file === name);
      const last = reports.at(-1);
      check(reports.length >= 2, `${name}: ${reports.length} progress reports`);
      check(last.total !== undefined && last.loaded === last.total, `${name}: last report ${JSON.stringify(last)}`);
    }
    check(
      progress.filter((p) => p.file === 'diffusion_pytorch_model.safetensors').at(-1).total === files.weights.length,
      "the weights' total is not their size",
    );
  });

  await test('loadModel: a pipeline folder (unet/, scheduler/) streamed without Content-Length', async () => {
    const weights = new Uint8Array(2500).map((_, i) => i % 251);
    const log = [];
    const progress = [];
    const files = await loadModel('http://models.test/m', {
      fetch: fakeFetch({
        'unet/config.json': '{"sample_size": 8}',
        'unet/diffusion_pytorch_model.safetensors': weights,
        'scheduler/scheduler_config.json': '{"beta_end": 0.01}',
      }, { lengths: false, log }),
      onProgress: (loaded, total, file) => progress.push({ loaded, total, file }),
    });
    check(
      log.join(' ') ===
        'config.json model_index.json unet/config.json unet/diffusion_pytorch_model.safetensors scheduler/scheduler_config.json',
      `fetched ${log.join(' ')}`,
    );
    check(files.config.sample_size === 8 && files.schedulerConfig.beta_end === 0.01, 'wrong JSON');
    check(files.weights.length === 2500 && files.weights.every((v, i) => v === i % 251), 'the weights arrived changed');
    const weightReports = progress.filter((p) => p.file === 'unet/diffusion_pytorch_model.safetensors');
    check(
      weightReports.length >= 3 && weightReports.slice(0, -1).every((p) => p.total === undefined),
      'progress without a known size should say total undefined',
    );
  });

  await test('loadModel: no scheduler config is fine; failures name the URL and the HTTP status', async () => {
    const files = await loadModel('http://models.test/m/', {
      fetch: fakeFetch({ 'config.json': '{}', 'diffusion_pytorch_model.safetensors': new Uint8Array(8) }),
    });
    check(files.schedulerConfig === undefined, 'a missing scheduler_config.json should give undefined');
    await rejects(
      loadModel('http://models.test/m/', { fetch: fakeFetch({}) }),
      /no model at http:\/\/models\.test\/m\/.*config\.json.*model_index\.json.*unet\/config\.json.*404/,
      'an empty folder',
    );
    await rejects(
      loadModel('http://models.test/m/', { fetch: fakeFetch({ 'config.json': '{}', 'diffusion_pytorch_model.safetensors': 500 }) }),
      /GET http:\/\/models\.test\/m\/diffusion_pytorch_model\.safetensors failed: HTTP 500 Internal Server Error/,
      'a server error',
    );
    await rejects(
      loadModel('http://models.test/m/', {
        fetch: fakeFetch({ 'config.json': '{}', 'diffusion_pytorch_model.safetensors': new Uint8Array(8), 'scheduler_config.json': 403 }),
      }),
      /scheduler_config\.json failed: HTTP 403/,
      'a forbidden scheduler config',
    );
    await rejects(
      loadModel('http://models.test/m/', {
        fetch: fakeFetch({ 'config.json': '<!doctype html><html>', 'diffusion_pytorch_model.safetensors': new Uint8Array(8) }),
      }),
      /http:\/\/models\.test\/m\/config\.json is not JSON.*<!doctype html>/,
      'an HTML page instead of JSON',
    );
    await rejects(
      loadModel('http://models.test/m/', {
        fetch: fakeFetch({ 'config.json': '{}', 'diffusion_pytorch_model.safetensors': { bytes: new Uint8Array(100), announce: 200 } }),
      }),
      /cut short: 100 of 200 bytes/,
      'a truncated download',
    );
    await rejects(
      loadModel('http://models.test/m/', {
        fetch: async () => {
          throw new TypeError('Failed to fetch');
        },
      }),
      // A folder is first asked for a bare model's config.json.
      /could not fetch http:\/\/models\.test\/m\/config\.json: Failed to fetch/,
      'a network error',
    );
    await rejects(loadModel('relative/folder/'), /not a URL/, 'a relative URL outside a page');
  });

  await test("loadModel: the demo server's tiny LDM pipeline folder by its model_index.json (unet/, vqvae/, scheduler/)", async () => {
    const fetched = [];
    const files = await loadModel(`${serverUrl}golden/sd/tiny-ldm/`, {
      onProgress: (loaded, _total, file) => loaded === 0 && fetched.push(file),
    });
    check(files.config?._class_name === 'UNet2DModel', `unet/config.json came back as ${JSON.stringify(files.config)?.slice(0, 80)}`);
    check(files.schedulerConfig?._class_name === 'DDIMScheduler', 'scheduler/scheduler_config.json was not read');
    check(
      files.autoencoder?.config?._class_name === 'VQModel',
      `the autoencoder is ${JSON.stringify(files.autoencoder?.config)?.slice(0, 80)}`,
    );
    check(files.folders?.autoencoder === 'vqvae', `the autoencoder's folder is ${files.folders?.autoencoder}`);
    check(parseSafetensors(files.autoencoder.weights).tensors.size > 20, "the vqvae's weights do not parse as safetensors");
    check(
      fetched.includes('unet/diffusion_pytorch_model.safetensors') && fetched.includes('vqvae/diffusion_pytorch_model.safetensors'),
      `progress named ${fetched.join(', ')}`,
    );
  });

  await test("loadModel: the demo server's tiny Stable Diffusion folder (unet/, text_encoder/, tokenizer/, vae/, scheduler/)", async () => {
    const fetched = [];
    const files = await loadModel(`${serverUrl}golden/sd/tiny-sd/`, {
      onProgress: (loaded, _total, file) => loaded === 0 && fetched.push(file),
    });
    check(
      files.config?._class_name === 'UNet2DConditionModel',
      `unet/config.json came back as ${JSON.stringify(files.config)?.slice(0, 80)}`,
    );
    check(
      files.autoencoder?.config?._class_name === 'AutoencoderKL',
      `the autoencoder is ${JSON.stringify(files.autoencoder?.config)?.slice(0, 80)}`,
    );
    check(
      files.textEncoder?.config?.hidden_size === 32,
      `the text encoder's config is ${JSON.stringify(files.textEncoder?.config)?.slice(0, 80)}`,
    );
    check(parseSafetensors(files.textEncoder.weights).tensors.size > 20, "the text encoder's weights do not parse as safetensors");
    check(
      files.tokenizer?.vocab && files.tokenizer?.merges && files.tokenizer?.tokenizerConfig,
      `the tokenizer's files came back as ${Object.keys(files.tokenizer ?? {}).join(', ')}`,
    );
    check(
      ['text_encoder/model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt'].every((f) => fetched.includes(f)),
      `progress named ${fetched.join(', ')}`,
    );
  });
}
