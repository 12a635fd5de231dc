/**
 * The kernel's gcov counters, snapshot after snapshot, through the shim (gcov_snapshot and
 * gcov_chunk, conformance/shim/vfio-mc-shim.c). The shim sends the 32-bit words of each .gcda
 * that changed since its previous snapshot; this side keeps the same images, so that every
 * snapshot gives the counter increments since the one before (an interval: a replayed step,
 * a fixture, a teardown) and the images give the files' structure for writing .gcda files.
 */
import type { ReplayTarget } from '../adapters/adapter.ts';
import { counterSlots, readCounters } from './gcda.ts';

/** Counter increments of one interval: per object (path relative to the build dir, no .gcda), sparse. */
export type Increments = Map<string, Map<number, number>>;

interface Image {
  words: Uint32Array;
  slots: Uint32Array;
}

/** Parses the shim's snapshot text: `<path>|<bytes>|<word>:<value>,...;` per changed file. */
export function parseSnapshotText(
  text: string,
): { path: string; bytes: number; words: [number, number][] }[] {
  const files: { path: string; bytes: number; words: [number, number][] }[] = [];
  for (const part of text.split(';')) {
    if (part === '') continue;
    const [path, bytes, body] = part.split('|');
    if (body === undefined || !/^\d+$/.test(bytes))
      throw new Error(`gcov snapshot: bad file entry '${part.slice(0, 80)}'`);
    const words: [number, number][] = [];
    for (const w of body.split(',')) {
      if (w === '') continue;
      const m = /^([0-9a-f]+):([0-9a-f]+)$/.exec(w);
      if (!m) throw new Error(`gcov snapshot: bad word '${w}' in ${path}`);
      words.push([Number.parseInt(m[1], 16), Number.parseInt(m[2], 16)]);
    }
    files.push({ path, bytes: Number(bytes), words });
  }
  return files;
}

export class GcovMirror {
  private readonly images = new Map<string, Image>();

  /**
   * @param objectDir the directory the objects were compiled in (the build's stamp): the
   *   shim's paths are that directory's path under /sys/kernel/debug/gcov, then the object's.
   */
  constructor(private readonly objectDir: string) {}

  /** The object's path relative to the build dir, without .gcda. */
  private objectOf(path: string): string {
    const prefix = `${this.objectDir.replace(/^\/+/, '')}/`;
    if (!path.startsWith(prefix) || !path.endsWith('.gcda'))
      throw new Error(`gcov snapshot: ${path} is not an object of the build in ${this.objectDir}`);
    return path.slice(prefix.length, -'.gcda'.length);
  }

  /** Applies a snapshot; returns the increments since the previous one (a fresh VM starts from zero). */
  apply(text: string): Increments {
    const inc: Increments = new Map();
    for (const f of parseSnapshotText(text)) {
      const object = this.objectOf(f.path);
      const old = this.images.get(object);
      const words =
        old && old.words.length * 4 === f.bytes ? Uint32Array.from(old.words) : new Uint32Array(f.bytes / 4);
      for (const [i, v] of f.words) words[i] = v;
      const slots = old && old.words.length === words.length ? old.slots : counterSlots(words, object);
      const before = old && old.slots === slots ? readCounters(old.words, slots) : undefined;
      const after = readCounters(words, slots);
      const changed = new Map<number, number>();
      for (let k = 0; k < after.length; k++) {
        const d = after[k] - (before?.[k] ?? 0);
        if (d > 0) changed.set(k, d);
      }
      if (changed.size) inc.set(object, changed);
      this.images.set(object, { words, slots });
    }
    return inc;
  }

  /** The image of an object (its structure: where its counters are). */
  image(object: string): Image | undefined {
    return this.images.get(object);
  }

  objects(): string[] {
    return [...this.images.keys()].sort();
  }

  /** After a restart the kernel's counters start from zero again: so must the images. */
  zero(): void {
    for (const img of this.images.values()) for (const s of img.slots) img.words[s] = img.words[s + 1] = 0;
  }
}

/** Takes snapshots through one long-lived actor of the target. */
export class Snapshotter {
  constructor(
    private readonly target: ReplayTarget,
    readonly mirror: GcovMirror,
    private readonly actor = 'gcov',
  ) {}

  async snapshot(): Promise<Increments> {
    const a = this.target.actor(this.actor);
    const r = await a.call('gcov_snapshot', {});
    if (r.status !== 'done' || r.errno !== '0')
      throw new Error(`gcov_snapshot: ${r.status} ${r.errno} (is this the coverage kernel?)`);
    const size = Number(r.out.size);
    let text = '';
    while (text.length < size) {
      const c = await a.call('gcov_chunk', { offset: text.length });
      const data = c.out.data;
      if (c.status !== 'done' || typeof data !== 'string' || !data.startsWith('x') || data.length < 2)
        throw new Error(`gcov_chunk at ${text.length} of ${size}: ${c.status} ${c.errno}`);
      text += data.slice(1);
    }
    return this.mirror.apply(text);
  }
}

/** Adds b's increments into a. */
export function addInto(a: Increments, b: Increments): void {
  for (const [o, m] of b) {
    let t = a.get(o);
    if (!t) a.set(o, (t = new Map()));
    for (const [k, v] of m) t.set(k, (t.get(k) ?? 0) + v);
  }
}
