/**
 * Helpers of the browser tests: Debian's Chromium (view/setup-browser.sh)
 * driven by playwright-core, each browser with a fresh profile; the real
 * `vfio-mc serve` command in a child process, its log collected; the
 * screenshots the README shows, written to out/screenshots/.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = '/usr/bin/chromium';
export const SHOTS = join(ROOT, 'out', 'screenshots');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A browser with a profile of its own: nothing carries over from another test or another run. */
export async function freshBrowser(options: { offline?: boolean } = {}): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: the browser tests need it; run bash view/setup-browser.sh`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'vfio-mc-chromium-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1360, height: 900 },
    offline: options.offline ?? false,
  });
}

/** What the browser shows now (the viewport), for a person to look at: out/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

export interface Served {
  readonly url: string;
  readonly log: () => string;
  stop(): void;
}

/** `vfio-mc serve <args>` on a free port, as a user runs it; resolves once it says where it is. */
export function serve(...args: string[]): Promise<Served> {
  const child: ChildProcess = spawn(
    process.execPath,
    [join(ROOT, 'bin', 'vfio-mc.js'), 'serve', ...args, '--port', '0'],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr?.on('data', (d) => (err += String(d)));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`vfio-mc serve exited with ${code}: ${err}`)));
    child.stdout?.on('data', (d) => {
      out += String(d);
      const m = /vfio-mc serve: (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1], log: () => err, stop: () => child.kill() });
    });
  });
}

/** Wait until the page shows the state after `at` steps (the app marks what it shows). */
export async function shown(page: Page, at: number): Promise<void> {
  await page.locator(`.app[data-at="${at}"]`).waitFor();
}
