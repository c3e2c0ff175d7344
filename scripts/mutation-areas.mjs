// The areas of a mutation run (`npm run mutate`; see TESTING.md, "Mutation testing").
//
// Each area is one Stryker run: the files it mutates and the suites that test them. Running an area against its own
// suites, rather than every mutant against the whole test set, is what makes the whole run fit on 2 cores:
// - a mutant Stryker cannot attribute to a test ("static": code that runs when a module loads, in a `beforeAll`, or
//   after its test ended) reruns every suite of the run until one fails; with an area's suites that is seconds, with
//   all of them minutes;
// - the first (unmutated) run of each area takes seconds instead of minutes.
// A suite left out of an area can only miss kills, never add one: an area's score is a lower bound of what the whole
// test set would score. Every suite still runs in `npm test`.

/** The suites every area runs: a mutant that breaks a module's top level fails there (TESTING.md). */
const always = ['test/modules.kills.test.ts']

/**
 * name -> area, in the order `npm run mutate` runs them. `concurrency`: Stryker's processes for the area (4 unless
 * given), `timeoutFactor`: Stryker's (1.5 unless given); stryker.config.mjs says why.
 * @type {Record<string, { mutate: string[], suites: string[], concurrency?: number, timeoutFactor?: number }>}
 */
export const areas = {
  machines: {
    mutate: ['actors/**/*.ts'],
    suites: [
      'test/actors.kills.test.ts',
      'test/machines.test.ts',
      'test/diagrams.test.ts',
      'property-tests/policy.property.test.ts',
      'property-tests/creation.property.test.ts',
      'test/supervision.test.ts',
      'test/runtime.kills.test.ts',
    ],
  },
  keys: {
    mutate: ['src/keys.ts', 'src/tokens.ts'],
    suites: ['test/keys.kills.test.ts', 'property-tests/keys.property.test.ts', 'test/bad-input.test.ts'],
  },
  store: {
    mutate: ['src/store.ts'],
    suites: ['test/store.kills.test.ts', 'property-tests/store.model.test.ts', 'test/msgids.test.ts', 'test/runtime.kills.test.ts'],
  },
  msgids: {
    mutate: ['src/msgids.ts'],
    suites: ['test/msgids.kills.test.ts', 'test/msgids.test.ts'],
  },
  logs: {
    mutate: ['src/wal.ts', 'src/wal-tail.ts', 'src/native.ts'],
    suites: ['test/wal.test.ts', 'test/native.test.ts'],
  },
  // The memory of recent writes (seventh session: the time windows it tells untouched, for range reads and scans).
  recent: {
    mutate: ['src/recent.ts'],
    suites: ['property-tests/recent.property.test.ts', 'test/recent.test.ts', 'property-tests/fresh.model.test.ts', 'test/wal.test.ts'],
  },
  // The engine over the binding (eighth session: scans read a chunk at a time) and the scan's iterator.
  engine: {
    mutate: ['src/engine.ts', 'src/opened.ts'],
    suites: [
      'test/engine.test.ts',
      'test/opened.test.ts',
      'test/native.test.ts',
      'test/store.kills.test.ts',
      'property-tests/store.model.test.ts',
      'test/bounds.test.ts',
      'test/coalescing.test.ts',
      'test/reads.kills.test.ts',
    ],
  },
  runtime: {
    mutate: ['src/runtime.ts'],
    suites: [
      'test/runtime.kills.test.ts',
      'test/reads.kills.test.ts',
      'test/shard.kills.test.ts',
      'test/supervision.test.ts',
      'test/integrity.test.ts',
      'test/bounds.test.ts',
      'test/failures.test.ts',
      'test/freshness.test.ts',
      'test/worker.test.ts',
    ],
  },
  shard: {
    mutate: ['src/shard.ts'],
    concurrency: 6,
    timeoutFactor: 3,
    suites: [
      'test/shard.kills.test.ts',
      'test/reads.kills.test.ts',
      'test/waiters.kills.test.ts',
      'test/freshness.test.ts',
      'test/coalescing.test.ts',
      'test/fairness.test.ts',
      'test/recent.test.ts',
      'test/msgids.test.ts',
      'test/bounds.test.ts',
      'test/supervision.test.ts',
      'test/failures.test.ts',
      'test/integrity.test.ts',
      'test/runtime.kills.test.ts',
      'property-tests/index.model.test.ts',
      'property-tests/fresh.model.test.ts',
      // The reader-mode tail (sixth session): its survivors in the run without this suite were mostly its code.
      'test/wal.test.ts',
    ],
  },
}

/** The suites of an area, the ones every area runs first. */
export const suitesOf = (name) => {
  const area = areas[name]
  if (area === undefined) throw new Error(`no mutation area named ${JSON.stringify(name)}: ${Object.keys(areas).join(', ')}`)
  return [...always, ...area.suites]
}
