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
  plugins: ['@stryker-mutator/vitest-runner', './scripts/stryker-types.mjs'],
  // A mutant that does not type-check (an unknown action, guard or actor name in a machine, say) is a compile error,
  // not a surviving mutant, and costs no test run. scripts/stryker-types.mjs checks one in 50 to 900 ms, where
  // @stryker-mutator/typescript-checker rebuilt the project for each (1 to 2 s; 45 min for src/shard.ts alone).
  checkers: ['mutant-types'],
  tsconfigFile: 'tsconfig.stryker.json',
  vitest: { configFile: 'vitest.stryker.config.ts', related: false },
  mutate: areas[area].mutate,
  coverageAnalysis: 'perTest',
  // Day-to-day runs only test the mutants whose code or covering tests changed since the area's recorded run
  // (`npm run mutate -- --force` retests everything).
  incremental: true,
  incrementalFile: `reports/mutation/${area}.incremental.json`,
  // Four processes on 2 cores: a test runner waits for RocksDB and timers much of its time (two kept 1.15 cores busy).
  // src/shard.ts:895-1000 took 3 min 28 s with three, 4 min 4 s with two; src/shard.ts:1260-1380 took 3 min 21 s with
  // four, 3 min 51 s with three, every mutant with the same status (TESTING.md, "2026-11-27, fourth session"). The
  // first moments, while the checker goes through the mutants, Stryker gives two of them to checkers.
  // The shard area still left a core idle at four (src/shard.ts:1260-1380: 1.15 cores busy): six took that range
  // from 2 min 47 s to 2 min 29 s (eight: 2 min 26 s), with the same survivors. The machines and runtime areas keep
  // both cores busy at four: at six, actors/reader.ts took 2 min 31 s instead of 2 min 17 s, and src/runtime.ts:380-520
  // 5 min 19 s instead of 5 min 25 s, with 9 of its 36 survivors turned into timeouts (runs that slow, not mutants
  // that hang). TESTING.md, "2026-11-27, fifth session". An area says its number in scripts/mutation-areas.mjs.
  concurrency: areas[area].concurrency ?? 4,
  // A mutant times out at timeoutFactor times its covering tests' time in the first run (one process, alone) plus
  // timeoutMS. A survivor of the shard area covered by ~250 tests runs ~20 s alone, and longer beside five others: at
  // six processes and 1.5, 33 of the area's survivors came out as timeouts (TESTING.md, "2026-11-27, fifth session").
  // A mutant that hangs a test is failed by vitest within about 9 s (vitest.stryker.config.ts) whatever the factor.
  timeoutFactor: areas[area].timeoutFactor ?? 1.5,
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
