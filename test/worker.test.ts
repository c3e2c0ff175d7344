/**
 * Readers off the main thread (`readers.placement: 'worker'`, src/reader-workers.ts): reads through worker threads
 * answer exactly what in-process readers answer (point reads, time ranges, scans with reverse, limit and an early
 * stop); a worker killed under reads is a reader failure (the readers restart on a new worker and the reads are
 * answered); the binding's errors cross with the same reason, message and path; injected faults apply as in process;
 * closing leaves no worker, no handle and no iterator. Real RocksDB in temp dirs, a ManualClock, no sleeps.
 */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FaultInjector, InvalidInput, ManualClock, StorageFailure, openIndex, rocksEngine, type Index, type IndexOptions, type MessageMeta, type OpenOptions, type StorageHandle } from '../src/index.js'
import { ReaderWorkers, readerWorkerPools } from '../src/reader-workers.js'
import { recordInspection } from './support/coverage.js'
import { openHarness, untilReaderCovers, waitFor } from './support/harness.js'
import { removeDir, tempDir } from './support/tmp.js'

const meta = (n: number, partition = 0): MessageMeta => ({ msgId: `p${partition}-m${n}`, timestamp: 5_000 + Math.floor(n / 3), segmentId: n % 2, offset: n, msgLen: 10 + n })
const placements = ['in-process', 'worker'] as const
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.reverse()) await c()
  cleanups.length = 0
})

const scratch = async (): Promise<string> => {
  const dir = await tempDir()
  cleanups.push(() => removeDir(dir))
  return dir
}

/** An index on `root` (a ManualClock, a FaultInjector of its own), closed after the test. */
const index = async (root: string, options: Partial<IndexOptions> = {}): Promise<{ index: Index; faults: FaultInjector; clock: ManualClock }> => {
  const faults = new FaultInjector()
  const clock = new ManualClock(1_000_000)
  const opened = await openIndex({ shards: 2, random: () => 0, ...options, root, clock, engine: faults, inspect: recordInspection })
  cleanups.push(() => opened.close())
  return { index: opened, faults, clock }
}

/** The reader worker pool of the index on `root`. */
const poolOf = (root: string): ReaderWorkers => {
  const pool = [...readerWorkerPools].find((p) => p.label === root)
  if (pool === undefined) throw new Error(`no reader worker pool for ${root}`)
  return pool
}

/** A root written by a writer (closed since): 3,000 metas in partition 0, 50 in partition 1, some deleted. */
const writtenRoot = async (): Promise<string> => {
  const root = await scratch()
  const { index: writer } = await index(root, { readers: { min: 0 } })
  for (let from = 0; from < 3_000; from += 500) await writer.batchPut('t', 0, Array.from({ length: 500 }, (_, i) => meta(from + i)))
  await writer.batchPut('t', 1, Array.from({ length: 50 }, (_, i) => meta(i, 1)))
  await writer.deleteBefore('t', 1, 5_003)
  await writer.close()
  return root
}

/** Everything the read API answers on the written root, read through a reader-mode index with `placement`. */
const readAll = async (root: string, placement: (typeof placements)[number]) => {
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
  return { points, bySegmentOffset, ranges, scans, readerReads: faults.calls.readerReads, primaryOpens: faults.opened.primary }
}

const bindingOptions: OpenOptions = { readOnly: true, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 4 * 1024 * 1024, maxWriteBufferNumber: 2, enableStatistics: false }

/** Opens `dir` read-only in process and through a reader worker (closed after the test). */
const both = async (dir: string): Promise<{ local: StorageHandle; remote: StorageHandle; pool: ReaderWorkers }> => {
  const pool = new ReaderWorkers(dir)
  cleanups.push(() => pool.close())
  const local = await rocksEngine.open(dir, bindingOptions)
  cleanups.push(() => local.close())
  const remote = await pool.open(dir, bindingOptions)
  cleanups.push(() => remote.close())
  return { local, remote, pool }
}

const collect = async (entries: AsyncIterable<{ key: Uint8Array; value: Uint8Array }>, stopAt = Infinity) => {
  const out: string[] = []
  for await (const { key, value } of entries) {
    out.push(`${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`)
    if (out.length >= stopAt) break
  }
  return out
}

/** The comparable part of an outcome: a value, or a failure's class, reason, path and message. */
const outcome = async (run: () => Promise<unknown>): Promise<unknown> => {
  try {
    return { value: await run() }
  } catch (e) {
    return e instanceof StorageFailure ? { tag: e._tag, reason: e.reason, path: e.path, message: e.message } : { other: String(e) }
  }
}

const encode = (s: string) => new TextEncoder().encode(s)

describe('reads through a worker placement', () => {
  it('should answer point reads, time ranges and scans exactly as in-process readers do, through the worker', async () => {
    const root = await writtenRoot()
    const local = await readAll(root, 'in-process')
    const remote = await readAll(root, 'worker')
    expect(remote.points).toEqual(local.points)
    expect(remote.bySegmentOffset).toEqual(local.bySegmentOffset)
    expect(remote.ranges).toEqual(local.ranges)
    expect(remote.scans).toEqual(local.scans)
    // The data is what was written, so the comparison is not between two empty answers.
    expect(local.points[2_999]).toEqual(meta(2_999))
    expect(local.points.slice(-2)).toEqual([undefined, undefined])
    expect(local.points[3_000]).toBeUndefined() // p1-m0: timestamp 5,000, deleted
    expect(local.points[3_049]).toEqual(meta(49, 1))
    expect(local.scans.map((s) => s.length)).toEqual([3_000, 7, 100, 41, 0])
    expect(local.ranges[3]).toBeUndefined()
    // Reader mode: every read went to a reader, none to a primary.
    expect([remote.primaryOpens, remote.readerReads > 0]).toEqual([0, true])
  })

  it('should iterate with bounds, reverse and limit, stop early and destroy the iterator, as the in-process handle does', async () => {
    const dir = await scratch()
    const writer = await rocksEngine.open(dir, { ...bindingOptions, readOnly: false })
    await writer.write(Array.from({ length: 2_500 }, (_, i) => ({ type: 'put' as const, key: encode(`k${String(i).padStart(5, '0')}`), value: encode(i % 7 === 0 ? '' : `v${i}`) })))
    await writer.close()
    const { local, remote, pool } = await both(dir)
    const ranges = [
      {},
      { reverse: true },
      { gte: encode('k00100'), lt: encode('k02000') },
      { gte: encode('k00100'), lte: encode('k02000'), reverse: true },
      { limit: 1 },
      { limit: 1, reverse: true },
      { gte: encode('k01000'), limit: 1_500 },
      { lt: encode('k00010'), reverse: true, limit: 3 },
      { gte: encode('z') },
      { limit: 0 },
    ]
    for (const range of ranges) expect(await collect(remote.iterate(range)), JSON.stringify(range)).toEqual(await collect(local.iterate(range)))
    expect(await collect(remote.iterate({ reverse: true }), 70)).toEqual(await collect(local.iterate({ reverse: true }), 70))
    expect((await collect(remote.iterate({}))).length).toBe(2_500)
    // The early stops above ended their iterators in the worker (return() destroys them), and so did the exhausted ones.
    expect(await pool.census()).toEqual({ handles: 1, iterators: 0 })
    const it = remote.iterate({})[Symbol.asyncIterator]()
    await it.next()
    expect(await pool.census()).toEqual({ handles: 1, iterators: 1 })
    await it.return!(undefined)
    expect(await pool.census()).toEqual({ handles: 1, iterators: 0 })
    const keys = [encode('k00000'), encode('nope'), encode('k02499'), encode('k00007')]
    expect(await remote.getManySettled!(keys)).toEqual(await local.getManySettled!(keys))
    expect(await remote.getMany(keys)).toEqual(await local.getMany(keys))
    expect(await remote.withSnapshot((view) => view.getMany(keys))).toEqual(await local.getMany(keys))
    expect(await remote.property('rocksdb.estimate-num-keys')).toBe(await local.property('rocksdb.estimate-num-keys'))
  })
})

describe('errors across the worker', () => {
  it('should fail as the binding fails in process: missing directory, read-only writes and flushes, a closed handle', async () => {
    const dir = await scratch()
    const writer = await rocksEngine.open(dir, { ...bindingOptions, readOnly: false })
    await writer.write([{ type: 'put', key: encode('a'), value: encode('1') }])
    await writer.close()
    const pool = new ReaderWorkers(dir)
    cleanups.push(() => pool.close())
    const missing = join(dir, 'nowhere')
    const openMissing = [await outcome(() => rocksEngine.open(missing, bindingOptions)), await outcome(() => pool.open(missing, bindingOptions))]
    expect(openMissing[0]).toMatchObject({ tag: 'StorageFailure', reason: 'missing', path: missing })
    expect(openMissing[1]).toEqual(openMissing[0])
    const { local, remote } = await both(dir)
    const calls: [string, (h: StorageHandle) => Promise<unknown>][] = [
      ['write', (h) => h.write([{ type: 'put', key: encode('b'), value: encode('2') }])],
      ['flush', (h) => h.flush()],
      ['getMany', (h) => h.getMany([encode('a')])],
    ]
    for (const [what, call] of calls) expect(await outcome(() => call(remote)), what).toEqual(await outcome(() => call(local)))
    expect(await outcome(() => local.write([{ type: 'put', key: encode('b'), value: encode('2') }]))).toMatchObject({ reason: 'read-only' })
    await local.close()
    await remote.close()
    const closedCalls: [string, (h: StorageHandle) => Promise<unknown>][] = [
      ['getMany', (h) => h.getMany([encode('a')])],
      ['getManySettled', (h) => h.getManySettled!([encode('a')])],
      ['iterate', (h) => collect(h.iterate({}))],
      ['property', (h) => h.property('rocksdb.estimate-num-keys')],
      ['close again', (h) => h.close()],
    ]
    for (const [what, call] of closedCalls) expect(await outcome(() => call(remote)), what).toEqual(await outcome(() => call(local)))
    expect(await outcome(() => local.getMany([encode('a')]))).toMatchObject({ reason: 'io', message: expect.stringContaining('closed') })
    await expect(pool.open(dir, { ...bindingOptions, readOnly: false })).rejects.toBeInstanceOf(StorageFailure)
  })

  it('should carry a corrupted block key by key with the same reason and message', async () => {
    const dir = await scratch()
    const writer = await rocksEngine.open(dir, { ...bindingOptions, readOnly: false })
    await writer.write(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: encode(`k${i}`), value: new Uint8Array(100).fill(i) })))
    await writer.flush()
    await writer.close()
    // The start of the only table file (its first data block) overwritten: its checksum no longer matches.
    const table = (await readdir(dir)).find((f) => f.endsWith('.sst'))!
    const file = await open(join(dir, table), 'r+')
    await file.write(Buffer.alloc(256, 0x5a), 0, 256, 0)
    await file.close()
    const { local, remote } = await both(dir)
    const keys = [encode('k1'), encode('k99'), encode('absent'), encode('k10')]
    const settled = (h: StorageHandle) =>
      h.getManySettled!(keys).then(({ values, errors }) => ({ values, errors: errors?.map((e) => e && { tag: e._tag, reason: e.reason, path: e.path, message: e.message }) }))
    const expected = await settled(local)
    expect(expected.errors?.[0]).toMatchObject({ reason: 'corruption', message: expect.stringMatching(/checksum mismatch/) })
    expect(await settled(remote)).toEqual(expected)
    expect(await outcome(() => remote.getMany(keys))).toEqual(await outcome(() => local.getMany(keys)))
    expect(await outcome(() => collect(remote.iterate({})))).toEqual(await outcome(() => collect(local.iterate({}))))
  })

  it.each(placements)('should apply injected faults to readers as in process (%s)', async (placement) => {
    const h = await openHarness({ readers: { min: 1, max: 1, placement } })
    cleanups.push(() => h.dispose())
    const { token } = await h.index.batchPut('t', 0, Array.from({ length: 10 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 0, token, 'p0-m3')
    const readerReads = h.faults.calls.readerReads
    h.faults.failNext('read', 1, { role: 'reader' }, { reason: 'corruption' })
    const failed = await outcome(() => h.index.getByMsgId('t', 0, 'p0-m3'))
    expect(failed).toMatchObject({ tag: 'StorageFailure', reason: 'corruption', message: expect.stringContaining('injected read failure (corruption)') })
    expect(h.faults.injected.read).toBe(1)
    expect(await h.index.getByMsgId('t', 0, 'p0-m3')).toEqual(meta(3))
    expect(h.faults.calls.readerReads).toBe(readerReads + 1)
    expect(readerWorkerPools.has(placement === 'worker' ? poolOf(h.root) : (undefined as never))).toBe(placement === 'worker')
  })
})

describe('worker failure and close', () => {
  it('should restart the readers of a worker killed under reads on a new worker, and answer every read', async () => {
    const root = await writtenRoot()
    const { index: reader, faults } = await index(root, { mode: 'reader', readers: { min: 2, max: 2, placement: 'worker' }, supervision: { readers: { backoff: { minMs: 0, jitter: 0 } } } })
    const events: string[] = []
    reader.subscribe((e) => events.push(`${e.type} ${e.actor}`))
    expect(await reader.getByMsgId('t', 0, 'p0-m1')).toEqual(meta(1))
    await waitFor(() => reader.stats().shards.every((s) => s.readers.serving === 2))
    const pool = poolOf(root)
    expect(pool.handles).toBe(2)
    const reads = Array.from({ length: 2_000 }, (_, i) => reader.getByMsgId('t', 0, `p0-m${i}`))
    // Kill the worker while MultiGets are on it (the lookups of this turn go out at its end): checked every turn.
    while (pool.pending === 0) await new Promise((resolve) => setImmediate(resolve))
    const killed = pool.pending
    await pool.terminate()
    expect(killed).toBeGreaterThan(0)
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 2_000 }, (_, i) => meta(i)))
    expect(events).toContain('failed reader-1')
    await waitFor(() => reader.stats().shards.every((s) => s.readers.serving === 2))
    expect(reader.stats().shards[0]!.restarts.readers).toBeGreaterThanOrEqual(1)
    // The restarted readers opened in a new worker, which answers from now on.
    expect([pool.threads, pool.handles, faults.liveHandles]).toEqual([1, 2, 2])
    const before = faults.calls.readerReads
    expect(await reader.getByMsgId('t', 0, 'p0-m2999')).toEqual(meta(2_999))
    expect(faults.calls.readerReads).toBe(before + 1)
  })

  it('should fail every call on a dead worker\'s handles with a transient StorageFailure', async () => {
    const dir = await scratch()
    const writer = await rocksEngine.open(dir, { ...bindingOptions, readOnly: false })
    await writer.write([{ type: 'put', key: encode('a'), value: encode('1') }])
    await writer.close()
    const { remote, pool } = await both(dir)
    const pending = remote.getMany([encode('a')])
    await pool.terminate()
    for (const call of [() => pending, () => remote.getMany([encode('a')]), () => collect(remote.iterate({})), () => remote.property('x')]) {
      expect(await outcome(call)).toMatchObject({ tag: 'StorageFailure', reason: 'io', path: dir, message: expect.stringContaining('reader worker thread') })
    }
    // Its instance died with the thread: closing the handle resolves; a new open starts a new thread.
    await remote.close()
    expect([pool.threads, pool.handles]).toEqual([0, 0])
    const again = await pool.open(dir, bindingOptions)
    expect(await again.getMany([encode('a')])).toEqual([Buffer.from('1')])
    await again.close()
  })

  it('should end the worker on close, with a scan still open, and leave no worker, handle or iterator', async () => {
    const root = await writtenRoot()
    const { index: reader, faults } = await index(root, { mode: 'reader', readers: { min: 1, max: 2, placement: 'worker' } })
    const scan = reader.scanByTime('t', 0, 0, 10_000)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    const pool = poolOf(root)
    expect(await pool.census()).toMatchObject({ iterators: 1 })
    expect(pool.threads).toBe(1)
    await reader.close()
    await expect(scan.next()).rejects.toMatchObject({ _tag: 'Closed' })
    expect([pool.threads, pool.handles, faults.liveHandles, readerWorkerPools.has(pool)]).toEqual([0, 0, 0, false])
    await expect(pool.open(reader.locate('t', 0).dir, bindingOptions)).rejects.toBeInstanceOf(StorageFailure)
  })

  it('should refuse an unknown placement or worker count as InvalidInput naming the option', async () => {
    const root = await scratch()
    await expect(openIndex({ root, readers: { placement: 'thread' as 'worker' } })).rejects.toMatchObject({ _tag: 'InvalidInput', field: 'readers.placement' })
    await expect(openIndex({ root, readers: { workerThreads: 0 } })).rejects.toMatchObject({ _tag: 'InvalidInput', field: 'readers.workerThreads' })
    await expect(openIndex({ root, readers: { workerThreads: 17 } })).rejects.toBeInstanceOf(InvalidInput)
  })
})
