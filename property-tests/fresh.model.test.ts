/**
 * Invariant: in writer mode, a `fresh` point read answers exactly the state after every write acknowledged before it
 * (read-your-writes), whichever handle serves it — a reader whose view holds those writes, a stale reader merged with
 * the memory of recent writes (src/recent.ts), or the primary — under puts that replace metas by msgId and by place,
 * retention, reader refreshes held back or let through, crashes of readers and of the primary, a memory bound that
 * drops batches, and bursts of concurrent reads (one coalesced MultiGet).
 *
 * Model-based, on real RocksDB in a temp dir: the model is a map per partition (msgId -> meta) with the replace
 * semantics; every command awaits its requests, so each read's expected answer is exact. The suite also checks that
 * it is not vacuous: over all runs, reads were answered from the memory and by readers.
 */
import { fc, test } from '@fast-check/vitest'
import { afterAll, expect } from 'vitest'
import { FaultInjector, ManualClock, openIndex, type Index, type MessageMeta } from '../src/index.js'
import { removeDir, tempDir } from '../test/support/tmp.js'

const partitions = [0, 1] as const
const ids = ['a', 'b', 'c', 'd', 'e']

interface Model {
  readonly metas: Map<number, Map<string, MessageMeta>>
}
interface Real {
  readonly index: Index
  readonly clock: ManualClock
  readonly faults: FaultInjector
}

/** The model's state after putting `batch` (msgIds and places unique within it) to `partition`. */
const put = (model: Model, partition: number, batch: readonly MessageMeta[]): void => {
  const state = model.metas.get(partition) ?? new Map<string, MessageMeta>()
  for (const m of batch) {
    state.delete(m.msgId)
    for (const [id, old] of state) if (old.segmentId === m.segmentId && old.offset === m.offset) state.delete(id)
  }
  for (const m of batch) state.set(m.msgId, m)
  model.metas.set(partition, state)
}

const totals = { memory: 0, readers: 0, reads: 0 }

/**
 * Awaits `p` while the clock moves on (10 ms of clock per ms of real time): a request may wait out a crashed actor's
 * backoff. Real I/O decides when it settles; the clock only lets timers fire.
 */
const settle = async <T>(r: Real, p: Promise<T>): Promise<T> => {
  let done = false
  const watched = p.finally(() => (done = true))
  watched.catch(() => undefined)
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 1))
    if (!done) await r.clock.advance(10)
  }
  return watched
}

type Cmd = fc.AsyncCommand<Model, Real>
const command = (name: string, run: (m: Model, r: Real) => Promise<void>): Cmd => ({ check: () => true, run, toString: () => name })

const metaArb = fc.record({
  msgId: fc.constantFrom(...ids),
  timestamp: fc.integer({ min: 0, max: 20 }),
  segmentId: fc.integer({ min: 0, max: 1 }),
  offset: fc.integer({ min: 0, max: 2 }),
  msgLen: fc.integer({ min: 0, max: 100 }),
})
const batchArb = fc
  .uniqueArray(metaArb, { minLength: 1, maxLength: 3, selector: (m) => m.msgId })
  .filter((b) => new Set(b.map((m) => `${m.segmentId}:${m.offset}`)).size === b.length)
const partitionArb = fc.constantFrom(...partitions)
type Lookup = { by: 'id'; msgId: string } | { by: 'place'; segmentId: number; offset: number }
const lookupArb: fc.Arbitrary<Lookup> = fc.oneof(
  fc.constantFrom(...ids, 'zz').map((msgId) => ({ by: 'id' as const, msgId })),
  fc.record({ by: fc.constant('place' as const), segmentId: fc.integer({ min: 0, max: 1 }), offset: fc.integer({ min: 0, max: 2 }) }),
)

const expected = (model: Model, partition: number, l: Lookup): unknown => {
  const state = model.metas.get(partition) ?? new Map<string, MessageMeta>()
  if (l.by === 'id') return state.get(l.msgId)
  return [...state.values()].find((m) => m.segmentId === l.segmentId && m.offset === l.offset)?.msgId
}
const lookup = (index: Index, partition: number, l: Lookup): Promise<unknown> =>
  l.by === 'id' ? index.getByMsgId('t', partition, l.msgId) : index.getMsgIdBySegmentOffset('t', partition, l)

/** Fresh reads of `lookups` on `partition`, issued in one turn (coalesced into one MultiGet where one handle serves them all). */
const freshReads = async (m: Model, r: Real, p: number, lookups: readonly Lookup[]): Promise<void> => {
  const answers = await settle(r, Promise.all(lookups.map((l) => lookup(r.index, p, l))))
  totals.reads += lookups.length
  lookups.forEach((l, i) => expect(answers[i], `${JSON.stringify(l)} on ${p}`).toEqual(expected(m, p, l)))
}

const commands = [
  fc.tuple(partitionArb, batchArb).map(([p, batch]) =>
    command(`batchPut(${p}, ${batch.map((m) => `${m.msgId}/${m.segmentId}:${m.offset}`).join(' ')})`, async (m, r) => {
      await settle(r, r.index.batchPut('t', p, batch))
      put(m, p, batch)
    }),
  ),
  fc.tuple(partitionArb, fc.array(lookupArb, { minLength: 1, maxLength: 8 })).map(([p, lookups]) =>
    command(`fresh reads on ${p}: ${JSON.stringify(lookups)}`, (m, r) => freshReads(m, r, p, lookups)),
  ),
  // A write and, at once, reads of the same partition: the readers' views cannot hold the write yet.
  fc.tuple(partitionArb, batchArb, fc.array(lookupArb, { minLength: 1, maxLength: 8 })).map(([p, batch, lookups]) =>
    command(`batchPut(${p}, ${batch.map((m) => `${m.msgId}/${m.segmentId}:${m.offset}`).join(' ')}) then fresh reads ${JSON.stringify(lookups)}`, async (m, r) => {
      await settle(r, r.index.batchPut('t', p, batch))
      put(m, p, batch)
      await freshReads(m, r, p, lookups)
    }),
  ),
  fc.tuple(partitionArb, fc.integer({ min: 0, max: 21 })).map(([p, before]) =>
    command(`deleteBefore(${p}, ${before})`, async (m, r) => {
      await settle(r, r.index.deleteBefore('t', p, before))
      const state = m.metas.get(p)
      if (state !== undefined) for (const [id, meta] of state) if (meta.timestamp < before) state.delete(id)
    }),
  ),
  fc.integer({ min: 1, max: 50 }).map((n) =>
    command(`hold the next ${n} reader opens (refreshes keep the old view)`, async (_m, r) => {
      r.faults.failNext('open', n, { role: 'reader' })
    }),
  ),
  fc.constant(command('let reader opens through', async (_m, r) => r.faults.clear())),
  fc.tuple(partitionArb, fc.constantFrom('readers', 'primary') as fc.Arbitrary<'readers' | 'primary'>).map(([p, target]) =>
    command(`crash ${target} of ${p}`, async (_m, r) => {
      r.index.faults.crash('t', p, target)
    }),
  ),
  fc.integer({ min: 1, max: 3_000 }).map((ms) => command(`advance clock ${ms} ms`, async (_m, r) => void (await r.clock.advance(ms)))),
]

test.prop([fc.commands(commands, { maxCommands: 40 }), fc.constantFrom(16 * 1024 * 1024, 2_000, 1)], { numRuns: 40 })(
  'fresh point reads answer every acknowledged write, whichever handle serves them',
  async (cmds, recentWritesBytes) => {
    const root = await tempDir()
    const clock = new ManualClock(0)
    const faults = new FaultInjector()
    const index = await openIndex({
      root,
      shards: 1,
      clock,
      engine: faults,
      random: () => 0.5,
      readers: { min: 1, max: 2 },
      freshness: { recentWritesBytes },
      // Backoffs short enough that the clock commands let crashed actors come back.
      supervision: {
        primary: { intensity: { maxRestarts: 100, withinMs: 60_000 }, backoff: { minMs: 10, maxMs: 100, factor: 2, jitter: 0 } },
        readers: { intensity: { maxRestarts: 100, withinMs: 60_000 }, backoff: { minMs: 10, maxMs: 100, factor: 2, jitter: 0 } },
      },
    })
    try {
      await fc.asyncModelRun(() => ({ model: { metas: new Map() }, real: { index, clock, faults } }), cmds)
      for (const s of index.stats().shards) {
        totals.memory += s.served.memory
        totals.readers += s.served.readers
      }
    } finally {
      faults.clear()
      await index.close()
      await removeDir(root)
    }
  },
)

afterAll(() => {
  // Not vacuous: the runs had fresh reads answered from the memory of recent writes and from readers' views.
  expect(totals.reads).toBeGreaterThan(0)
  expect(totals.memory).toBeGreaterThan(0)
  expect(totals.readers).toBeGreaterThan(0)
})
