// Mutation testing (`npm run mutate`; not part of `npm test`). See TESTING.md, "Mutation testing".
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
  mutate: [
    'actors/**/*.ts',
    'src/shard.ts',
    'src/store.ts',
    'src/msgids.ts',
    'src/keys.ts',
    'src/runtime.ts',
    'src/tokens.ts',
  ],
  coverageAnalysis: 'perTest',
  // Day-to-day runs only test the mutants whose code or covering tests changed since the recorded run
  // (`npm run mutate -- --force` retests everything).
  incremental: true,
  incrementalFile: 'reports/mutation/incremental.json',
  concurrency: 2,
  timeoutMS: 10_000,
  // The first (unmutated) run takes 2 to 3.5 min on the shared 2-core machine; at load 9 it once passed Stryker's
  // default limit of 5 min and the whole run failed before testing any mutant.
  dryRunTimeoutMinutes: 15,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  ignorePatterns: ['dist', 'data', 'reports', '.coverage', 'bench/last-run*'],
  thresholds: { high: 90, low: 85, break: null },
}
