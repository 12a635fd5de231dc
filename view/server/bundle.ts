/**
 * The page's script and style, bundled when the server starts by esbuild
 * (already installed: it is the compiler tsx runs on). Nothing is built at
 * install time and no build output is committed, so what the browser runs is
 * always the source in view/client/, and `npm ci` runs no install script.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface Bundle {
  readonly js: string;
  readonly css: string;
  readonly ms: number;
}

const entry = fileURLToPath(new URL('../client/main.tsx', import.meta.url));
const style = fileURLToPath(new URL('../client/style.css', import.meta.url));

export async function bundleClient(): Promise<Bundle> {
  const started = performance.now();
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    logLevel: 'silent',
    // Let a user's tsconfig.json in the working directory change nothing.
    tsconfigRaw: '{}',
  });
  return { js: out.outputFiles[0].text, css: readFileSync(style, 'utf8'), ms: performance.now() - started };
}
