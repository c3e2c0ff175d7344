// Runs before every test file under mutation testing only (vitest.stryker.config.ts), never under `npm test`.
import { chmodSync } from 'node:fs'
import { basename } from 'node:path'
import fc from 'fast-check'
import { beforeEach } from 'vitest'

// Once a test of a run fails, the mutant is detected, and Stryker's vitest runner stops at the first failure (`bail`):
// vitest then skips the tests of the files that follow, but still imports each of them, and the first import of the
// library in a run costs seconds (4.7 s for property-tests/creation.property.test.ts in the machines area, where the
// setup below loads only the machines). The setup of each later file throws instead, before its file is imported:
// the file fails with this error, the failed test has already made the run a kill, and a new run is a new worker
// thread (vitest.stryker.config.ts), whose global starts clean. Unmutated runs and survivors never fail a test, so
// they never take this path.
const run = globalThis as { rockvisorRunFailed?: string }
if (run.rockvisorRunFailed !== undefined) {
  throw new Error(`not run: "${run.rockvisorRunFailed}" failed earlier in this run (vitest's bail under mutation testing)`)
}
beforeEach(({ task, onTestFailed }) => onTestFailed(() => void (run.rockvisorRunFailed ??= task.name)))

// @fast-check/vitest names each property test `<label> (with seed=<seed>)`, and draws that seed at random when the
// test is defined. Stryker records which tests cover which mutant by test name in its dry run, then selects them by
// name for each mutant: with a fresh random seed in every run the names never match again, so no property test ever
// ran against a mutant. A fixed global seed makes the names (and the runs) the same every time.
export const strykerSeed = 20_261_126
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: strykerSeed })

// Stryker copies the project into `.stryker-tmp/sandbox-XXXXXX`, made by mkdtemp (mode 0700): the permission test's
// child process, run as the unprivileged user nobody, could not even load its sources from there. A work tree is
// world-readable; so is the sandbox, from here on.
if (basename(process.cwd()).startsWith('sandbox-')) chmodSync(process.cwd(), 0o755)

// With vitest.stryker.config.ts's `isolate: false` the files of a run share their modules, and a module loads in the
// first test that imports it: Stryker would count the mutants of its top-level code as covered by that test alone
// (test/modules.kills.test.ts imports every mutated module inside a test) and run no other test against them. Loaded
// here, before any test, that code's mutants are static: every suite of the area runs against each. A module that
// throws while loading is left to modules.kills, whose import of it inside a test fails that test.
await Promise.allSettled(process.env.ROCKVISOR_MUTATE_AREA === 'machines' ? [import('../../actors/index.js')] : [import('../../src/index.js'), import('../../actors/index.js')])
