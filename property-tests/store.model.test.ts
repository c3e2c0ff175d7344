/**
 * Model-based test of src/store.ts on a real RocksDB: arbitrary sequences of batches over a few partitions are written
 * with putMetas, and every query (point lookups, time ranges, scans, full views, sequence) answers as the kit's
 * reference model (src/testing/model.ts, `rockvisor/testing`: it shares no code with src/store.ts) answers. Then
 * retention (deleteBefore) deletes exactly what the same model holds below its bound.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fc, test } from '@fast-check/vitest'
import { rocksEngine, type OpenOptions, type StorageHandle } from '../src/engine.js'
import type { MessageMeta, SegmentOffset } from '../src/meta.js'
import {
  allMetas,
  allMetasById,
  deleteBefore,
  getByMsgId,
  getMsgIdBySegmentOffset,
  getRangeByTime,
  lastPlace,
  putMetas,
  readSequence,
  scanByTime,
} from '../src/store.js'
import { arbitraries, model as reference } from '../src/testing/index.js'

const { batch: batchArb, msgId: msgIdArb, partition: partitionArb, safeNat: safeNatArb, smallInt: smallIntArb, u32: u32Arb } = arbitraries
const { PartitionState, byTime: byTimeOrder, bySegmentOffset: bySoOrder, byMsgId: byIdOrder, placeOf: place } = reference

const openOptions: OpenOptions = {
  readOnly: false,
  maxOpenFiles: -1,
  maxBackgroundJobs: 2,
  writeBufferSize: 4 * 1024 * 1024,
  maxWriteBufferNumber: 2,
  enableStatistics: false,
}

let root = ''
let runNo = 0
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'rockvisor-store-model-'))
})
afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true })
})

/** Opens a fresh database in its own subdirectory, runs `body`, then closes and removes it whatever happens. */
const withFreshDb = async (body: (handle: StorageHandle) => Promise<void>): Promise<void> => {
  const dir = await mkdtemp(join(root, `run-${runNo++}-`))
  const handle = await rocksEngine.open(dir, openOptions)
  try {
    await body(handle)
  } finally {
    await handle.close()
    await rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The model: the kit's reference model (`rockvisor/testing`, model.PartitionState), one state per partition.
// ---------------------------------------------------------------------------------------------------------------

type Model = Map<number, InstanceType<typeof PartitionState>>

const partitionOf = (model: Model, p: number): InstanceType<typeof PartitionState> => {
  let m = model.get(p)
  if (m === undefined) model.set(p, (m = new PartitionState()))
  return m
}

const modelMetas = (model: Model, p: number): MessageMeta[] => model.get(p)?.metas() ?? []
const modelInRange = (model: Model, p: number, startTs: number, endTs: number): MessageMeta[] => model.get(p)?.scanByTime(startTs, endTs) ?? []

const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** The metas of a scan's chunks, in order; no chunk is empty. */
const scanned = async (chunks: AsyncIterable<readonly MessageMeta[]>): Promise<MessageMeta[]> => {
  const all = await collect(chunks)
  expect(all.every((chunk) => chunk.length > 0)).toBe(true)
  return all.flat()
}

// ---------------------------------------------------------------------------------------------------------------
// Query arbitraries. A timestamp "pick" is resolved once the data is known: a small integer, any safe integer, or
// one of the timestamps written (optionally +-1), so that range bounds hit existing entries exactly.
// ---------------------------------------------------------------------------------------------------------------

type TsPick = { kind: 'value'; value: number } | { kind: 'existing'; index: number; delta: -1 | 0 | 1 }
const tsPickArb: fc.Arbitrary<TsPick> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('value' as const), value: smallIntArb }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('value' as const), value: safeNatArb }), weight: 1 },
  {
    arbitrary: fc.record({ kind: fc.constant('existing' as const), index: fc.nat(), delta: fc.constantFrom(-1 as const, 0 as const, 1 as const) }),
    weight: 3,
  },
)
const resolveTs = (pick: TsPick, existing: readonly number[]): number => {
  if (pick.kind === 'value' || existing.length === 0) return pick.kind === 'value' ? pick.value : 0
  const ts = existing[pick.index % existing.length]! + pick.delta
  return Math.min(Math.max(ts, 0), Number.MAX_SAFE_INTEGER)
}

const scenarioArb = fc.record({
  /** 1..3 distinct partitions; batches name them by index. */
  partitions: fc.uniqueArray(partitionArb, { minLength: 1, maxLength: 3 }),
  batches: fc.array(fc.tuple(fc.nat(2), batchArb), { minLength: 1, maxLength: 5 }),
  /** Ids and places that are probably never written (checked against the written ones before use). */
  strangerIds: fc.array(msgIdArb, { maxLength: 4 }),
  strangerPlaces: fc.array(fc.record({ segmentId: u32Arb, offset: safeNatArb }), { maxLength: 4 }),
  ranges: fc.array(fc.tuple(tsPickArb, tsPickArb, fc.option(fc.nat(6), { nil: undefined })), { minLength: 1, maxLength: 8 }),
  retention: fc.record({ partition: fc.nat(2), before: tsPickArb }),
  /** Write with a place bound per partition, kept as the index keeps it (store.putMetas, `placeBound`). */
  bounded: fc.boolean(),
})
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer S> ? S : never

/** The greatest place of `bound` and `metas` (null when both are empty). */
const highest = (bound: SegmentOffset | null, metas: readonly MessageMeta[]): SegmentOffset | null =>
  [...(bound === null ? [] : [bound]), ...metas.map(place)].reduce<SegmentOffset | null>((a, b) => (a === null || bySoOrder(b as MessageMeta, a as MessageMeta) > 0 ? b : a), null)

/**
 * Writes the scenario's batches to the handle and to a fresh model; returns the model and the last sequence. A
 * bounded scenario passes each partition's place bound: the last place on disk at its first write, raised by every
 * batch.
 */
const writeScenario = async (handle: StorageHandle, s: Scenario): Promise<{ model: Model; seq: number }> => {
  const model: Model = new Map()
  const bounds = new Map<number, SegmentOffset | null>()
  let seq = 0
  for (const [pIndex, batch] of s.batches) {
    const p = s.partitions[pIndex % s.partitions.length]!
    seq += 1
    if (s.bounded) {
      const known = bounds.get(p)
      const placeBound = known !== undefined ? known : ((await lastPlace(handle, p)) ?? null)
      bounds.set(p, highest(placeBound, batch))
      await putMetas(handle, p, batch, seq, { placeBound })
    } else await putMetas(handle, p, batch, seq)
    partitionOf(model, p).putBatch(batch)
  }
  return { model, seq }
}

/** The three views of partition p, each compared with the model in the view's own order. */
const expectViewsMatch = async (handle: StorageHandle, model: Model, p: number): Promise<void> => {
  const metas = modelMetas(model, p)
  expect(await collect(allMetasById(handle, p))).toEqual([...metas].sort(byIdOrder))
  expect(await collect(allMetas(handle, p, 'byTime'))).toEqual([...metas].sort(byTimeOrder))
  expect(await collect(allMetas(handle, p, 'bySegmentOffset'))).toEqual([...metas].sort(bySoOrder))
}

/** A partition none of `used` names, next to one of them (so that a leak across a range boundary would show). */
const unusedPartition = (used: readonly number[]): number => {
  for (const p of used.flatMap((u) => [u + 1, u - 1, 0])) if (p >= 0 && p <= 0xffff_ffff && !used.includes(p)) return p
  return 7
}

describe('store against an in-memory model', () => {
  test.prop([scenarioArb], { numRuns: 35 })('queries after arbitrary batches match the model', async (s) => {
    await withFreshDb(async (handle) => {
      const { model, seq } = await writeScenario(handle, s)
      expect(await readSequence(handle)).toBe(seq)

      const partitions = [...new Set(s.batches.map(([i]) => s.partitions[i % s.partitions.length]!))]
      const written = s.batches.flatMap(([, batch]) => batch)
      const ids = [...new Set([...written.map((m) => m.msgId), ...s.strangerIds])]
      const places = [...written.map(place), ...s.strangerPlaces]
      const timestamps = [...new Set(written.map((m) => m.timestamp))]

      for (const p of [...partitions, unusedPartition(partitions)]) {
        const part = model.get(p) ?? new PartitionState()

        // Point lookups: every msgId and place ever written, plus strangers.
        for (const id of ids) expect(await getByMsgId(handle, p, id)).toEqual(part.getByMsgId(id))
        for (const so of places) expect(await getMsgIdBySegmentOffset(handle, p, so)).toBe(part.getMsgIdBySegmentOffset(so))

        // Time ranges: first/last and the full scan (optionally limited).
        for (const [a, b, limit] of s.ranges) {
          const startTs = resolveTs(a, timestamps)
          const endTs = resolveTs(b, timestamps)
          const expected = modelInRange(model, p, startTs, endTs)
          const range = await getRangeByTime(handle, p, startTs, endTs)
          if (expected.length === 0) expect(range).toBeUndefined()
          else expect(range).toEqual({ first: place(expected[0]!), last: place(expected[expected.length - 1]!) })
          expect(await scanned(scanByTime(handle, p, startTs, endTs))).toEqual(expected)
          if (limit !== undefined) expect(await scanned(scanByTime(handle, p, startTs, endTs, limit))).toEqual(expected.slice(0, limit))
        }

        await expectViewsMatch(handle, model, p)
      }
    })
  })

  test.prop([scenarioArb], { numRuns: 30 })('deleteBefore removes exactly the metas older than `before`', async (s) => {
    await withFreshDb(async (handle) => {
      const { model, seq } = await writeScenario(handle, s)
      const partitions = [...new Set(s.batches.map(([i]) => s.partitions[i % s.partitions.length]!))]
      const p = partitions[s.retention.partition % partitions.length]!
      const before = resolveTs(s.retention.before, [...new Set(s.batches.flatMap(([, b]) => b.map((m) => m.timestamp)))])

      const doomed = modelMetas(model, p).filter((m) => m.timestamp < before)
      let next = seq
      const issued: number[] = []
      const { deleted } = await deleteBefore(handle, p, before, () => {
        issued.push(++next)
        return next
      })
      expect(partitionOf(model, p).deleteBefore(before)).toBe(doomed.length)

      expect(deleted).toBe(doomed.length)
      expect(issued.length).toBe(doomed.length === 0 ? 0 : 1)
      expect(await readSequence(handle)).toBe(issued.length === 0 ? seq : issued[issued.length - 1])
      for (const q of partitions) await expectViewsMatch(handle, model, q)
      for (const m of doomed) {
        expect(await getByMsgId(handle, p, m.msgId)).toBeUndefined()
        expect(await getMsgIdBySegmentOffset(handle, p, m)).toBeUndefined()
      }
      if (before > 0) expect(await scanned(scanByTime(handle, p, 0, before - 1))).toEqual([])
    })
  })

  test.prop(
    [
      fc.integer({ min: 1000, max: 3500 }),
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 0, max: 0xffff_ffff }),
    ],
    { numRuns: 5 },
  )('deleteBefore works through more than one retention chunk, one sequence number per chunk', async (n, before, p) => {
    await withFreshDb(async (handle) => {
      // n metas with timestamps 0..39 (many duplicates), in places that interleave with the time order.
      const metas: MessageMeta[] = Array.from({ length: n }, (_, i) => ({
        msgId: `m${i}`,
        timestamp: (i * 7) % 40,
        segmentId: i % 3,
        offset: n - i,
        msgLen: i,
      }))
      await putMetas(handle, p, metas, 1)
      const doomed = metas.filter((m) => m.timestamp < before).length
      let next = 1
      const { deleted } = await deleteBefore(handle, p, before, () => ++next)
      expect(deleted).toBe(doomed)
      // One atomic batch of at most 1024 metas per sequence number.
      expect(next - 1).toBe(Math.ceil(doomed / 1024))
      expect(await readSequence(handle)).toBe(next)
      const left = metas.filter((m) => m.timestamp >= before)
      expect(await collect(allMetas(handle, p, 'byTime'))).toEqual([...left].sort(byTimeOrder))
      expect((await collect(allMetasById(handle, p))).length).toBe(left.length)
      expect((await collect(allMetas(handle, p, 'bySegmentOffset'))).length).toBe(left.length)
    })
  })

  it('looks up only the places a place bound does not rule out, and still replaces by msgId and by place', async () => {
    await withFreshDb(async (inner) => {
      const looked: number[] = []
      const handle: StorageHandle = { ...inner, getMany: (keys) => (looked.push(keys.length), inner.getMany(keys)), write: (ops) => inner.write(ops), iterate: (r) => inner.iterate(r) }
      const meta = (id: string, segmentId: number, offset: number): MessageMeta => ({ msgId: id, timestamp: offset, segmentId, offset, msgLen: 1 })
      expect(await lastPlace(handle, 5)).toBeUndefined()
      await putMetas(handle, 5, [meta('a', 1, 10), meta('b', 1, 20)], 1, { placeBound: null })
      expect(looked).toEqual([2])
      expect(await lastPlace(handle, 5)).toEqual({ segmentId: 1, offset: 20 })
      // Above the bound: only the msgIds are looked up; 'a' moves (its old place goes), 'c' is new.
      await putMetas(handle, 5, [meta('a', 2, 0), meta('c', 2, 5)], 2, { placeBound: { segmentId: 1, offset: 20 } })
      expect(looked).toEqual([2, 2])
      // At the bound: that place is looked up too, and its holder 'b' is replaced.
      await putMetas(handle, 5, [meta('d', 1, 20), meta('e', 3, 0)], 3, { placeBound: { segmentId: 2, offset: 5 } })
      expect(looked).toEqual([2, 2, 3])
      expect(await collect(allMetas(handle, 5, 'bySegmentOffset'))).toEqual([meta('d', 1, 20), meta('a', 2, 0), meta('c', 2, 5), meta('e', 3, 0)])
      expect(await collect(allMetasById(handle, 5))).toEqual([meta('a', 2, 0), meta('c', 2, 5), meta('d', 1, 20), meta('e', 3, 0)])
      expect(await collect(allMetas(handle, 5, 'byTime'))).toHaveLength(4)
      expect(await lastPlace(handle, 4)).toBeUndefined()
      expect(await lastPlace(handle, 6)).toBeUndefined()
    })
  })
})
