// The shim takes struct layouts and ioctl numbers from the target tree's uapi headers at
// build time; this checks what it was compiled with against ../shared/uapi-layout-7.3.txt
// (a dump made independently from the same tree). No VM is needed, only the cached build.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { conformanceDir } from '../cache.ts';
import { cachedKernel } from '../kernel/build.ts';
import { ensureShim } from '../shim/build.ts';

const SHARED_LAYOUT = join(conformanceDir, '..', '..', 'shared', 'uapi-layout-7.3.txt');

/** "name size=N" and "NAME = 0x..." lines at the start of a line (top-level entries). */
function entries(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)\s+(size=\d+|= 0x[0-9a-f]+)\s*$/.exec(line);
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

describe('shim layout', () => {
  it('matches uapi-layout-7.3.txt for every struct and ioctl both list', () => {
    const kernel = cachedKernel();
    if (!kernel) throw new Error('no cached kernel build: run npm run kernel:build first');
    if (!existsSync(SHARED_LAYOUT)) throw new Error(`${SHARED_LAYOUT} is missing (shared/ beside the repo)`);
    const shim = entries(execFileSync(ensureShim(kernel), ['--layout'], { encoding: 'utf8' }));
    const shared = entries(readFileSync(SHARED_LAYOUT, 'utf8'));
    const common = [...shim.keys()].filter((k) => shared.has(k));
    expect(common.length).toBeGreaterThanOrEqual(30);
    for (const k of common) expect(`${k} ${shim.get(k)}`).toBe(`${k} ${shared.get(k)}`);
  });
});
