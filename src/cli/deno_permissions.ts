/**
 * Under Deno, the command line needs to read files (the model, inputs), write its outputs, read
 * and set environment variables (INIT_CWD, the Vulkan driver's) and ask the system for the user's
 * id (node:fs's writability check). deno.json declares exactly these as its default permission
 * set, so `deno run -P sample.ts` grants them; -A grants them and more. Checked before anything
 * else, so that a bare `deno run sample.ts` stops with one line saying so instead of a permission
 * prompt per access (or, without a terminal, a stack trace at the first one).
 */

/** The permissions deno.json's `permissions.default` grants, in Deno's names. */
export const CLI_PERMISSIONS = ['read', 'write', 'env', 'sys'] as const;

interface DenoPermissions {
  querySync(descriptor: { name: string }): { state: string };
}

/**
 * One line naming what is missing and the command that grants it, or undefined when everything
 * is granted (or this is not Deno). Querying never prompts.
 */
export function missingPermissionsMessage(script = 'sample.ts'): string | undefined {
  const permissions = (globalThis as { Deno?: { permissions?: DenoPermissions } }).Deno?.permissions;
  if (!permissions) return undefined;
  const missing = CLI_PERMISSIONS.filter((name) => permissions.querySync({ name }).state !== 'granted');
  if (missing.length === 0) return undefined;
  return `error: Deno has not granted ${missing.map((name) => `--allow-${name}`).join(', ')}: run it as ` +
    `\`deno run -P ${script}\` (the permissions in deno.json: ${CLI_PERMISSIONS.join(', ')}) or \`deno run -A ${script}\``;
}
