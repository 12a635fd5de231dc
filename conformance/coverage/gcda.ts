/**
 * gcc's .gcda files as the kernel writes them (kernel/gcov/gcc_4_7.c:convert_to_gcda, gcc 12):
 * a header of four 32-bit words (magic, version, stamp, a zero checksum), then per function a
 * FUNCTION record (ident, lineno checksum, cfg checksum) followed by one record per active
 * counter kind, whose values are 64-bit, low word first. Record lengths are in bytes (gcc >= 12).
 *
 * Only what the coverage needs: where the counter values are in a file's words, reading them,
 * and writing a file with other values in the same places (a delta, or a sum over runs), for
 * gcov to read with the .gcno of the same build.
 */

export const GCDA_MAGIC = 0x67636461; // 'gcda'
const TAG_FUNCTION = 0x01000000;
/** GCOV_TAG_FOR_COUNTER(0): the arc counters (-fprofile-arcs); other kinds are value profiles. */
const TAG_COUNTER_BASE = 0x01a10000;
const isCounterTag = (tag: number) =>
  tag >= TAG_COUNTER_BASE &&
  tag < TAG_COUNTER_BASE + (16 << 17) &&
  (tag - TAG_COUNTER_BASE) % (1 << 17) === 0;
/** GCOV_TAG_OBJECT_SUMMARY: libgcov writes one (the kernel does not). */
const TAG_OBJECT_SUMMARY = 0xa1000000;
const HEADER_WORDS = 4;

export class GcdaError extends Error {}

/** Word offsets (of the low word) of every counter value in the file, in file order. */
export function counterSlots(words: Uint32Array, name = 'gcda'): Uint32Array {
  if (words.length < HEADER_WORDS || words[0] !== GCDA_MAGIC)
    throw new GcdaError(`${name}: not a gcda file (magic ${words[0]?.toString(16) ?? 'missing'})`);
  const slots: number[] = [];
  let i = HEADER_WORDS;
  while (i < words.length) {
    if (i + 2 > words.length) throw new GcdaError(`${name}: record header cut off at word ${i}`);
    const tag = words[i];
    const len = words[i + 1];
    if (len % 4 !== 0) throw new GcdaError(`${name}: record length ${len} at word ${i} is not whole words`);
    const n = len / 4;
    const data = i + 2;
    if (data + n > words.length) throw new GcdaError(`${name}: record at word ${i} runs past the end`);
    if (isCounterTag(tag)) {
      if (n % 2 !== 0) throw new GcdaError(`${name}: counter record at word ${i} has an odd length`);
      for (let k = 0; k < n; k += 2) slots.push(data + k);
    } else if (tag !== TAG_FUNCTION && tag !== TAG_OBJECT_SUMMARY) {
      throw new GcdaError(`${name}: unknown record tag ${tag.toString(16)} at word ${i}`);
    }
    i = data + n;
  }
  return Uint32Array.from(slots);
}

/** The counter values at the slots (counts stay far below 2^53). */
export function readCounters(words: Uint32Array, slots: Uint32Array): Float64Array {
  const out = new Float64Array(slots.length);
  for (let k = 0; k < slots.length; k++) out[k] = words[slots[k]] + words[slots[k] + 1] * 2 ** 32;
  return out;
}

/** A copy of the file with these counter values (same length as the slots). */
export function withCounters(words: Uint32Array, slots: Uint32Array, values: Float64Array): Uint32Array {
  if (values.length !== slots.length)
    throw new GcdaError(`${values.length} counter values for a file with ${slots.length} counters`);
  const out = Uint32Array.from(words);
  for (let k = 0; k < slots.length; k++) {
    const v = values[k];
    if (v < 0 || !Number.isInteger(v)) throw new GcdaError(`counter ${k} would be ${v}`);
    out[slots[k]] = v % 2 ** 32;
    out[slots[k] + 1] = Math.floor(v / 2 ** 32);
  }
  return out;
}

export const toBuffer = (words: Uint32Array) => Buffer.from(words.buffer, words.byteOffset, words.byteLength);

/**
 * The file's words, with libgcov's zero-counter records (a negative length: that many bytes of
 * zeros, not stored; user-space gcc 12 writes them, the kernel does not) written out in full.
 */
export function fromBuffer(buf: Buffer): Uint32Array {
  if (buf.length % 4 !== 0) throw new GcdaError(`a gcda file of ${buf.length} bytes is not whole words`);
  const raw = new Uint32Array(buf.length / 4);
  for (let i = 0; i < raw.length; i++) raw[i] = buf.readUInt32LE(i * 4);
  if (raw[0] !== GCDA_MAGIC) return raw;
  const out: number[] = [...raw.subarray(0, HEADER_WORDS)];
  for (let i = HEADER_WORDS; i + 1 < raw.length;) {
    const tag = raw[i];
    const len = raw[i + 1];
    if (isCounterTag(tag) && len >= 0x80000000) {
      const bytes = 2 ** 32 - len;
      out.push(tag, bytes, ...new Array<number>(bytes / 4).fill(0));
      i += 2;
    } else {
      out.push(...raw.subarray(i, i + 2 + len / 4));
      i += 2 + len / 4;
    }
  }
  return Uint32Array.from(out);
}
