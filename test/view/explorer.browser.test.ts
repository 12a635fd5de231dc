import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { EventObject } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import { findModel } from '../../explorer/registry.ts';
import { formatEvent, formatStepLabel } from '../../explorer/report-text.ts';
import { replay } from '../../explorer/trace.ts';
import { freshBrowser, ROOT, type Served, screenshot, serve, shown } from './browser.ts';

/** The vfio-wait deadlock (spec/container.md): who fires what, in order. */
const DEADLOCK: [string, EventObject][] = [
  ['vmm', { type: 'VmmMapDma', dma: 0 } as EventObject],
  ['vmm', { type: 'VmmUnmapVaddr', range: 0 } as EventObject],
  ['vmm', { type: 'VmmCloseDevice' }],
  ['mdev', { type: 'MdevPinPages', dma: 0 } as EventObject],
];
const TOKENS = ['VmmMapDma(dma=0)', 'VmmUnmapVaddr(range=0)', 'VmmCloseDevice', 'MdevPinPages(dma=0)'];

/** What the model itself says: each step's label and result, and each actor's wait at the end. */
async function expected() {
  const variant = (await findModel('container')).variant('vfio-wait');
  const r = replay(
    variant,
    DEADLOCK.map(([, e]) => e),
  );
  const engine = createReferenceEngine(variant.machine);
  const end = r.snapshots[r.snapshots.length - 1];
  const buttons = DEADLOCK.map(([, e], i) => variant.label?.(e, r.snapshots[i]) ?? formatEvent(e));
  const waits = engine.actors.map((a) => [a, variant.waitingFor?.(end, a) ?? 'no event enabled for it']);
  return { steps: r.steps.map(formatStepLabel), buttons, waits };
}

let server: Served;
let browser: BrowserContext;
let page: Page;

beforeAll(async () => {
  server = await serve('container', '--variant', 'vfio-wait');
  browser = await freshBrowser();
  page = await browser.newPage();
});
afterAll(async () => {
  await browser?.close();
  server?.stop();
});

describe('vfio-mc serve container --variant vfio-wait, in Chromium', () => {
  it('loads the container model at its initial state: actors, their events, the diagrams', async () => {
    await page.goto(server.url);
    await shown(page, 0);
    expect(new URL(page.url()).pathname).toBe('/container/vfio-wait/');
    expect(await page.locator('header .model').textContent()).toBe('container');
    expect(
      await page.locator('[data-actor]').evaluateAll((xs) => xs.map((x) => x.getAttribute('data-actor'))),
    ).toEqual(['vmm', 'mdev', 'release']);
    expect(await page.locator('[data-actor="vmm"] a.event').count()).toBeGreaterThan(5);
    for (const actor of ['vmm', 'mdev', 'release']) {
      const d = page.locator(`[data-diagram="${actor}"]`);
      expect(await d.locator('g.node').count()).toBeGreaterThan(1);
      expect(await d.locator('g.node.active').count()).toBe(1);
    }
    expect(await page.locator('[data-diagram="vmm"] g.node.active text').textContent()).toBe('idle');
    await screenshot(page, 'serve-initial');
  });

  it('fires the deadlock’s events by clicking them, each step shown in the model’s words', async () => {
    const want = await expected();
    for (const [i, [actor]] of DEADLOCK.entries()) {
      const button = page.locator(`[data-actor="${actor}"] a.event[data-event="${TOKENS[i]}"]`);
      expect(await button.textContent()).toBe(want.buttons[i]);
      await button.click();
      await shown(page, i + 1);
      const lane = page.locator(`table.lanes tr[data-step="${i + 1}"] td.lane`);
      expect((await lane.allTextContents()).filter(Boolean)).toEqual([want.steps[i]]);
    }
    expect(decodeURIComponent(new URL(page.url()).pathname)).toBe(`/container/vfio-wait/${TOKENS.join('/')}`);
  });

  it('flags the deadlock and names what each actor waits for; back and forward walk the path', async () => {
    const want = await expected();
    await page.locator('[data-deadlock]').waitFor();
    for (const [actor, wait] of want.waits) {
      expect(await page.locator(`[data-waiting="${actor}"]`).textContent()).toBe(`waits: ${wait}`);
      expect(await page.locator('[data-deadlock]').textContent()).toContain(`${actor}: ${wait}`);
    }
    expect(await page.locator('[data-diagram="mdev"] g.node.active text').textContent()).toBe('waiting');
    expect(await page.locator('[data-diagram="mdev"] text.fired').getAttribute('data-transition')).toBe(
      'mdev.idle#MdevPinPages[0]',
    );
    expect(await page.locator('.tree .leaf.changed[data-path="drv.inflight"]').count()).toBe(1);
    await screenshot(page, 'serve-deadlock');
    await page.goBack();
    await shown(page, 3);
    expect(await page.locator('[data-deadlock]').count()).toBe(0);
    await page.goForward();
    await shown(page, 4);
    await page.locator('a.nav.back').click();
    await shown(page, 3);
    expect(new URL(page.url()).searchParams.get('at')).toBe('3');
    await page.keyboard.press('ArrowRight');
    await shown(page, 4);
    expect(await page.locator('[data-deadlock]').count()).toBe(1);
  });

  it('a copied address opens the same state in a fresh browser', async () => {
    const ours = await snapshotOf(page);
    const other = await freshBrowser();
    try {
      const fresh = await other.newPage();
      await fresh.goto(page.url());
      await shown(fresh, 4);
      expect(await snapshotOf(fresh)).toEqual(ours);
      await fresh.goto(`${page.url().split('?')[0]}?at=2`);
      await shown(fresh, 2);
      expect(await fresh.locator('table.lanes tr.current').getAttribute('data-step')).toBe('2');
    } finally {
      await other.close();
    }
  });

  it('runs the explorer, and opens a counterexample from the verdict table as a path', async () => {
    await page.goto(server.url);
    await shown(page, 0);
    await page.locator('button.run').click();
    await page.locator('[data-run="done"]').waitFor({ timeout: 110_000 });
    const row = (name: string) => page.locator(`tr[data-verdict="${name}"] td.status`);
    expect(await row('deadlock').textContent()).toBe('violated');
    expect(await row('noKernelBug').textContent()).toBe('holds');
    expect(await page.locator('td.unexpected').count()).toBe(0);
    // The diagrams now grey out what never fired in this search.
    expect(await page.locator('.diagram text.never').count()).toBeGreaterThan(0);
    await page.locator('.verdicts').scrollIntoViewIfNeeded();
    await screenshot(page, 'serve-verdicts');
    await page.locator('[data-diagram="vmm"]').scrollIntoViewIfNeeded();
    await screenshot(page, 'serve-diagrams');
    await page.locator('a[data-counterexample="deadlock"]').click();
    await shown(page, 4);
    expect(await page.locator('.cx-banner').textContent()).toContain('deadlock after 4 steps');
    await page.locator('[data-deadlock]').waitFor();
    await page.locator('table.lanes tr[data-step="2"] td.num a').click();
    await shown(page, 2);
    expect(await page.locator('.cx-banner').count()).toBe(1);
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, 'serve-counterexample');
  });
});

describe('bad input in the page', () => {
  it('an unknown event, a step the machine rejects: said in the page and in the server log', async () => {
    await page.goto(`${new URL(server.url).origin}/container/vfio-wait/VmmMapDma(dma=0)/VmmFly`);
    await shown(page, 1);
    const unknown = "step 2: 'VmmFly' is not an event of container / vfio-wait: no transition takes 'VmmFly'";
    expect(await page.locator('[data-problem]').textContent()).toBe(unknown);
    expect(server.log()).toContain(unknown);
    await screenshot(page, 'serve-bad-address');
    await page.goto(`${new URL(server.url).origin}/container/vfio-wait/MdevPinWake`);
    await shown(page, 0);
    expect(await page.locator('[data-problem]').textContent()).toMatch(
      /^step 1: the machine does not take MdevPinWake in the initial state \(enabled there: /,
    );
    expect(server.log()).toContain('step 1: the machine does not take MdevPinWake in the initial state');
  });

  it('a model that fails to load: said in the page and in the server log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-bad-model-'));
    const file = join(dir, 'broken.ts');
    writeFileSync(
      file,
      "import { defineModel } from 'vfio-mc';\nexport default defineModel({ id: 'broken', \n",
    );
    const bad = await serve(file);
    try {
      await page.goto(bad.url);
      const problem = page.locator('[data-problem]');
      await problem.waitFor();
      expect(await problem.textContent()).toContain('broken.ts:3:');
      expect(await problem.textContent()).toContain('syntax error');
      expect(bad.log()).toContain('broken.ts does not load');
    } finally {
      bad.stop();
    }
  });
});

describe('the HTML report', () => {
  it('opens from disk with no network: swim lanes with expandable changes, Mermaid drawn, coverage', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'vfio-mc-report-')), 'report.html');
    const r = spawnSync(
      process.execPath,
      [
        join(ROOT, 'bin', 'vfio-mc.js'),
        'explore',
        'container',
        '--variant',
        'vfio-wait',
        '--no-trails',
        '--no-progress',
        '--html',
        file,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(r.status).toBe(1);
    const offline = await freshBrowser({ offline: true });
    try {
      const report = await offline.newPage();
      const asked: string[] = [];
      report.on('request', (q) => asked.push(q.url()));
      const errors: string[] = [];
      report.on('pageerror', (e) => errors.push(e.message));
      await report.goto(`file://${file}`);
      const diagrams = await report.locator('pre.mermaid').count();
      expect(diagrams).toBe(4);
      await report.waitForFunction(
        (n) => document.querySelectorAll('pre.mermaid svg').length === n,
        diagrams,
      );
      expect(asked).toEqual([`file://${file}`]);
      expect(errors).toEqual([]);
      const deadlock = report.locator('.counterexample[data-property="deadlock"]');
      expect(await deadlock.locator('h3').textContent()).toContain('deadlock after 4 steps');
      const details = deadlock.locator('table.lanes details').first();
      expect(await details.locator('li').first().isVisible()).toBe(false);
      await details.locator('summary').click();
      expect(await details.locator('li').first().isVisible()).toBe(true);
      expect(await report.locator('.coverage').first().textContent()).toMatch(
        /transitions never fired|all \d+ transitions fired/,
      );
      await deadlock.scrollIntoViewIfNeeded();
      await screenshot(report, 'report');
    } finally {
      await offline.close();
    }
  });
});

/** What the page shows of a state, to compare two pages. */
async function snapshotOf(p: Page) {
  return {
    at: await p.locator('.app').getAttribute('data-at'),
    actors: await p.locator('[data-actor] .state-name').allTextContents(),
    waits: await p.locator('[data-waiting]').allTextContents(),
    deadlock: await p.locator('[data-deadlock]').count(),
    tree: await p.locator('.tree').textContent(),
    lanes: await p.locator('table.lanes').textContent(),
  };
}
