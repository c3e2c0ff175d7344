// What the suites use of `@fast-check/vitest` (`fc`, and `test.prop` / `it.prop` with an array of arbitraries), for
// mutation runs only: vitest.stryker.config.ts resolves the package here; `npm test` runs the package itself.
//
// Loading the package costs 1.2 to 1.3 s of CPU (it wraps every chain of vitest's `test` API: `test.skip.only...`),
// and a mutation run pays it in every run that reaches a property test, since each run is a new worker thread
// (TESTING.md, "2026-11-27, fifth session"). A property test defined here runs as the package runs it: one vitest test
// named `<label> (with seed=<seed>)`, the seed from the test's parameters or else fast-check's global configuration
// (which test/support/stryker-setup.ts fixes), and `fc.assert` over `fc.asyncProperty` of the same arbitraries and
// the same parameters.
// Unlike the package, it does not rerun the suite's `beforeEach`/`afterEach` hooks between the runs of a property: no
// property test file of ours registers any (test/support/stryker-setup.ts's, which only notes a failed test, runs once
// per test either way). test/fast-check-vitest.test.ts checks it against fast-check's own runs.
import fc from 'fast-check'
import { it as vitestIt, test as vitestTest } from 'vitest'

type Prop = <Ts extends unknown[]>(
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  params?: fc.Parameters<Ts>,
) => (label: string, body: (...args: Ts) => unknown, timeout?: number) => void

/** `test.prop` over `define` (vitest's `test` or `it`). Exported for test/fast-check-vitest.test.ts. */
export const propOf =
  (define: typeof vitestTest): Prop =>
  (arbitraries, params) =>
  (label, body, timeout) => {
    const seed = params?.seed ?? fc.readConfigureGlobal().seed
    if (seed === undefined) throw new Error('fast-check-vitest (mutation runs): no seed; test/support/stryker-setup.ts fixes the global one')
    const asyncProperty = fc.asyncProperty as unknown as (...parts: unknown[]) => fc.IAsyncProperty<unknown[]>
    // As the package: the body's result is the predicate's (a body that returns false fails the property).
    const property = asyncProperty(...arbitraries, (...args: unknown[]) => Promise.resolve((body as (...a: unknown[]) => unknown)(...args)))
    define(`${label} (with seed=${seed})`, () => fc.assert(property, { ...(params as fc.Parameters<unknown[]> | undefined), seed }), timeout)
  }

// `test(...)` and `it(...)` are vitest's own; of their chains (`test.skip`, `test.each`...) only `.prop` is added, and
// the suites use no other under this name.
const withProp = (define: typeof vitestTest) =>
  Object.assign((...args: Parameters<typeof vitestTest>) => define(...args), { prop: propOf(define) })
export const test = withProp(vitestTest)
export const it = withProp(vitestIt)
export { fc }
