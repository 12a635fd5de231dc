import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonical } from '../../explorer/canonical.ts';
import { digest } from '../../explorer/fingerprint.ts';

const json = fc.jsonValue({ maxDepth: 4 });

describe('fingerprints', () => {
  it('equal data, equal digest, whatever the key order', () => {
    expect(digest({ a: 1, b: [true, null, 'x'] })).toEqual(digest({ b: [true, null, 'x'], a: 1 }));
    fc.assert(
      fc.property(json, (v) => {
        const reordered = JSON.parse(JSON.stringify(v), (_k, x) =>
          x && typeof x === 'object' && !Array.isArray(x)
            ? Object.fromEntries(Object.entries(x).reverse())
            : x,
        );
        expect(digest(reordered)).toEqual(digest(v));
      }),
    );
  });

  it('distinct data, distinct digests (no collision among many random values)', () => {
    const seen = new Map<string, string>();
    fc.assert(
      fc.property(json, (v) => {
        const enc = canonical(v);
        const d = digest(v);
        const key = `${d.hi}:${d.lo}`;
        const prior = seen.get(key);
        if (prior !== undefined) expect(prior).toBe(enc);
        seen.set(key, enc);
      }),
      { numRuns: 5000 },
    );
  });

  it('tells apart the values JSON-like encodings confuse', () => {
    const distinct = [
      1,
      '1',
      [],
      {},
      [[]],
      [{}],
      null,
      false,
      0,
      -0.5,
      '',
      [null],
      { a: null },
      { a: undefined, b: 1 },
    ];
    const keys = distinct.map((v) => JSON.stringify(digest(v)));
    // { a: undefined, b: 1 } is { b: 1 }, as in JSON; everything else differs.
    expect(new Set(keys).size).toBe(distinct.length);
    expect(digest({ a: undefined, b: 1 })).toEqual(digest({ b: 1 }));
  });

  it('refuses what is not plain JSON, naming the field', () => {
    expect(() => digest({ pins: new Set([1]) })).toThrow(
      'context.pins is a Set: model state must be plain JSON data',
    );
    expect(() => digest({ dma: [{ size: Number.NaN }] })).toThrow('context.dma[0].size is NaN');
    expect(() => digest({ f: () => 1 })).toThrow('context.f is a function');
  });
});
