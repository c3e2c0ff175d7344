// Runs before every test file under mutation testing only (vitest.stryker.config.ts), never under `npm test`.
import { chmodSync } from 'node:fs'
import { basename } from 'node:path'
import fc from 'fast-check'

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
