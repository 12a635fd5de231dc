/**
 * 64-bit state fingerprints, as TLC and Spin's hash-compact store them: the
 * store keeps fingerprints, not states, and the report gives the probability
 * that two distinct states collided. The fingerprint itself is computed by
 * the state codec (codec.ts) over a state's canonical words.
 */

/** A fingerprint as two unsigned 32-bit halves (a JS number holds 53 bits, not 64). */
export interface Fingerprint {
  readonly hi: number;
  readonly lo: number;
}

export const sameFingerprint = (a: Fingerprint, b: Fingerprint): boolean => a.hi === b.hi && a.lo === b.lo;

/**
 * TLC's "optimistic" estimate of the probability that some fingerprint
 * collision went unnoticed: n distinct states, t states generated in all
 * (each of the t - n revisits could have matched a different state).
 */
export function collisionProbability(distinct: number, generated: number): number {
  return (distinct * Math.max(0, generated - distinct)) / 2 ** 64;
}
