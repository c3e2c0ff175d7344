/**
 * Shared by the tests of reader placements (test/worker.test.ts, test/process.test.ts): scratch roots and indexes
 * closed after each test, a root written by a writer, everything the read API answers on it through a reader-mode
 * index of a given placement, and handles opened on one directory in process and through a pool, to compare outcomes.
 * Importing it registers an `afterEach` (test/support/cleanups.ts) that closes and removes what its helpers opened.
 */
import { expect } from 'vitest'
import { FaultInjector, ManualClock, StorageFailure, openIndex, rocksEngine, type Index, type IndexOptions, type MessageMeta, type OpenOptions, type StorageHandle } from '../../src/index.js'
import { ReaderWorkers, readerWorkerPools, type ReaderHost } from '../../src/reader-workers.js'
import { cleanupAfterEach } from './cleanups.js'
import { recordInspection } from './coverage.js'

/** Where a test's readers live. */
export type Placement = NonNullable<NonNullable<IndexOptions['readers']>['placement']>

/** The meta number `n` of `partition`: 3 per timestamp from 5,000, two segments. */
export const meta = (n: number, partition = 0): MessageMeta => ({ msgId: `p${partition}-m${n}`, timestamp: 5_000 + Math.floor(n / 3), segmentId: n % 2, offset: n, msgLen: 10 + n })

/** What runs after each test of the importing file, last registered first. */
const cleanups = cleanupAfterEach()

/** Registers `cleanup` to run after the current test. */
export const afterTest = (cleanup: () => Promise<void>): void => cleanups.add(cleanup)

/** A temp dir removed after the test. */
export const scratch = (): Promise<string> => cleanups.scratch()

/** An index on `root` (a ManualClock, a FaultInjector of its own), closed after the test. */
export const index = async (root: string, options: Partial<IndexOptions> = {}): Promise<{ index: Index; faults: FaultInjector; clock: ManualClock }> => {
  const faults = new FaultInjector()
  const clock = new ManualClock(1_000_000)
  const opened = await openIndex({ shards: 2, random: () => 0, ...options, root, clock, engine: faults, inspect: recordInspection })
  afterTest(() => opened.close())
  return { index: opened, faults, clock }
}

/** The reader pool (worker threads or child processes) of the index on `root`. */
export const poolOf = (root: string): ReaderWorkers => {
  const pool = [...readerWorkerPools].find((p) => p.label === root)
  if (pool === undefined) throw new Error(`no reader worker pool for ${root}`)
  return pool
}

/** A root written by a writer (closed since): 3,000 metas in partition 0, 50 in partition 1, some deleted. */
export const writtenRoot = async (): Promise<string> => {
  const root = await scratch()
  const { index: writer } = await index(root, { readers: { min: 0 } })
  for (let from = 0; from < 3_000; from += 500) await writer.batchPut('t', 0, Array.from({ length: 500 }, (_, i) => meta(from + i)))
  await writer.batchPut('t', 1, Array.from({ length: 50 }, (_, i) => meta(i, 1)))
  await writer.deleteBefore('t', 1, 5_003)
  await writer.close()
  return root
}

/** Everything the read API answers on the written root, read through a reader-mode index with `placement`. */
export const readAll = async (root: string, placement: Placement) => {
  const { index: reader, faults } = await index(root, { mode: 'reader', readers: { min: 1, max: 1, placement } })
  const ids = [...Array.from({ length: 3_000 }, (_, i) => `p0-m${i}`), ...Array.from({ length: 50 }, (_, i) => `p1-m${i}`), 'absent', 'p0-m3000']
  const points = await Promise.all(ids.map((id) => reader.getByMsgId('t', id.startsWith('p1') ? 1 : 0, id)))
  const bySegmentOffset = await Promise.all([0, 1, 7, 2_999, 3_000].map((offset) => reader.getMsgIdBySegmentOffset('t', 0, { segmentId: offset % 2, offset })))
  const ranges = await Promise.all(
    [[0, 5_000, 5_999], [0, 5_100, 5_100], [0, 5_100, 5_101], [0, 4_000, 4_999], [0, 5_999, 9_999], [1, 0, 5_003]].map(([p, s, e]) => reader.getRangeByTime('t', p!, s!, e!)),
  )
  const scan = async (partition: number, s: number, e: number, limit?: number, stopAt?: number) => {
    const out: MessageMeta[] = []
    for await (const m of reader.scanByTime('t', partition, s, e, limit === undefined ? {} : { limit })) {
      out.push(m)
      if (out.length === stopAt) break
    }
    return out
  }
  const scans = [await scan(0, 0, 10_000), await scan(0, 5_100, 5_400, 7), await scan(0, 5_000, 10_000, undefined, 100), await scan(1, 0, 10_000), await scan(0, 7_000, 8_000)]
  return { points, bySegmentOffset, ranges, scans, readerReads: faults.calls.readerReads, primaryOpens: faults.opened.primary, reader }
}

/**
 * Checks that `remote` (a placement's {@link readAll}) answered exactly what `local` (in process) did, that the data
 * is what {@link writtenRoot} wrote (the comparison is not between two empty answers), and that every read went to a
 * reader (reader mode), none to a primary.
 */
export const expectSameReads = (local: Awaited<ReturnType<typeof readAll>>, remote: Awaited<ReturnType<typeof readAll>>): void => {
  expect(remote.points).toEqual(local.points)
  expect(remote.bySegmentOffset).toEqual(local.bySegmentOffset)
  expect(remote.ranges).toEqual(local.ranges)
  expect(remote.scans).toEqual(local.scans)
  expect(local.points[2_999]).toEqual(meta(2_999))
  expect(local.points.slice(-2)).toEqual([undefined, undefined])
  expect(local.points[3_000]).toBeUndefined() // p1-m0: timestamp 5,000, deleted
  expect(local.points[3_049]).toEqual(meta(49, 1))
  expect(local.scans.map((s) => s.length)).toEqual([3_000, 7, 100, 41, 0])
  expect(local.ranges[3]).toBeUndefined()
  expect([remote.primaryOpens, remote.readerReads > 0]).toEqual([0, true])
}

/** The binding's options of a reader's open. */
export const bindingOptions: OpenOptions = { readOnly: true, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 4 * 1024 * 1024, maxWriteBufferNumber: 2, enableStatistics: false }

/** A pool of `host` on `dir`, closed after the test. */
export const pool = (dir: string, host: ReaderHost = 'worker'): ReaderWorkers => {
  const opened = new ReaderWorkers(dir, 1, host)
  afterTest(() => opened.close())
  return opened
}

/** Opens `dir` read-only in process and through a pool of `host` (closed after the test). */
export const both = async (dir: string, host: ReaderHost = 'worker'): Promise<{ local: StorageHandle; remote: StorageHandle; pool: ReaderWorkers }> => {
  const remotes = pool(dir, host)
  const local = await rocksEngine.open(dir, bindingOptions)
  afterTest(() => local.close())
  const remote = await remotes.open(dir, bindingOptions)
  afterTest(() => remote.close())
  return { local, remote, pool: remotes }
}

/** The entries of an iteration as `key=value` hex strings, stopping after `stopAt`. */
export const collect = async (entries: AsyncIterable<{ key: Uint8Array; value: Uint8Array }>, stopAt = Infinity) => {
  const out: string[] = []
  for await (const { key, value } of entries) {
    out.push(`${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`)
    if (out.length >= stopAt) break
  }
  return out
}

/** The comparable part of an outcome: a value, or a failure's class, reason, path and message. */
export const outcome = async (run: () => Promise<unknown>): Promise<unknown> => {
  try {
    return { value: await run() }
  } catch (e) {
    return e instanceof StorageFailure ? { tag: e._tag, reason: e.reason, path: e.path, message: e.message } : { other: String(e) }
  }
}

/** UTF-8 bytes. */
export const encode = (s: string) => new TextEncoder().encode(s)

/** Writes `entries` into a new database in `dir` (closed after). */
export const writeDb = async (dir: string, entries: readonly (readonly [string, Uint8Array])[]): Promise<void> => {
  const writer = await rocksEngine.open(dir, { ...bindingOptions, readOnly: false })
  await writer.write(entries.map(([key, value]) => ({ type: 'put' as const, key: encode(key), value })))
  await writer.flush()
  await writer.close()
}
