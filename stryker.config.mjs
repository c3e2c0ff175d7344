// Mutation testing (`npm run mutate`; not part of `npm test`). See TESTING.md, "Mutation testing".
//
// One Stryker run per area (scripts/mutation-areas.mjs): ROCKVISOR_MUTATE_AREA names it, and scripts/mutate.mjs runs
// the areas one after another. The area's suites reach the test runners through ROCKVISOR_MUTATE_SUITES (the runners
// are child processes of this one and inherit its environment), read by vitest.stryker.config.ts.
import { areas, suitesOf } from './scripts/mutation-areas.mjs'

const area = process.env.ROCKVISOR_MUTATE_AREA
if (area === undefined || areas[area] === undefined) {
  throw new Error(
    `stryker.config.mjs: set ROCKVISOR_MUTATE_AREA to one of ${Object.keys(areas).join(', ')}, or run \`npm run mutate\``,
  )
}
process.env.ROCKVISOR_MUTATE_SUITES = suitesOf(area).join(',')

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner', '@stryker-mutator/typescript-checker'],
  // A mutant that does not type-check (an unknown action, guard or actor name in a machine, say) is a compile error,
  // not a surviving mutant, and costs no test run. Most of those sit in the machines' definitions, which run when a
  // module loads: Stryker cannot tell which tests cover such "static" mutants and runs every test for each.
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.stryker.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  vitest: { configFile: 'vitest.stryker.config.ts', related: false },
  mutate: areas[area].mutate,
  coverageAnalysis: 'perTest',
  // Day-to-day runs only test the mutants whose code or covering tests changed since the area's recorded run
  // (`npm run mutate -- --force` retests everything).
  incremental: true,
  incrementalFile: `reports/mutation/${area}.incremental.json`,
  concurrency: 2,
  timeoutMS: 10_000,
  // The first (unmutated) run takes 2 to 3.5 min on the shared 2-core machine; at load 9 it once passed Stryker's
  // default limit of 5 min and the whole run failed before testing any mutant.
  dryRunTimeoutMinutes: 15,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${area}.html` },
  jsonReporter: { fileName: `reports/mutation/${area}.json` },
  ignorePatterns: ['dist', 'data', 'reports', '.coverage', 'bench/last-run*'],
  thresholds: { high: 90, low: 85, break: null },
}
