/**
 * Invariant: in writer mode, a `fresh` point read answers exactly the state after every write acknowledged before it
 * (read-your-writes), whichever handle serves it — a reader whose view holds those writes, a stale reader merged with
 * the memory of recent writes (src/recent.ts), or the primary — and so do a `fresh` range read and scan of a time
 * window (which a stale reader serves when no write after its view touched the window) — under puts that replace metas by msgId and by place,
 * retention, reader refreshes held back or let through, crashes of readers and of the primary, a memory bound that
 * drops batches, and bursts of concurrent reads (one coalesced MultiGet).
 *
 * Model-based, on real RocksDB in a temp dir (the kit's withTempIndex): the model is the kit's PartitionState per
 * partition, with the replace semantics; every command awaits its requests, so each read's expected answer is exact. The suite also checks that
 * it is not vacuous: over all runs, reads were answered from the memory and by readers (a fixed run of commands that
 * does both, whatever the machine's speed, runs beside the random ones, so that this check never depends on the
 * random seed nor on how fast readers open).
 */
import { fc, test } from '@fast-check/vitest'
import { afterAll, expect } from 'vitest'
import type { Index, MessageMeta } from '../src/index.js'
import { arbitraries, model as reference, withTempIndex, type TempIndex } from '../src/testing/index.js'

const partitions = [0, 1] as const
const domain = { msgIds: ['a', 'b', 'c', 'd', 'e'], segments: 2, offsets: 3, maxBatch: 3 }
const ids = domain.msgIds

/** The model: the kit's reference model (`rockvisor/testing`), one partition state per partition. */
interface Model {
  readonly metas: Map<number, InstanceType<typeof reference.PartitionState>>
}
interface Real {
  readonly index: Index
  readonly ctx: TempIndex
}

/** The state of `partition` in the model (created empty). */
const stateOf = (model: Model, partition: number): InstanceType<typeof reference.PartitionState> => {
  let state = model.metas.get(partition)
  if (state === undefined) model.metas.set(partition, (state = new reference.PartitionState()))
  return state
}

const totals = { memory: 0, readers: 0, reads: 0, windows: 0 }

/**
 * Awaits `p` while the clock moves on (10 ms of clock per ms of real time): a request may wait out a crashed actor's
 * backoff. Real I/O decides when it settles; the clock only lets timers fire.
 */
const settle = <T>(r: Real, p: Promise<T>): Promise<T> => r.ctx.whileAdvancing(p, 10, Number.MAX_SAFE_INTEGER)

type Cmd = fc.AsyncCommand<Model, Real>
const command = (name: string, run: (m: Model, r: Real) => Promise<void>): Cmd => ({ check: () => true, run, toString: () => name })

const batchArb = arbitraries.collidingBatch(domain)
const partitionArb = fc.constantFrom(...partitions)
type Lookup = { by: 'id'; msgId: string } | { by: 'place'; segmentId: number; offset: number }
const lookupArb: fc.Arbitrary<Lookup> = fc.oneof(
  fc.constantFrom(...ids, 'zz').map((msgId) => ({ by: 'id' as const, msgId })),
  fc.record({ by: fc.constant('place' as const), segmentId: fc.integer({ min: 0, max: 1 }), offset: fc.integer({ min: 0, max: 2 }) }),
)

const expected = (model: Model, partition: number, l: Lookup): unknown => {
  const state = stateOf(model, partition)
  return l.by === 'id' ? state.getByMsgId(l.msgId) : state.getMsgIdBySegmentOffset(l)
}
const lookup = (index: Index, partition: number, l: Lookup): Promise<unknown> =>
  l.by === 'id' ? index.getByMsgId('t', partition, l.msgId) : index.getMsgIdBySegmentOffset('t', partition, l)

/** Fresh reads of `lookups` on `partition`, issued in one turn (coalesced into one MultiGet where one handle serves them all). */
const freshReads = async (m: Model, r: Real, p: number, lookups: readonly Lookup[]): Promise<void> => {
  const answers = await settle(r, Promise.all(lookups.map((l) => lookup(r.index, p, l))))
  totals.reads += lookups.length
  lookups.forEach((l, i) => expect(answers[i], `${JSON.stringify(l)} on ${p}`).toEqual(expected(m, p, l)))
}

/** A fresh range read and a fresh scan of [from, to] on `partition`, issued at once. */
const windowReads = async (m: Model, r: Real, p: number, from: number, to: number): Promise<void> => {
  const scan = async (): Promise<MessageMeta[]> => {
    const metas: MessageMeta[] = []
    for await (const x of r.index.scanByTime('t', p, from, to)) metas.push(x)
    return metas
  }
  const [range, scanned] = await settle(r, Promise.all([r.index.getRangeByTime('t', p, from, to), scan()]))
  totals.windows += 2
  expect(range, `range [${from}, ${to}] on ${p}`).toEqual(stateOf(m, p).getRangeByTime(from, to))
  expect(scanned, `scan [${from}, ${to}] on ${p}`).toEqual(stateOf(m, p).scanByTime(from, to))
}

const commands = [
  fc.tuple(partitionArb, batchArb).map(([p, batch]) =>
    command(`batchPut(${p}, ${batch.map((m) => `${m.msgId}/${m.segmentId}:${m.offset}`).join(' ')})`, async (m, r) => {
      await settle(r, r.index.batchPut('t', p, batch))
      stateOf(m, p).putBatch(batch)
    }),
  ),
  fc.tuple(partitionArb, fc.array(lookupArb, { minLength: 1, maxLength: 8 })).map(([p, lookups]) =>
    command(`fresh reads on ${p}: ${JSON.stringify(lookups)}`, (m, r) => freshReads(m, r, p, lookups)),
  ),
  // A write and, at once, reads of the same partition: the readers' views cannot hold the write yet.
  fc.tuple(partitionArb, batchArb, fc.array(lookupArb, { minLength: 1, maxLength: 8 })).map(([p, batch, lookups]) =>
    command(`batchPut(${p}, ${batch.map((m) => `${m.msgId}/${m.segmentId}:${m.offset}`).join(' ')}) then fresh reads ${JSON.stringify(lookups)}`, async (m, r) => {
      await settle(r, r.index.batchPut('t', p, batch))
      stateOf(m, p).putBatch(batch)
      await freshReads(m, r, p, lookups)
    }),
  ),
  // Range reads and scans of a time window: a stale reader serves one when no write after its view touched the
  // window (src/recent.ts, touchesTimes), else the primary or a fresh reader does.
  fc.tuple(partitionArb, fc.integer({ min: 0, max: 22 }), fc.integer({ min: 0, max: 22 })).map(([p, a, b]) =>
    command(`fresh window reads on ${p} [${Math.min(a, b)}, ${Math.max(a, b)}]`, (m, r) => windowReads(m, r, p, Math.min(a, b), Math.max(a, b))),
  ),
  // A write and, at once, window reads of the same partition: the readers' views cannot hold the write yet.
  fc.tuple(partitionArb, batchArb, fc.integer({ min: 0, max: 22 }), fc.integer({ min: 0, max: 22 })).map(([p, batch, a, b]) =>
    command(`batchPut(${p}, ${batch.map((m) => `${m.msgId}/${m.segmentId}:${m.offset}@${m.timestamp}`).join(' ')}) then fresh window reads [${Math.min(a, b)}, ${Math.max(a, b)}]`, async (m, r) => {
      await settle(r, r.index.batchPut('t', p, batch))
      stateOf(m, p).putBatch(batch)
      await windowReads(m, r, p, Math.min(a, b), Math.max(a, b))
    }),
  ),
  fc.tuple(partitionArb, fc.integer({ min: 0, max: 21 })).map(([p, before]) =>
    command(`deleteBefore(${p}, ${before})`, async (m, r) => {
      await settle(r, r.index.deleteBefore('t', p, before))
      stateOf(m, p).deleteBefore(before)
    }),
  ),
  fc.integer({ min: 1, max: 50 }).map((n) =>
    command(`hold the next ${n} reader opens (refreshes keep the old view)`, async (_m, r) => {
      r.ctx.faults.failNext('open', n, { role: 'reader' })
    }),
  ),
  fc.constant(command('let reader opens through', async (_m, r) => r.ctx.faults.clear())),
  fc.tuple(partitionArb, fc.constantFrom('readers', 'primary') as fc.Arbitrary<'readers' | 'primary'>).map(([p, target]) =>
    command(`crash ${target} of ${p}`, async (_m, r) => {
      r.index.faults.crash('t', p, target)
    }),
  ),
  fc.integer({ min: 1, max: 3_000 }).map((ms) => command(`advance clock ${ms} ms`, async (_m, r) => void (await r.ctx.clock.advance(ms)))),
]

/** One model run: `cmds` against a fresh temporary index; counts who served its reads into `totals`. */
const runOnce = async (cmds: Iterable<fc.AsyncCommand<Model, Real>>, recentWritesBytes: number): Promise<void> => {
  const options = {
    shards: 1,
    random: () => 0.5,
    readers: { min: 1, max: 2 },
    freshness: { recentWritesBytes },
    // Backoffs short enough that the clock commands let crashed actors come back.
    supervision: {
      primary: { intensity: { maxRestarts: 100, withinMs: 60_000 }, backoff: { minMs: 10, maxMs: 100, factor: 2, jitter: 0 } },
      readers: { intensity: { maxRestarts: 100, withinMs: 60_000 }, backoff: { minMs: 10, maxMs: 100, factor: 2, jitter: 0 } },
    },
  }
  await withTempIndex(options, async (index, ctx) => {
    try {
      await fc.asyncModelRun(() => ({ model: { metas: new Map() }, real: { index, ctx } }), cmds)
      for (const s of index.stats().shards) {
        totals.memory += s.served.memory
        totals.readers += s.served.readers
      }
    } finally {
      ctx.faults.clear()
    }
  })
}

const commandsArb = fc.commands(commands, { maxCommands: 40 })
const memoryBoundArb = fc.constantFrom(16 * 1024 * 1024, 2_000, 1)

test.prop([commandsArb, memoryBoundArb], { numRuns: 40 })('fresh reads answer every acknowledged write, whichever handle serves them', runOnce)

// The same property from a fixed seed (40 runs of a random seed may have none from the memory: seed -936181731 did).
test.prop([commandsArb, memoryBoundArb], { numRuns: 40, seed: 197718701 })('the same, from a fixed seed (whose runs read from the memory and from readers)', runOnce)

// The same invariant on a fixed run that reads from a reader's view and from the memory of recent writes whatever
// the machine's speed (the random runs do both by chance: with every open slowed by 20 ms, a fixed seed once did
// neither): a write, a wait until a reader's view holds it, a fresh read (a reader), then a write and at once a
// fresh read of it (the view is stale: the memory completes it), then a wait until a view holds that write too
// (which fresh reads never bring about: see untilViewHoldsEveryWrite) and a fresh read a reader answers.
const untilViewHoldsEveryWrite = command('until a reader view holds every write (a reader that opened before it is replaced)', async (m, r) => {
  // (A liveness bound in wall time, as the kit's: 30 s.)
  for (const start = Date.now(); Date.now() - start < 30_000; ) {
    const s = r.index.stats().shards[0]
    if (s !== undefined && s.views.some((v) => v.sequence >= s.sequence)) return
    // A reader that opened before the write (its open raced the shard's first batch) is never asked to refresh by
    // fresh reads: the memory of recent writes completes its view (by design). Its replacement opens after the write.
    if (s !== undefined && s.views.length > 0) r.index.faults.crash('t', 0, 'readers')
    await freshReads(m, r, 0, [{ by: 'id', msgId: 'a' }])
    await settle(r, new Promise((resolve) => setTimeout(resolve, 2)))
  }
  throw new Error('no reader view came to hold every write within 30 s')
})
/** A fresh read of `msgId` on partition 0 that `who` (of the shard's served counts) must have answered. */
const servedBy = (who: 'readers' | 'memory', msgId: string) =>
  command(`fresh read of ${msgId}, answered by the ${who}`, async (m, r) => {
    const before = r.index.stats().shards[0]!.served[who]
    await freshReads(m, r, 0, [{ by: 'id', msgId }])
    expect(r.index.stats().shards[0]!.served[who]).toBe(before + 1)
  })
const putCommand = (metas: readonly MessageMeta[]) =>
  command(`batchPut(0, ${metas.map((x) => x.msgId).join(' ')})`, async (m, r) => {
    await settle(r, r.index.batchPut('t', 0, metas))
    stateOf(m, 0).putBatch(metas)
  })
test('a fixed run that reads from a reader view and from the memory of recent writes', async () => {
  const before = { ...totals }
  const meta = (msgId: string, offset: number): MessageMeta => ({ msgId, timestamp: offset, segmentId: 0, offset, msgLen: 1 })
  await runOnce(
    [
      putCommand([meta('a', 0)]),
      untilViewHoldsEveryWrite,
      servedBy('readers', 'a'),
      putCommand([meta('b', 1)]),
      servedBy('memory', 'b'),
      // The view is stale now, and the memory completes it: only a new reader's view holds b.
      untilViewHoldsEveryWrite,
      servedBy('readers', 'b'),
    ],
    16 * 1024 * 1024,
  )
  expect(totals.readers).toBeGreaterThan(before.readers)
  expect(totals.memory).toBeGreaterThan(before.memory)
})

afterAll(() => {
  // Not vacuous: the runs had fresh reads answered from the memory of recent writes and from readers' views.
  expect(totals.reads).toBeGreaterThan(0)
  expect(totals.windows).toBeGreaterThan(0)
  expect(totals.memory).toBeGreaterThan(0)
  expect(totals.readers).toBeGreaterThan(0)
})
