/**
 * Invariant: `openIndex` accepts exactly the documented options. Every option object made invalid by one mutation of
 * a valid one (a wrong type, a number out of its range, an unknown key at any depth, two options that contradict
 * each other) is rejected with `InvalidInput` whose `field` is the path of the mutated option, before anything is
 * created or opened: the root does not exist afterwards and the engine was never asked to open anything. Every
 * valid option object is accepted (and resolves to the values it gave).
 *
 * The ranges and rules are stated here independently of src/options.ts, from the README's option table.
 */
import { fc, test } from '@fast-check/vitest'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidInput, ManualClock, openIndex, rocksEngine, systemClock, type Engine, type IndexOptions } from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { removeDir, tempDir } from '../test/support/tmp.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const MiB = 1024 * 1024
/** Memtable bytes budgeted per record: flushEveryRecords * 4 KiB <= rocksdb.primary.writeBufferSize. */
const perRecord = 4 * 1024
const defaultWriteBufferSize = 64 * MiB
const defaultFlushEveryRecords = 16_384
/** Default backoff caps (README): a child spec given only `minMs` above them contradicts them. */
const defaultMaxMs = { primary: 10_000, readers: 5_000 } as const

type Interval = readonly [number, number]

/** One option that is a value (not an object of options): how to make a valid value and an invalid one. */
interface Leaf {
  readonly path: string
  readonly valid: fc.Arbitrary<unknown>
  readonly invalid: fc.Arbitrary<unknown>
  /** The nearest invalid numbers, just outside each end of the range (checked one by one, below). */
  readonly edges?: readonly number[]
}

/** Values of the wrong type for a number, a boolean, a string or a literal (never `undefined`: that means omitted). */
const notANumber = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.boolean(),
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
  fc.constant(() => 1),
)
const notAnObject = fc.oneof(fc.string({ maxLength: 50 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.nat(), { maxLength: 3 }))

/** An integer option allowed in any of `intervals`. */
const intLeaf = (path: string, ...intervals: readonly Interval[]): Leaf => {
  const allowed = (v: number) => Number.isSafeInteger(v) && intervals.some(([lo, hi]) => v >= lo && v <= hi)
  const edges = intervals.flatMap(([lo, hi]) => [lo - 1, hi + 1]).filter((v) => !allowed(v))
  const outside = fc
    .oneof(
      fc.constantFrom(...edges, ...intervals.flatMap(([lo, hi]) => [lo - 1_000, hi * 2 + 1])),
      fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, -0.5),
    )
    .filter((v) => !allowed(v))
  return { path, valid: fc.oneof(...intervals.map(([min, max]) => fc.integer({ min, max }))), invalid: fc.oneof(outside, notANumber), edges }
}

/** A finite number in [min, max] (max may be Infinity: unbounded above). */
const numberLeaf = (path: string, min: number, max: number): Leaf => ({
  path,
  valid: fc.double({ min, max: Math.min(max, 1e6), noNaN: true }),
  invalid: fc.oneof(
    fc.double({ noNaN: true }).filter((d) => !(d >= min && d <= max && Number.isFinite(d))),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
    notANumber,
  ),
})

const literalLeaf = (path: string, values: readonly string[]): Leaf => ({
  path,
  valid: fc.constantFrom(...values),
  invalid: fc.oneof(fc.string({ maxLength: 300 }).filter((s) => !values.includes(s)), fc.integer(), fc.boolean(), fc.constant(null)),
})

const booleanLeaf = (path: string): Leaf => ({
  path,
  valid: fc.boolean(),
  invalid: fc.oneof(fc.constantFrom('yes', 'true', 0, 1, null), fc.string({ maxLength: 10 }), fc.integer()),
})

const childLeaves = (child: 'primary' | 'readers'): Leaf[] => {
  const p = `supervision.${child}`
  return [
    literalLeaf(`${p}.restart`, child === 'primary' ? ['permanent', 'transient'] : ['permanent', 'transient', 'temporary']),
    intLeaf(`${p}.intensity.maxRestarts`, [0, 10_000]),
    intLeaf(`${p}.intensity.withinMs`, [1, DAY]),
    intLeaf(`${p}.backoff.minMs`, [0, HOUR]),
    intLeaf(`${p}.backoff.maxMs`, [0, HOUR]),
    numberLeaf(`${p}.backoff.factor`, 1, Number.POSITIVE_INFINITY),
    numberLeaf(`${p}.backoff.jitter`, 0, 1),
    intLeaf(`${p}.resetAfterMs`, [0, DAY]),
  ]
}

const rocksdbLeaves = (role: 'primary' | 'reader'): Leaf[] => [
  role === 'primary' ? intLeaf('rocksdb.primary.maxOpenFiles', [-1, -1], [10, 1_000_000]) : intLeaf('rocksdb.reader.maxOpenFiles', [-1, -1]),
  intLeaf(`rocksdb.${role}.maxBackgroundJobs`, [1, 64]),
  intLeaf(`rocksdb.${role}.writeBufferSize`, [64 * 1024, 1024 * MiB]),
  intLeaf(`rocksdb.${role}.maxWriteBufferNumber`, [2, 64]),
  booleanLeaf(`rocksdb.${role}.enableStatistics`),
]

/** Every value option but the consistency-bound ones' pairs, with its documented range. */
const leaves: Leaf[] = [
  {
    path: 'root',
    valid: fc.constant('unused'),
    invalid: fc.oneof(fc.constantFrom('', 'a\0b', '\0'), fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string(), { maxLength: 2 })),
  },
  literalLeaf('mode', ['writer', 'reader']),
  intLeaf('freshness.maxStalenessMs', [0, HOUR]),
  intLeaf('freshness.flushEveryRecords', [1, (1024 * MiB) / perRecord]),
  intLeaf('freshness.flushIntervalMs', [1, HOUR]),
  intLeaf('freshness.recentWritesBytes', [0, 1024 * MiB]),
  intLeaf('shards', [1, 65_536]),
  intLeaf('readers.min', [0, 64]),
  intLeaf('readers.max', [1, 64]),
  intLeaf('readers.growAt', [1, 10_000]),
  intLeaf('readers.idleMs', [0, DAY]),
  intLeaf('readers.maxLifetimeMs', [1_000, DAY]),
  intLeaf('readers.refreshesPerShard', [1, 64]),
  ...childLeaves('primary'),
  ...childLeaves('readers'),
  intLeaf('queues.maxPendingWrites', [1, 1_048_576]),
  intLeaf('queues.maxPendingReads', [1, 1_048_576]),
  ...rocksdbLeaves('primary'),
  ...rocksdbLeaves('reader'),
  literalLeaf('rocksdb.compactionCpuPriority', ['low', 'normal']),
  intLeaf('maxConcurrentOpens', [1, 64]),
  intLeaf('maintenanceIntervalMs', [10, HOUR]),
  intLeaf('closeTimeoutMs', [0, HOUR]),
  { path: 'clock', valid: fc.constant(systemClock), invalid: fc.oneof(notAnObject, fc.constantFrom({}, { now: () => 0 }, { now: () => 0, setTimeout: () => 0 })) },
  { path: 'random', valid: fc.constant(Math.random), invalid: fc.oneof(notAnObject, fc.constant({ random: () => 0 })) },
  { path: 'engine', valid: fc.constant(rocksEngine), invalid: fc.oneof(notAnObject, fc.constantFrom({}, { open: 1 }, { close: () => undefined })) },
  { path: 'inspect', valid: fc.constant(() => undefined), invalid: fc.oneof(notAnObject, fc.constant({ inspect: () => undefined })) },
]

/** Every object of options, with the keys it takes ('' is the options object itself). */
const objects: Record<string, readonly string[]> = {
  '': ['root', 'mode', 'freshness', 'shards', 'readers', 'supervision', 'queues', 'rocksdb', 'maxConcurrentOpens', 'maintenanceIntervalMs', 'closeTimeoutMs', 'clock', 'random', 'engine', 'inspect'],
  freshness: ['maxStalenessMs', 'flushEveryRecords', 'flushIntervalMs', 'recentWritesBytes'],
  readers: ['min', 'max', 'growAt', 'idleMs', 'maxLifetimeMs', 'refreshesPerShard'],
  supervision: ['primary', 'readers'],
  queues: ['maxPendingWrites', 'maxPendingReads'],
  rocksdb: ['primary', 'reader', 'compactionCpuPriority'],
  ...Object.fromEntries(
    (['primary', 'readers'] as const).flatMap((c) => [
      [`supervision.${c}`, ['restart', 'intensity', 'backoff', 'resetAfterMs']],
      [`supervision.${c}.intensity`, ['maxRestarts', 'withinMs']],
      [`supervision.${c}.backoff`, ['minMs', 'maxMs', 'factor', 'jitter']],
    ]),
  ),
  ...Object.fromEntries(['primary', 'reader'].map((r) => [`rocksdb.${r}`, ['maxOpenFiles', 'maxBackgroundJobs', 'writeBufferSize', 'maxWriteBufferNumber', 'enableStatistics']])),
}

// ---- Valid options.

type Json = Record<string, unknown>

/** The fastest escalation of a child spec: the first maxRestarts + 1 un-jittered backoff delays. */
const fastest = (maxRestarts: number, b: { minMs: number; maxMs: number; factor: number }) => {
  let sum = 0
  for (let i = 0; i <= maxRestarts; i++) sum += Math.min(b.maxMs, b.minMs * Math.pow(b.factor, i))
  return sum
}

const backoffArb = (minMs: Interval) =>
  fc
    .record({ minMs: fc.integer({ min: minMs[0], max: minMs[1] }), span: fc.nat(20_000), factor: fc.double({ min: 1, max: 4, noNaN: true }), jitter: fc.double({ min: 0, max: 1, noNaN: true }) })
    .map(({ minMs, span, factor, jitter }) => ({ minMs, maxMs: minMs + span, factor, jitter }))

/** A child spec that can escalate: withinMs above the fastest maxRestarts + 1 restarts. */
const childSpecArb = (child: 'primary' | 'readers'): fc.Arbitrary<Json> => {
  const restart = fc.constantFrom(...(child === 'primary' ? ['permanent', 'transient'] : ['permanent', 'transient', 'temporary']))
  const full = fc.record({ restart, maxRestarts: fc.nat(20), backoff: backoffArb([0, 2_000]), resetAfterMs: fc.nat(DAY), slack: fc.nat(DAY) }).map(({ restart, maxRestarts, backoff, resetAfterMs, slack }) => {
    const low = Math.floor(fastest(maxRestarts, backoff)) + 1
    return { restart, intensity: { maxRestarts, withinMs: Math.min(DAY, low + slack) }, backoff, resetAfterMs }
  })
  // Fields that never make a spec unreachable on their own.
  const partial = fc.record({ restart, backoff: fc.record({ jitter: fc.double({ min: 0, max: 1, noNaN: true }) }), resetAfterMs: fc.nat(DAY) }, { requiredKeys: [] })
  return fc.oneof(full, partial)
}

const rocksdbArb = (role: 'primary' | 'reader') =>
  fc.record(
    {
      maxOpenFiles: role === 'primary' ? fc.oneof(fc.constant(-1), fc.integer({ min: 10, max: 1_000_000 })) : fc.constant(-1),
      maxBackgroundJobs: fc.integer({ min: 1, max: 64 }),
      writeBufferSize: fc.integer({ min: 64 * 1024, max: 1024 * MiB }),
      maxWriteBufferNumber: fc.integer({ min: 2, max: 64 }),
      enableStatistics: fc.boolean(),
    },
    { requiredKeys: [] },
  )

/** An option object that is valid (the root is filled in by the test). */
const validOptionsArb: fc.Arbitrary<Json> = fc
  .record({
    mode: fc.option(fc.constantFrom('writer', 'reader'), { nil: undefined }),
    primaryRocksdb: fc.option(rocksdbArb('primary'), { nil: undefined }),
    readerRocksdb: fc.option(rocksdbArb('reader'), { nil: undefined }),
    compactionCpuPriority: fc.option(fc.constantFrom('low', 'normal'), { nil: undefined }),
    flushRatio: fc.double({ min: 0, max: 1, noNaN: true }),
    freshness: fc.record({ maxStalenessMs: fc.nat(HOUR), flushEveryRecords: fc.constant(true), flushIntervalMs: fc.integer({ min: 1, max: HOUR }) }, { requiredKeys: [] }),
    shards: fc.option(fc.integer({ min: 1, max: 65_536 }), { nil: undefined }),
    readers: fc.record({ min: fc.integer({ min: 0, max: 64 }), span: fc.nat(64), growAt: fc.integer({ min: 1, max: 10_000 }), idleMs: fc.nat(DAY), maxLifetimeMs: fc.integer({ min: 1_000, max: DAY }), refreshesPerShard: fc.integer({ min: 1, max: 64 }) }, { requiredKeys: [] }),
    supervision: fc.record({ primary: childSpecArb('primary'), readers: childSpecArb('readers') }, { requiredKeys: [] }),
    queues: fc.record({ maxPendingWrites: fc.integer({ min: 1, max: 1_048_576 }), maxPendingReads: fc.integer({ min: 1, max: 1_048_576 }) }, { requiredKeys: [] }),
    maxConcurrentOpens: fc.option(fc.integer({ min: 1, max: 64 }), { nil: undefined }),
    maintenanceIntervalMs: fc.option(fc.integer({ min: 10, max: HOUR }), { nil: undefined }),
    closeTimeoutMs: fc.option(fc.nat(HOUR), { nil: undefined }),
    clock: fc.option(fc.constantFrom<'system' | 'manual'>('system', 'manual'), { nil: undefined }),
    random: fc.option(fc.constant(() => 0.5), { nil: undefined }),
    inspect: fc.option(fc.constant(() => undefined), { nil: undefined }),
  })
  .map((g) => {
    const o: Json = {}
    if (g.mode !== undefined) o.mode = g.mode
    const rocksdb: Json = {}
    if (g.primaryRocksdb !== undefined) rocksdb.primary = g.primaryRocksdb
    if (g.readerRocksdb !== undefined) rocksdb.reader = g.readerRocksdb
    if (g.compactionCpuPriority !== undefined) rocksdb.compactionCpuPriority = g.compactionCpuPriority
    if (Object.keys(rocksdb).length > 0) o.rocksdb = rocksdb
    // flushEveryRecords fits the (possibly given) primary write buffer; a smaller buffer than the default needs it given.
    const buffer = g.primaryRocksdb?.writeBufferSize ?? defaultWriteBufferSize
    const { flushEveryRecords, ...freshness } = g.freshness
    const mustGiveFlush = buffer < defaultFlushEveryRecords * perRecord
    if (flushEveryRecords !== undefined || mustGiveFlush) {
      ;(freshness as Json).flushEveryRecords = Math.max(1, Math.floor(g.flushRatio * Math.floor(buffer / perRecord)))
    }
    if (Object.keys(freshness).length > 0) o.freshness = freshness
    if (g.shards !== undefined) o.shards = g.shards
    // readers.min <= readers.max; reader mode needs readers.min >= 1 (the default min is 1, the default max 4).
    const { min: rawMin, span, ...pool } = g.readers
    const min = rawMin === undefined ? undefined : o.mode === 'reader' ? Math.max(1, rawMin) : rawMin
    const readers: Json = { ...pool }
    if (min !== undefined) readers.min = min
    if (span !== undefined) readers.max = Math.min(64, Math.max(1, (min ?? 1) + span))
    if (Object.keys(readers).length > 0) o.readers = readers
    if (Object.keys(g.supervision).length > 0) o.supervision = g.supervision
    if (Object.keys(g.queues).length > 0) o.queues = g.queues
    for (const k of ['maxConcurrentOpens', 'maintenanceIntervalMs', 'closeTimeoutMs', 'random', 'inspect'] as const) if (g[k] !== undefined) o[k] = g[k]
    if (g.clock !== undefined) o.clock = g.clock === 'system' ? systemClock : new ManualClock()
    return o
  })

// ---- Mutations: each makes a valid option object invalid in one place, and names that place.

interface Mutation {
  /** What the mutation did, for the counterexample. */
  readonly label: string
  /** The path `InvalidInput.field` must name. */
  readonly field: string
  readonly apply: (o: Json) => unknown
}

/** A deep copy of the plain objects of `o` (functions, clocks and engines are shared). */
const copy = (o: unknown): unknown =>
  typeof o === 'object' && o !== null && Object.getPrototypeOf(o) === Object.prototype
    ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, copy(v)]))
    : o

/** Sets `path` (dotted) in `o` to `value`, creating the objects on the way as own, enumerable properties. */
const setPath = (o: Json, path: string, value: unknown): Json => {
  const keys = path.split('.')
  let at = o
  for (const k of keys.slice(0, -1)) {
    const next = at[k]
    if (typeof next !== 'object' || next === null) Object.defineProperty(at, k, { value: {}, enumerable: true, writable: true, configurable: true })
    at = at[k] as Json
  }
  Object.defineProperty(at, keys[keys.length - 1]!, { value, enumerable: true, writable: true, configurable: true })
  return o
}

const deletePath = (o: Json, path: string): Json => {
  const keys = path.split('.')
  const parent = keys.slice(0, -1).reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Json)[k] : undefined), o)
  if (typeof parent === 'object' && parent !== null) delete (parent as Json)[keys[keys.length - 1]!]
  return o
}

const mutate = (f: (o: Json) => unknown) => (o: Json) => f(copy(o) as Json)

const leafMutation: fc.Arbitrary<Mutation> = fc
  .constantFrom(...leaves)
  .chain((leaf) => leaf.invalid.map((v) => ({ label: `${leaf.path} = ${String(typeof v === 'bigint' ? `${v}n` : typeof v === 'function' ? 'a function' : JSON.stringify(v))}`, field: leaf.path, apply: mutate((o) => setPath(o, leaf.path, v)) })))

const objectTypeMutation: fc.Arbitrary<Mutation> = fc.tuple(fc.constantFrom(...Object.keys(objects)), notAnObject).map(([path, v]) =>
  path === ''
    ? { label: `options = ${JSON.stringify(v)}`, field: 'options', apply: () => v }
    : { label: `${path} = ${JSON.stringify(v)}`, field: path, apply: mutate((o) => setPath(o, path, v)) },
)

const unknownKeyMutation: fc.Arbitrary<Mutation> = fc
  .tuple(
    fc.constantFrom(...Object.keys(objects)),
    fc.oneof(fc.constantFrom('shard', 'writeBuffer', 'maxRestart', 'readonly', 'constructor', 'toString', 'min_', 'Root'), fc.stringMatching(/^[A-Za-z_$][\w$]{0,12}$/)),
    fc.oneof(fc.anything(), fc.constant(undefined)),
  )
  .filter(([path, key]) => !objects[path]!.includes(key) && key !== '__proto__')
  .map(([path, key, v]) => {
    const field = path === '' ? key : `${path}.${key}`
    return { label: `unknown ${field}`, field, apply: mutate((o) => setPath(o, field, v)) }
  })

const child = fc.constantFrom<'primary' | 'readers'>('primary', 'readers')

const inconsistentMutation: fc.Arbitrary<Mutation> = fc.oneof(
  // readers.min > readers.max
  fc.integer({ min: 2, max: 64 }).chain((min) =>
    fc.integer({ min: 1, max: min - 1 }).map((max) => ({ label: `readers ${min} > ${max}`, field: 'readers.max', apply: mutate((o) => setPath(setPath(o, 'readers.min', min), 'readers.max', max)) })),
  ),
  // reader mode without readers
  fc.constant({ label: 'reader mode, readers.min 0', field: 'readers.min', apply: mutate((o) => setPath(setPath(o, 'mode', 'reader'), 'readers.min', 0)) }),
  // a temporary primary
  fc.constant({ label: 'temporary primary', field: 'supervision.primary.restart', apply: mutate((o) => setPath(o, 'supervision.primary.restart', 'temporary')) }),
  // backoff.minMs > backoff.maxMs, both given
  fc.tuple(child, fc.integer({ min: 1, max: HOUR })).chain(([c, minMs]) =>
    fc.integer({ min: 0, max: minMs - 1 }).map((maxMs) => ({
      label: `${c} backoff ${minMs} > ${maxMs}`,
      field: `supervision.${c}.backoff.maxMs`,
      apply: mutate((o) => setPath(o, `supervision.${c}.backoff`, { minMs, maxMs })),
    })),
  ),
  // backoff.minMs alone, above the default maxMs
  child.chain((c) =>
    fc.integer({ min: defaultMaxMs[c] + 1, max: HOUR }).map((minMs) => ({
      label: `${c} backoff.minMs ${minMs} alone`,
      field: `supervision.${c}.backoff.minMs`,
      apply: mutate((o) => setPath(o, `supervision.${c}.backoff`, { minMs })),
    })),
  ),
  // an intensity the backoff can never reach
  fc.tuple(child, fc.nat(20), backoffArb([1, 2_000]), fc.double({ min: 0, max: 1, noNaN: true })).map(([c, maxRestarts, backoff, r]) => {
    const within = Math.max(1, Math.min(DAY, Math.floor(r * fastest(maxRestarts, backoff))))
    const spec = { restart: 'permanent', intensity: { maxRestarts, withinMs: within }, backoff }
    return { label: `${c} unreachable ${JSON.stringify(spec)}`, field: `supervision.${c}.intensity`, apply: mutate((o) => setPath(o, `supervision.${c}`, spec)) }
  }),
  // flushEveryRecords too many for the write buffer, both given
  fc.integer({ min: 64 * 1024, max: 1024 * MiB - perRecord }).chain((buffer) =>
    fc.integer({ min: Math.floor(buffer / perRecord) + 1, max: (1024 * MiB) / perRecord }).map((records) => ({
      label: `flush ${records} records in ${buffer} bytes`,
      field: 'freshness.flushEveryRecords',
      apply: mutate((o) => setPath(setPath(o, 'rocksdb.primary.writeBufferSize', buffer), 'freshness.flushEveryRecords', records)),
    })),
  ),
  // a write buffer too small for the default flushEveryRecords
  fc.integer({ min: 64 * 1024, max: defaultFlushEveryRecords * perRecord - 1 }).map((buffer) => ({
    label: `write buffer ${buffer} with the default flush`,
    field: 'rocksdb.primary.writeBufferSize',
    apply: mutate((o) => setPath(deletePath(o, 'freshness.flushEveryRecords'), 'rocksdb.primary.writeBufferSize', buffer)),
  })),
)

const mutationArb = fc.oneof(
  { arbitrary: leafMutation, weight: 4 },
  { arbitrary: objectTypeMutation, weight: 1 },
  { arbitrary: unknownKeyMutation, weight: 2 },
  { arbitrary: inconsistentMutation, weight: 3 },
)

describe('openIndex options', () => {
  let parent: string
  let n = 0
  beforeAll(async () => {
    parent = await tempDir('rockvisor-options-')
  })
  afterAll(async () => removeDir(parent))

  test.prop([validOptionsArb, mutationArb], { numRuns: 1_000 })(
    'should reject any one-mutation-invalid options with InvalidInput naming the mutated option, creating and opening nothing',
    async (valid, mutation) => {
      const root = join(parent, `absent-${n++}`)
      let opens = 0
      const engine: Engine = {
        open: async (path, options) => {
          opens++
          return rocksEngine.open(path, options)
        },
      }
      const options = mutation.apply({ ...valid, root, engine })
      const err = await openIndex(options as IndexOptions).then(
        async (index) => {
          await index.close()
          return new Error(`accepted: ${mutation.label}`)
        },
        (e: unknown) => e,
      )
      expect(err, mutation.label).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).field, mutation.label).toBe(mutation.field)
      expect((err as InvalidInput).message.startsWith(`${mutation.field}: `), (err as InvalidInput).message).toBe(true)
      // The message is for a human: short even when the bad value is long.
      expect((err as InvalidInput).message.length).toBeLessThan(700)
      expect(existsSync(root)).toBe(false)
      expect(opens).toBe(0)
    },
  )

  // The random mutations rarely hit one leaf's exact edges: every edge of every integer option, one by one.
  it.each(leaves.flatMap((leaf) => (leaf.edges ?? []).map((v) => [leaf.path, v] as const)))('should reject %s = %d', async (path, v) => {
    const root = join(parent, `edge-${n++}`)
    const err = await openIndex(setPath({ root }, path, v) as unknown as IndexOptions).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).field).toBe(path)
    expect((err as InvalidInput).message).toContain(`got ${v}`)
    expect(existsSync(root)).toBe(false)
  })

  test.prop([validOptionsArb], { numRuns: 20 })('should accept any valid options, resolving them to the values given', async (valid) => {
    const root = join(parent, `valid-${n++}`)
    const options = { ...valid, root } as unknown as IndexOptions
    const resolved = resolveOptions(options)
    const primary = (valid.rocksdb as { primary?: Json } | undefined)?.primary ?? {}
    for (const [k, v] of Object.entries(primary)) expect(resolved.rocksdb.primary[k as keyof typeof resolved.rocksdb.primary]).toBe(v)
    expect(resolved.rocksdb.reader.maxOpenFiles).toBe(-1)
    expect(resolved.rocksdb.compactionCpuPriority).toBe((valid.rocksdb as { compactionCpuPriority?: string } | undefined)?.compactionCpuPriority ?? 'low')
    const readers = (valid.readers ?? {}) as { min?: number; max?: number }
    if (readers.min !== undefined) expect(resolved.policy.readers.min).toBe(readers.min)
    if (readers.max !== undefined) expect(resolved.policy.readers.max).toBe(readers.max)
    if (valid.mode === 'reader') {
      // A reader-mode index opens an existing root only: a writer creates it first.
      const writer = await openIndex({ ...options, mode: 'writer' })
      await writer.close()
    }
    const index = await openIndex(options)
    try {
      expect(index.mode).toBe(valid.mode ?? 'writer')
      expect(index.shards).toBe(valid.shards ?? 16)
    } finally {
      await index.close()
      await removeDir(root)
    }
  })
})
