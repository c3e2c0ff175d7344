/**
 * The stand-in for `@fast-check/vitest` that mutation runs use (test/support/fast-check-vitest.ts) runs a property
 * test as the package does: the same test name, the same runs of the same values, a failure for a thrown error or a
 * `false`, the parameters and the timeout passed on.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { propOf } from './support/fast-check-vitest.js'

type Defined = { name: string; run: () => unknown; timeout: number | undefined }
const defining = () => {
  const defined: Defined[] = []
  const define = ((name: string, run: () => unknown, timeout?: number) => void defined.push({ name, run, timeout })) as never
  return { defined, prop: propOf(define) }
}

describe('the stand-in for @fast-check/vitest under mutation runs', () => {
  it('should name the test by its label and seed, and run the body once per run with the values fast-check draws', async () => {
    const { defined, prop } = defining()
    const seen: [number, string][] = []
    prop([fc.nat(100), fc.string()], { seed: 42, numRuns: 25 })('a label', (n, s) => void seen.push([n, s]), 1_234)
    expect(defined.map(({ name, timeout }) => ({ name, timeout }))).toEqual([{ name: 'a label (with seed=42)', timeout: 1_234 }])
    await defined[0]!.run()
    // The values fast-check draws for that seed: the same as a property run with fc.assert directly.
    const direct: [number, string][] = []
    await fc.assert(fc.asyncProperty(fc.nat(100), fc.string(), async (n, s) => void direct.push([n, s])), { seed: 42, numRuns: 25 })
    expect(seen).toEqual(direct)
    expect(seen).toHaveLength(25)
  })

  it("should take the seed of fast-check's global configuration when the test gives none", async () => {
    const before = fc.readConfigureGlobal()
    fc.configureGlobal({ ...before, seed: 7 })
    try {
      const { defined, prop } = defining()
      prop([fc.nat()])('global', () => {})
      expect(defined[0]!.name).toBe('global (with seed=7)')
    } finally {
      fc.configureGlobal(before)
    }
  })

  it('should fail the test when the body throws, rejects or returns false, and pass it when the body returns nothing', async () => {
    const { defined, prop } = defining()
    prop([fc.nat(10)], { seed: 1 })('throws', (n) => {
      if (n > 3) throw new Error('too big')
    })
    prop([fc.nat(10)], { seed: 1 })('rejects', async (n) => {
      if (n > 3) throw new Error('too big')
    })
    prop([fc.nat(10)], { seed: 1 })('false', (n) => n <= 3)
    prop([fc.nat(10)], { seed: 1 })('passes', () => {})
    const outcomes = await Promise.all(defined.map(({ run }) => Promise.resolve().then(run).then(() => 'passed', () => 'failed')))
    expect(outcomes).toEqual(['failed', 'failed', 'failed', 'passed'])
  })
})
