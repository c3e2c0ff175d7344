// The vitest configuration Stryker uses (stryker.config.mjs; `npm run mutate`), not `npm test`'s.
//
// - Property tests get a fixed seed (test/support/stryker-setup.ts), or Stryker's per-test selection never finds them.
// - The slow end-to-end files are left out: every one of them still runs in `npm test`, but rerunning them for each
//   mutant they cover would take the run far past an hour on 2 cores. They run a separate process (the CLI, the
//   packed package, two processes, a SIGKILLed writer, headless Chromium) whose code Stryker neither instruments
//   per test nor sees covering anything, or build a million-meta fixture (time-range-scale, ~25 s per run), or run
//   for a fixed wall time (stress). What they check in-process is covered by the other suites and the
//   test/*.kills.test.ts files.
// - Files run fast and targeted first. About half of the mutants are "static": they sit in the machines' definitions,
//   which run when a module loads, so Stryker cannot tell which tests cover them and runs every test for each, stopping
//   at the first failure. With the quick machine and policy suites first, most of those die within seconds instead
//   of after the slowest files.
import { relative } from 'node:path'
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

/** Run first, in this order (quick, and aimed at the mutated files). Files not named run between these and `last`. */
const first = [
  /\.kills\.test\.ts$/,
  /^test\/msgids\.test\.ts$/,
  /^test\/machines\.test\.ts$/,
  /^property-tests\/policy\.property\.test\.ts$/,
  /^test\/supervision\.test\.ts$/,
  /^property-tests\/keys\.property\.test\.ts$/,
  /^test\/freshness\.test\.ts$/,
  /^test\/coalescing\.test\.ts$/,
  /^test\/engine\.test\.ts$/,
  /^test\/bounds\.test\.ts$/,
  /^test\/bad-input\.test\.ts$/,
  /^test\/integrity\.test\.ts$/,
]
/** Run last, slowest at the end (seconds per file, measured). */
const last = [
  /^test\/seed\.test\.ts$/,
  /^property-tests\/creation\.property\.test\.ts$/,
  /^property-tests\/index\.model\.test\.ts$/,
  /^test\/options\.test\.ts$/,
  /^test\/failures\.test\.ts$/,
  /^property-tests\/store\.model\.test\.ts$/,
  /^test\/layout\.test\.ts$/,
]

const rank = (file: string): number => {
  const f = first.findIndex((r) => r.test(file))
  if (f >= 0) return f
  const l = last.findIndex((r) => r.test(file))
  return l >= 0 ? 1_000 + l : 500
}

class FastFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const key = (s: TestSpecification) => relative(s.project.config.root, s.moduleId).split('\\').join('/')
    return [...files].sort((a, b) => rank(key(a)) - rank(key(b)) || (key(a) < key(b) ? -1 : 1))
  }
}

// npm test's setup file records machine transitions for its coverage check: no use here, and it would load the whole
// library before every file, also before the suites that only need the machines.
const { setupFiles: _transitionCoverage, ...test } = base.test ?? {}

export default defineConfig({
  test: {
    ...test,
    exclude: ['**/node_modules/**', ...slowFiles],
    setupFiles: ['test/support/stryker-setup.ts'],
    sequence: { sequencer: FastFirst },
  },
})
