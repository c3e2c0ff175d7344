// Mutation testing (`npm run mutate`; not part of `npm test`). See TESTING.md, "Mutation testing".
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.stryker.config.ts', related: false },
  mutate: [
    'actors/**/*.ts',
    'src/shard.ts',
    'src/store.ts',
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
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  ignorePatterns: ['dist', 'data', 'reports', '.coverage', 'bench/last-run*'],
  thresholds: { high: 90, low: 85, break: null },
}
