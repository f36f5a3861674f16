// Where the compiled project lives, seen from the compiled harness (dist/test/e2e/harness/*.js).
// Processes inside namespaces run `node <project>/dist/...` directly, so they need absolute paths.

import path from 'node:path';

/** The checkout root (the directory holding package.json, dist/ and node_modules/). */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..', '..');

/** Absolute path of a compiled file, given its path under dist/ (e.g. 'test/e2e/servers/external.js'). */
export function distFile(relative: string): string {
  return path.join(PROJECT_ROOT, 'dist', relative);
}

/** argv that runs a compiled stand-in server from test/e2e/servers/ (name without extension). */
export function serverArgv(name: 'external' | 'tcp-echo' | 'httpbin', args: readonly string[] = []): string[] {
  return [process.execPath, distFile(`test/e2e/servers/${name}.js`), ...args];
}

/** argv that runs the sluice CLI (dist/proxy/cli.js) with `args`. */
export function sluiceArgv(args: readonly string[]): string[] {
  return [process.execPath, distFile('proxy/cli.js'), ...args];
}
