/**
 * 64-bit state fingerprints (xxHash64 of the canonical encoding), as TLC and
 * Spin's hash-compact store them: the store keeps fingerprints, not states,
 * and reports the probability that two distinct states collided.
 */
import xxhash from 'xxhash-wasm';

/** A fingerprint as two unsigned 32-bit halves (a JS number holds 53 bits, not 64). */
export interface Fingerprint {
  readonly hi: number;
  readonly lo: number;
}

export type Hasher = (encoding: string) => Fingerprint;

const MASK32 = 0xffffffffn;

let api: Awaited<ReturnType<typeof xxhash>> | undefined;

export async function createHasher(): Promise<Hasher> {
  api ??= await xxhash();
  const { h64 } = api;
  return (encoding) => {
    const h = h64(encoding);
    return { hi: Number(h >> 32n), lo: Number(h & MASK32) };
  };
}

/**
 * TLC's "optimistic" estimate of the probability that some fingerprint
 * collision went unnoticed: n distinct states, t states generated in all
 * (each of the t - n revisits could have matched a different state).
 */
export function collisionProbability(distinct: number, generated: number): number {
  return (distinct * Math.max(0, generated - distinct)) / 2 ** 64;
}
