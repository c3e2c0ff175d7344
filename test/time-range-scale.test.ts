/**
 * Time-range queries at scale, measured with RocksDB's own statistics: with 1,000,000 metas in one partition,
 * getRangeByTime must cost a handful of iterator operations (two seeks), and scanByTime over k entries about k nexts,
 * whatever the partition holds. A full scan of the partition's time view (the seed's approach, written inline) is
 * measured the same way and costs over a million nexts, which shows the measurement can tell the two apart.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { rocksEngine, type StorageHandle } from '../src/engine.js'
import { View, rangeEnd, rangeStart } from '../src/keys.js'
import type { MessageMeta, SegmentOffset } from '../src/meta.js'
import { seeksInFlight } from '../src/native.js'
import { getRangeByTime, putMetas, scanByTime } from '../src/store.js'

const timeout = 180_000

/** The big partition, and its two neighbours (whose keys sit right before and right after its own). */
const P = 7
const neighbours = [P - 1, P + 1] as const
const N = 1_000_000
const batchSize = 10_000
const neighbourCount = 20_000
const T0 = 1_700_000_000_000

/**
 * The i-th meta of the big partition. Timestamps never decrease and come in steps of 3 (so ts+1 and ts+2 hold
 * nothing); two metas out of three share their timestamp with a neighbour in i. (segmentId, offset) grows with i,
 * so the by-time order of the partition is the order of i.
 */
const tsOf = (i: number): number => T0 + 3 * Math.floor((2 * i) / 3)
const metaOf = (i: number): MessageMeta => ({
  msgId: `m-${i}`,
  timestamp: tsOf(i),
  segmentId: 1 + Math.floor(i / 100_000),
  offset: (i % 100_000) * 100,
  msgLen: 100,
})
const placeOf = (i: number): SegmentOffset => {
  const m = metaOf(i)
  return { segmentId: m.segmentId, offset: m.offset }
}

/** The first and last i with timestamp in [startTs, endTs] (brute force over the generator), or undefined. */
const expectedIndexes = (startTs: number, endTs: number): { first: number; last: number } | undefined => {
  let first = -1
  let last = -1
  for (let i = 0; i < N; i++) {
    const ts = tsOf(i)
    if (ts >= startTs && ts <= endTs) {
      if (first < 0) first = i
      last = i
    }
  }
  return first < 0 ? undefined : { first, last }
}

// ---------------------------------------------------------------------------------------------------------------
// RocksDB statistics
// ---------------------------------------------------------------------------------------------------------------

interface IterOps {
  readonly seek: number
  readonly next: number
  readonly prev: number
}

const ticker = (stats: string, name: string): number => {
  const match = new RegExp(`^rocksdb\\.number\\.db\\.${name} COUNT : (\\d+)$`, 'm').exec(stats)
  if (match === null) throw new Error(`ticker rocksdb.number.db.${name} missing from the statistics`)
  return Number(match[1])
}

const iterOps = async (handle: StorageHandle): Promise<IterOps> => {
  const stats = await handle.property('rocksdb.options-statistics')
  return { seek: ticker(stats, 'seek'), next: ticker(stats, 'next'), prev: ticker(stats, 'prev') }
}

/**
 * Until every seek's iterator has closed: RocksDB adds an iterator's counts to the statistics when it is destroyed,
 * and a seek closes its iterator after it answered (src/native.ts).
 */
const seeksClosed = async (): Promise<void> => {
  for (const until = Date.now() + 10_000; seeksInFlight() > 0 && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 1))
  expect(seeksInFlight()).toBe(0)
}

/** Runs `fn` and returns its result with the iterator operations RocksDB counted while it ran. */
const measure = async <T>(handle: StorageHandle, fn: () => Promise<T>): Promise<{ result: T; ops: IterOps; total: number }> => {
  await seeksClosed()
  const before = await iterOps(handle)
  const result = await fn()
  await seeksClosed()
  const after = await iterOps(handle)
  const ops = { seek: after.seek - before.seek, next: after.next - before.next, prev: after.prev - before.prev }
  return { result, ops, total: ops.seek + ops.next + ops.prev }
}

const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** The seed's approach, inline: walk the partition's whole time view and keep the first and last key in range. */
const fullScanRange = async (
  handle: StorageHandle,
  partition: number,
  startTs: number,
  endTs: number,
): Promise<{ first: SegmentOffset; last: SegmentOffset } | undefined> => {
  let first: SegmentOffset | undefined
  let last: SegmentOffset | undefined
  for await (const { key } of handle.iterate({ gte: rangeStart(View.byTime, partition), lt: rangeEnd(View.byTime, partition) })) {
    const k = Buffer.from(key.buffer, key.byteOffset, key.byteLength)
    // Key layout: 02 part:u32 ts:u64 seg:u32 off:u64.
    const ts = k.readUInt32BE(5) * 2 ** 32 + k.readUInt32BE(9)
    if (ts < startTs || ts > endTs) continue
    const so = { segmentId: k.readUInt32BE(13), offset: k.readUInt32BE(17) * 2 ** 32 + k.readUInt32BE(21) }
    first ??= so
    last = so
  }
  return first === undefined || last === undefined ? undefined : { first, last }
}

// ---------------------------------------------------------------------------------------------------------------

let dir = ''
let handle: StorageHandle | undefined

const db = (): StorageHandle => {
  if (handle === undefined) throw new Error('the database did not open')
  return handle
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rockvisor-time-scale-'))
  handle = await rocksEngine.open(dir, {
    readOnly: false,
    maxOpenFiles: -1,
    maxBackgroundJobs: 2,
    writeBufferSize: 4 * 1024 * 1024,
    maxWriteBufferNumber: 2,
    enableStatistics: true,
  })
  let seq = 0
  // The neighbours' timestamps cover the big partition's whole span, so a range that leaked across a partition
  // boundary would pick them up.
  for (const p of neighbours) {
    for (let start = 0; start < neighbourCount; start += batchSize) {
      const metas = Array.from({ length: Math.min(batchSize, neighbourCount - start) }, (_, j) => {
        const i = start + j
        return { msgId: `n${p}-${i}`, timestamp: T0 - 5 + i * 100, segmentId: 1 + (i % 7), offset: i, msgLen: 1 }
      })
      await putMetas(db(), p, metas, ++seq)
    }
  }
  for (let start = 0; start < N; start += batchSize) {
    const metas = Array.from({ length: Math.min(batchSize, N - start) }, (_, j) => metaOf(start + j))
    await putMetas(db(), P, metas, ++seq)
  }
  await db().flush()
}, timeout)

afterAll(async () => {
  await handle?.close()
  if (dir !== '') await rm(dir, { recursive: true, force: true })
}, timeout)

describe('time ranges over 1,000,000 metas', () => {
  /** Narrow ranges [startTs, endTs]: at the start, middle and end, single duplicated timestamps, and empty ones. */
  const ranges: readonly (readonly [string, number, number])[] = [
    ['the first timestamp', tsOf(0), tsOf(0)],
    ['a few timestamps in the middle', tsOf(500_000), tsOf(500_010)],
    ['one duplicated timestamp', tsOf(654_322), tsOf(654_322)],
    ['the last timestamps', tsOf(N - 4), tsOf(N - 1)],
    ['from before the first timestamp', 0, tsOf(2)],
    ['past the last timestamp', tsOf(N - 1) + 1, Number.MAX_SAFE_INTEGER],
    ['between two timestamps (empty)', tsOf(777_777) + 1, tsOf(777_777) + 2],
    ['start after end', tsOf(400_000), tsOf(399_000)],
  ]

  test.each(ranges)('getRangeByTime costs a few iterator steps: %s', async (_, startTs, endTs) => {
    const expected = expectedIndexes(startTs, endTs)
    const { result, ops, total } = await measure(db(), () => getRangeByTime(db(), P, startTs, endTs))
    expect(result).toEqual(expected === undefined ? undefined : { first: placeOf(expected.first), last: placeOf(expected.last) })
    expect(ops.seek).toBeLessThanOrEqual(2)
    expect(total).toBeLessThanOrEqual(10)
  }, timeout)

  test.each([
    ['an empty range', tsOf(777_777) + 1, tsOf(777_777) + 2],
    ['one duplicated timestamp', tsOf(123_457), tsOf(123_457)],
    ['about 1,500 entries', tsOf(900_000), tsOf(901_500)],
    ['about 50,000 entries', tsOf(250_000), tsOf(300_000)],
  ] as const)('scanByTime over k entries costs at most k + 2 nexts and one seek: %s', async (_, startTs, endTs) => {
    const expected = expectedIndexes(startTs, endTs)
    const k = expected === undefined ? 0 : expected.last - expected.first + 1
    const { result, ops } = await measure(db(), () => collect(scanByTime(db(), P, startTs, endTs)).then((chunks) => chunks.flat()))
    expect(result.length).toBe(k)
    if (expected !== undefined) {
      expect(result[0]).toEqual(metaOf(expected.first))
      expect(result[k - 1]).toEqual(metaOf(expected.last))
      expect(result.every((m, j) => m.msgId === `m-${expected.first + j}`)).toBe(true)
    }
    expect(ops.seek).toBeLessThanOrEqual(1)
    expect(ops.prev).toBe(0)
    expect(ops.next).toBeLessThanOrEqual(k + 2)
  }, timeout)

  test('a full scan of the time view (the seed approach) is measured at over a million nexts', async () => {
    const [startTs, endTs] = [tsOf(999_990), tsOf(999_995)]
    const expected = expectedIndexes(startTs, endTs)
    expect(expected).toBeDefined()
    const slow = await measure(db(), () => fullScanRange(db(), P, startTs, endTs))
    const fast = await measure(db(), () => getRangeByTime(db(), P, startTs, endTs))
    // Same answer...
    expect(slow.result).toEqual({ first: placeOf(expected!.first), last: placeOf(expected!.last) })
    expect(fast.result).toEqual(slow.result)
    // ...at a cost the statistics tell apart by five orders of magnitude.
    expect(slow.ops.next).toBeGreaterThanOrEqual(N)
    expect(fast.total).toBeLessThanOrEqual(10)
  }, timeout)
})
