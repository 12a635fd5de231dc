/**
 * A BFS level's states, packed (codec.ts): records of [state number,
 * length, words...] in chunks of 256K words (1 MB). A level is written while the
 * previous one is read, then read once, in order. Past a memory budget the
 * filled chunks go to a temporary file (TLC's DiskStateQueue) and come back
 * one at a time when the level is read, so the frontier's memory stays
 * bounded however wide a level is.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHUNK_WORDS = 1 << 18;

/** What the reader sees of one state: its number and its words (words[start, end) of `buf`). */
export interface FrontierRecord {
  index: number;
  buf: Int32Array;
  start: number;
  end: number;
}

export class Frontier {
  private chunks: Int32Array[] = [];
  /** Words used in each chunk (the last one is being filled). */
  private used: number[] = [];
  /** Chunks written to the spill file: their offsets (in words) and lengths, in order. */
  private spilled: { at: number; words: number }[] = [];
  private file: { fd: number; dir: string; words: number } | undefined;
  private states = 0;
  private inMemoryWords = 0;

  /** `budgetBytes`: memory the in-memory chunks may use before they spill (Infinity: never). */
  constructor(private readonly budgetBytes = Number.POSITIVE_INFINITY) {}

  get length(): number {
    return this.states;
  }

  /** Bytes held in memory. */
  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.byteLength, 0);
  }

  /** Bytes written to disk. */
  get spilledBytes(): number {
    return this.spilled.reduce((n, s) => n + s.words * 4, 0);
  }

  push(index: number, words: Int32Array, start: number, end: number): void {
    const n = end - start + 2;
    let last = this.chunks.length - 1;
    if (last < 0 || this.used[last] + n > this.chunks[last].length) {
      this.spillIfOverBudget();
      this.chunks.push(new Int32Array(Math.max(CHUNK_WORDS, n)));
      this.used.push(0);
      last = this.chunks.length - 1;
    }
    const c = this.chunks[last];
    let at = this.used[last];
    c[at++] = index;
    c[at++] = end - start;
    c.set(words.subarray(start, end), at);
    this.used[last] = at + end - start;
    this.inMemoryWords += n;
    this.states++;
  }

  /** Every state, in the order pushed: spilled chunks first (they were filled first), then the rest. */
  *[Symbol.iterator](): Generator<FrontierRecord> {
    const record: FrontierRecord = { index: 0, buf: new Int32Array(0), start: 0, end: 0 };
    for (const s of this.spilled) {
      const buf = new Int32Array(s.words);
      readSync(this.file!.fd, new Uint8Array(buf.buffer), 0, s.words * 4, s.at * 4);
      yield* records(buf, s.words, record);
    }
    for (let k = 0; k < this.chunks.length; k++) yield* records(this.chunks[k], this.used[k], record);
  }

  /** Free the memory and the spill file. */
  dispose(): void {
    this.chunks = [];
    this.used = [];
    if (this.file) {
      closeSync(this.file.fd);
      rmSync(this.file.dir, { recursive: true, force: true });
      this.file = undefined;
    }
  }

  private spillIfOverBudget(): void {
    if ((this.inMemoryWords + CHUNK_WORDS) * 4 <= this.budgetBytes || this.chunks.length === 0) return;
    if (this.file === undefined) {
      const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-frontier-'));
      this.file = { fd: openSync(join(dir, 'level'), 'w+'), dir, words: 0 };
    }
    // Every full chunk goes to disk, in order; the reader takes spilled chunks first.
    for (let k = 0; k < this.chunks.length; k++) {
      const words = this.used[k];
      writeSync(
        this.file.fd,
        new Uint8Array(this.chunks[k].buffer, 0, words * 4),
        0,
        words * 4,
        this.file.words * 4,
      );
      this.spilled.push({ at: this.file.words, words });
      this.file.words += words;
    }
    this.chunks = [];
    this.used = [];
    this.inMemoryWords = 0;
  }
}

function* records(buf: Int32Array, used: number, r: FrontierRecord): Generator<FrontierRecord> {
  let at = 0;
  r.buf = buf;
  while (at < used) {
    r.index = buf[at];
    const n = buf[at + 1];
    r.start = at + 2;
    r.end = at + 2 + n;
    at = r.end;
    yield r;
  }
}
