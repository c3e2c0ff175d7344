/**
 * Environment entries for a child process that runs this project's code, so that under mutation testing
 * (`npm run mutate`) the child runs the mutant under test too. Empty under `npm test`.
 *
 * Stryker switches a mutant on inside the test process only (`globalThis.__stryker__.activeMutant`). Its
 * instrumented code, loaded by a child from the same sandbox, reads the mutant to switch on from the environment
 * variable `__STRYKER_ACTIVE_MUTANT__`. Without it, a test that runs the index in a child process tests the
 * unmutated code there, and a mutant only that test could detect survives.
 */
export const mutantEnv = (): Record<string, string> => {
  const active = (globalThis as { __stryker__?: { activeMutant?: unknown } }).__stryker__?.activeMutant
  return active === undefined ? {} : { __STRYKER_ACTIVE_MUTANT__: String(active) }
}
