/**
 * Invariant: the supervision arithmetic of actors/policy.ts, alone. `addRestart` allows a restart exactly when, counting
 * it, at most maxRestarts restarts fall in the sliding window (now - withinMs, now], and keeps exactly the restarts
 * inside the window; `backoffDelay` lies in [0, maxMs], never above the un-jittered delay, starts at minMs, reaches
 * maxMs and never decreases from one attempt to the next without jitter; `shouldRestart` follows OTP's restart types.
 */
import { fc, test } from '@fast-check/vitest'
import { describe, expect } from 'vitest'
import { addRestart, backoffDelay, shouldRestart, type Backoff, type Intensity } from '../actors/policy.js'

const intensityArb: fc.Arbitrary<Intensity> = fc.record({ maxRestarts: fc.nat(20), withinMs: fc.integer({ min: 1, max: 100_000 }) })
const backoffArb: fc.Arbitrary<Backoff> = fc
  .record({
    minMs: fc.nat(10_000),
    span: fc.nat(100_000),
    factor: fc.double({ min: 1, max: 4, noNaN: true }),
    jitter: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map(({ minMs, span, factor, jitter }) => ({ minMs, maxMs: minMs + span, factor, jitter }))
/** Increasing restart times: gaps between consecutive restarts. */
const timesArb = fc.array(fc.nat(20_000), { maxLength: 60 }).map((gaps) => {
  let t = 1_000_000
  return gaps.map((g) => (t += g))
})

/** The rule, stated independently: restart i is allowed iff at most maxRestarts restarts (itself included) fall in (t_i - T, t_i]. */
const allowedByRule = (times: number[], i: number, { maxRestarts, withinMs }: Intensity): boolean =>
  times.slice(0, i + 1).filter((t) => t > times[i]! - withinMs).length <= maxRestarts

describe('addRestart', () => {
  test.prop([intensityArb, timesArb])('should allow exactly the restarts the sliding-window rule allows', (intensity, times) => {
    let history: readonly number[] = []
    times.forEach((t, i) => {
      const d = addRestart(history, t, intensity)
      expect(d.allowed).toBe(allowedByRule(times, i, intensity))
      history = d.history
    })
  })

  test.prop([intensityArb, timesArb])('should keep exactly the restarts inside the window, so history stays bounded', (intensity, times) => {
    let history: readonly number[] = []
    times.forEach((t, i) => {
      history = addRestart(history, t, intensity).history
      expect(history).toEqual(times.slice(0, i + 1).filter((u) => u > t - intensity.withinMs))
    })
  })

  test.prop([intensityArb, fc.integer({ min: 0, max: 1e9 })])('should allow maxRestarts restarts at one instant and refuse the next', (intensity, now) => {
    let history: readonly number[] = []
    for (let i = 0; i < intensity.maxRestarts; i++) {
      const d = addRestart(history, now, intensity)
      expect(d.allowed).toBe(true)
      history = d.history
    }
    expect(addRestart(history, now, intensity).allowed).toBe(false)
  })

  test.prop([intensityArb, timesArb])('should forgive everything after a quiet period as long as the window', (intensity, times) => {
    const last = times.at(-1) ?? 0
    const history = times.reduce<readonly number[]>((h, t) => addRestart(h, t, intensity).history, [])
    expect(addRestart(history, last + intensity.withinMs, intensity).allowed).toBe(intensity.maxRestarts >= 1)
  })
})

describe('backoffDelay', () => {
  test.prop([fc.nat(64), backoffArb, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true })])(
    'should stay within [0, maxMs] and never exceed the un-jittered delay',
    (attempt, b, r) => {
      const d = backoffDelay(attempt, b, r)
      const base = Math.min(b.maxMs, b.minMs * b.factor ** attempt)
      expect(d).toBeGreaterThanOrEqual(0)
      expect(d).toBeLessThanOrEqual(b.maxMs)
      expect(d).toBeLessThanOrEqual(Math.round(base))
      expect(d).toBeGreaterThanOrEqual(Math.floor(base * (1 - b.jitter)))
    },
  )

  test.prop([fc.nat(63), backoffArb])('should not decrease from one attempt to the next without jitter', (attempt, b) => {
    const noJitter = { ...b, jitter: 0 }
    expect(backoffDelay(attempt + 1, noJitter, 0.5)).toBeGreaterThanOrEqual(backoffDelay(attempt, noJitter, 0.5))
  })

  test.prop([backoffArb])('should start at minMs and reach maxMs', (b) => {
    const noJitter = { ...b, jitter: 0 }
    expect(backoffDelay(0, noJitter, 0)).toBe(Math.round(b.minMs))
    if (b.factor >= 1.5 && b.minMs > 0) expect(backoffDelay(200, noJitter, 0)).toBe(b.maxMs)
  })

  test.prop([fc.nat(20), backoffArb, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true })])(
    'should give a shorter delay for a larger random draw (jitter only shortens)',
    (attempt, b, r1, r2) => {
      const [lo, hi] = r1 <= r2 ? [r1, r2] : [r2, r1]
      expect(backoffDelay(attempt, b, hi)).toBeLessThanOrEqual(backoffDelay(attempt, b, lo))
    },
  )
})

describe('shouldRestart', () => {
  test.prop([fc.boolean()])('should follow the OTP restart types', (failed) => {
    expect(shouldRestart('permanent', failed)).toBe(true)
    expect(shouldRestart('transient', failed)).toBe(failed)
    expect(shouldRestart('temporary', failed)).toBe(false)
  })
})
