// The vitest configuration Stryker uses (stryker.config.mjs; `npm run mutate`), not `npm test`'s.
//
// - Property tests get a fixed seed (test/support/stryker-setup.ts), or Stryker's per-test selection never finds them.
// - The slow end-to-end files are left out: every one of them still runs in `npm test`, but rerunning them for each
//   mutant they cover would take the run far past an hour on 2 cores. They run a separate process (the CLI, the
//   packed package, two processes, a SIGKILLed writer, headless Chromium) whose code Stryker neither instruments
//   per test nor sees covering anything, or build a million-meta fixture (time-range-scale, ~25 s per run), or run
//   for a fixed wall time (stress). What they check in-process is covered by the other suites and the
//   test/*.kills.test.ts files.
// - Only the suites of the area under test run (scripts/mutation-areas.mjs, passed by stryker.config.mjs in
//   ROCKVISOR_MUTATE_SUITES), in the order the area lists them: quick and targeted first. A mutant Stryker cannot
//   attribute to a test ("static") reruns the area's suites until one fails, so the first ones should kill quickly.
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BaseSequencer, type TestSpecification } from 'vitest/node'
import { defineConfig } from 'vitest/config'
import base from './vitest.config.js'

export const slowFiles = [
  'test/package.test.ts',
  'test/cli.test.ts',
  'test/inspector.e2e.test.ts',
  'test/two-process.test.ts',
  'test/crash.test.ts',
  'test/stress.test.ts',
  'test/time-range-scale.test.ts',
]

const listed = process.env.ROCKVISOR_MUTATE_SUITES
if (listed === undefined || listed === '') {
  throw new Error('vitest.stryker.config.ts is for `npm run mutate` only: ROCKVISOR_MUTATE_SUITES names the suites to run')
}
const suites = listed.split(',')
for (const suite of suites) {
  if (slowFiles.includes(suite)) throw new Error(`${suite} is too slow for mutation runs (vitest.stryker.config.ts)`)
}

class ListedOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const key = (s: TestSpecification) => relative(s.project.config.root, s.moduleId).split('\\').join('/')
    return [...files].sort((a, b) => suites.indexOf(key(a)) - suites.indexOf(key(b)))
  }
}

// npm test's setup file records machine transitions for its coverage check: no use here, and it would load the whole
// library before every file, also before the suites that only need the machines.
const { setupFiles: _transitionCoverage, ...test } = base.test ?? {}

export default defineConfig({
  // The property tests' `@fast-check/vitest` is test/support/fast-check-vitest.ts here: the package costs 1.2 s of CPU
  // to load, in every run that reaches a property test (that file says what it keeps of the package).
  resolve: { alias: { '@fast-check/vitest': fileURLToPath(new URL('./test/support/fast-check-vitest.ts', import.meta.url)) } },
  test: {
    ...test,
    include: suites,
    setupFiles: ['test/support/stryker-setup.ts'],
    sequence: { sequencer: ListedOrder },
    // The files of one run share a module graph: the mutated code loads once per run, not once per file (Stryker
    // runs a mutant against the files of its covering tests, often a dozen; each import of the library costs about
    // a second). Runs stay apart: vitest starts a new worker thread for every run, so each mutant's run loads the
    // code afresh, and a mutant in code that runs when a module loads is switched on there. The setup file loads the
    // mutated modules before any test, so that Stryker counts that code's mutants as static (every suite runs them),
    // not as covered by whichever test happened to import the module first.
    isolate: false,
    // A mutant that makes a test hang (a primary that never opens, a read that waits for ever on the index's clock)
    // fails that test here, not at Stryker's timeout of the whole run (1.5 times its covering tests' time plus
    // 10 s), after which Stryker also starts a new runner. The slowest test takes 1.6 s alone and about twice that
    // beside a mutation run: a test that now takes 5 s is as good as hung, and its mutant counts as detected (as a
    // Stryker timeout would). A mutant that only slows a test to about 5 s may be detected in one run and not in the
    // next. 15 s before: the run of src/shard.ts:895-1000 took 4 min 57 s with it, 4 min 4 s with 5 s (TESTING.md,
    // "2026-11-27, third session"). Tests that set their own timeout keep it.
    testTimeout: 5_000,
    // A mutant that hangs a test mostly hangs its cleanup too (the index's close() waits for what the mutant left
    // pending): with 15 s for hooks, a hung test took 5 s + 15 s, past Stryker's limit for most mutants (1.5 times
    // their covering tests' time + 10 s), so Stryker counted a timeout and started a new runner (2 to 3 s more). At 4 s
    // vitest fails it first, in 9 s: src/shard.ts:1260-1380 took 4 min 11 s instead of 7 min 19 s, with 46 of Stryker's
    // timeouts replaced by kills and the same 17 survivors (TESTING.md, "2026-11-27, fourth session"). Hooks here
    // create temporary directories and open or close indexes: tens of milliseconds.
    hookTimeout: 4_000,
  },
})
