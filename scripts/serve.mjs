#!/usr/bin/env node
// A small static server for the demo, on 127.0.0.1 only:
//   /            web/        (index.html: the demo; test.html: the browser test's golden check)
//   /dist/       dist/       (npm run build)
//   /weights/    weights/    (the models)
//   /golden/     ../shared/golden/, when present (the browser test's reference tensors)
//
//   node scripts/serve.mjs [--port N]      (npm run demo; default port 8080, 0 picks a free one)
// Any other flag is refused with one line (--host too: the server is for localhost only).
// The browser test imports startServer() from here.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');

/** URL prefix → folder, longest prefix first. */
export const MOUNTS = [
  ['/dist/', resolve(root, 'dist')],
  ['/weights/', resolve(root, 'weights')],
  ['/golden/', resolve(root, '..', 'shared', 'golden')],
  ['/', resolve(root, 'web')],
];

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.safetensors': 'application/octet-stream',
  '.wasm': 'application/wasm', // streaming compilation wants it (onnxruntime-web's, for bench:browser)
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '': 'text/plain; charset=utf-8', // NOTICE, LICENSE
};

/** The file a request path maps to, or undefined when it is outside every mount. */
function fileFor(pathname) {
  for (const [prefix, dir] of MOUNTS) {
    if (!pathname.startsWith(prefix)) continue;
    const rest = pathname.slice(prefix.length) || 'index.html';
    const file = resolve(dir, rest);
    if (file !== dir && !file.startsWith(dir + sep)) return undefined; // ../ out of the mount
    return file;
  }
  return undefined;
}

function handle(request, response) {
  const send = (status, text) => {
    response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    response.end(request.method === 'HEAD' ? undefined : text);
  };
  if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, 'only GET and HEAD\n');
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
  } catch {
    return send(400, 'bad URL\n');
  }
  let file = fileFor(pathname);
  let stat;
  try {
    stat = file && statSync(file);
    if (stat?.isDirectory()) {
      if (!pathname.endsWith('/')) {
        response.writeHead(301, { location: `${pathname}/` });
        return response.end();
      }
      file = resolve(file, 'index.html');
      stat = statSync(file);
    }
  } catch {
    stat = undefined;
  }
  if (!file || !stat?.isFile()) return send(404, `not found: ${pathname}\n`);
  response.writeHead(200, {
    'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': stat.size,
    'cache-control': 'no-cache',
  });
  if (request.method === 'HEAD') return response.end();
  createReadStream(file).on('error', () => response.destroy()).pipe(response);
}

/** Starts the server on 127.0.0.1; resolves with its URL and a close() that ends it. */
export function startServer({ port = 8080 } = {}) {
  const server = createServer(handle);
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: actual } = server.address();
      resolvePromise({
        url: `http://127.0.0.1:${actual}/`,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** The command line's port, or a one-line complaint about any flag it does not know. */
export function parseServeArgs(args) {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { port: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (error) {
    const flag = /'(-[^' ]*)/.exec(error.message)?.[1];
    if (flag === '--host') {
      return { error: "unknown option '--host': the demo is served on 127.0.0.1 only (WebGPU needs a secure page, which localhost is)" };
    }
    if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return { error: `unknown option '${flag ?? error.message}'` };
    if (error.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      return { error: `unexpected argument '${/'([^']*)'/.exec(error.message)?.[1] ?? error.message}'` };
    }
    return { error: error.message };
  }
  if (values.help) return { help: true };
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!/^\d+$/.test(values.port ?? '8080') || port > 65535) {
    return { error: `--port must be an integer from 0 to 65535, got '${values.port}'` };
  }
  return { port };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const usage = 'usage: node scripts/serve.mjs [--port N]   (npm run demo -- --port N; 0 picks a free port)';
  const parsed = parseServeArgs(process.argv.slice(2));
  if (parsed.help) {
    console.log(usage);
    process.exit(0);
  }
  if (parsed.error) {
    console.error(`serve: ${parsed.error}\n${usage}`);
    process.exit(2);
  }
  const { port } = parsed;
  try {
    statSync(resolve(root, 'dist', 'demo.js'));
  } catch {
    console.error('serve: dist/demo.js is missing: run `npm run build` first');
  }
  try {
    const { url } = await startServer({ port });
    console.log(`serving web/, dist/ and weights/ at ${url} (Ctrl-C stops; run \`npm run build\` after changing the code)`);
  } catch (e) {
    console.error(`serve: ${e.code === 'EADDRINUSE' ? `port ${port} is taken; try --port 0` : e.message}`);
    process.exit(1);
  }
}
