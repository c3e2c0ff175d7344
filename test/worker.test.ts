/**
 * Readers off the main thread (`readers.placement: 'worker'`, src/reader-workers.ts): reads through worker threads
 * answer exactly what in-process readers answer (point reads, time ranges, scans with reverse, limit and an early
 * stop); a worker killed under reads is a reader failure (the readers restart on a new worker and the reads are
 * answered); the binding's errors cross with the same reason, message and path; injected faults apply as in process;
 * closing leaves no worker, no handle and no iterator. Real RocksDB in temp dirs, a ManualClock, no sleeps.
 */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { InvalidInput, StorageFailure, openIndex, rocksEngine, type StorageHandle } from '../src/index.js'
import { ReaderWorkers, readerWorkerPools } from '../src/reader-workers.js'
import { openHarness, untilReaderCovers, waitFor } from './support/harness.js'
import { afterTest, bindingOptions, both, collect, encode, expectSameReads, index, meta, outcome, poolOf, readAll, scratch, writtenRoot } from './support/readers.js'

const placements = ['in-process', 'worker'] as const
describe('reads through a worker placement', () => {
  it('should answer point reads, time ranges and scans exactly as in-process readers do, through the worker', async () => {
    const root = await writtenRoot()
    const local = await readAll(root, 'in-process')
    const remote = await readAll(root, 'worker')
    expectSameReads(local, remote)
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
    afterTest(() => pool.close())
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
    afterTest(() => h.dispose())
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
    const failure = { tag: 'StorageFailure', reason: 'io', path: dir, message: expect.stringContaining('reader worker thread') }
    // A call in flight when the thread ends: answered (the thread may have answered before it ended) or failed as
    // the calls after it, never left waiting.
    const inFlight = (await outcome(() => pending)) as Record<string, unknown>
    if ('value' in inFlight) expect((inFlight.value as Uint8Array[]).map((v) => Buffer.from(v).toString())).toEqual(['1'])
    else expect(inFlight).toMatchObject(failure)
    for (const call of [() => remote.getMany([encode('a')]), () => collect(remote.iterate({})), () => remote.property('x')]) {
      expect(await outcome(call)).toMatchObject(failure)
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
