/**
 * More edges of src/runtime.ts's `#openLease` found by mutation testing (TESTING.md, "Mutation testing", run R), on
 * real RocksDB with a ManualClock: which role creates the topic directory (a primary does, with its TOPIC file; a
 * reader-mode index creates nothing), which RocksDB settings each role opens with, that a primary's open refused
 * for permission gives up at once, and how an open that meets a missing file is retried (a reader's at once, 8 in a
 * row at most; a primary's under backoff).
 */
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FaultInjector, ManualClock, openIndex, rocksEngine, type Engine, type Index, type LifecycleEvent, type MessageMeta, type OpenOptions } from '../src/index.js'
import { openHarness, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
let h: Harness | undefined
const beside: Index[] = []
afterEach(async () => {
  for (const index of beside.splice(0)) await index.close()
  await h?.dispose()
  h = undefined
})

describe('the topic directory', () => {
  it("should be created with its TOPIC file by a topic's primary, and never by a reader-mode index", async () => {
    h = await openHarness({ readers: { min: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    expect(await readFile(join(h.root, 't', 'TOPIC'), 'utf8')).toBe('t')
    const clock = new ManualClock(1_000_000)
    const reader = await openIndex({
      root: h.root,
      mode: 'reader',
      clock,
      engine: new FaultInjector(),
      readers: { min: 1, max: 1, placement: 'in-process' },
      supervision: { readers: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } },
    })
    beside.push(reader)
    const events: LifecycleEvent[] = []
    reader.subscribe((e) => events.push(e))
    expect(await reader.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    // A reader-mode shard has no primary ('absent'), and runs.
    expect(reader.stats().shards.find((s) => s.id === h!.shardId('t', 1))).toMatchObject({ state: 'running', primary: 'none', readers: { serving: 1 } })
    await h.index.close()
    // The whole topic directory goes away; the reader's reopen finds no database, and creates nothing: a reader
    // checks a topic's TOPIC file, it never writes one.
    await rm(join(h.root, 't'), { recursive: true })
    const before = (await readdir(h.root, { recursive: true })).sort()
    reader.faults.crash('t', 1, 'readers')
    await waitFor(() => events.some((e) => e.type === 'restarted' && e.actor === 'reader-1'), 5_000)
    await clock.advance(100)
    await waitFor(() => events.some((e) => e.type === 'failed' && e.actor === 'reader-2'), 5_000)
    expect(events.find((e) => e.type === 'failed' && e.actor === 'reader-2')?.detail).toMatch(/^no database in /)
    expect((await readdir(h.root, { recursive: true })).sort()).toEqual(before)
  })
})

describe('the RocksDB settings of an open', () => {
  it("should open a primary with rocksdb.primary and a reader with rocksdb.reader, read-only", async () => {
    const opens: OpenOptions[] = []
    const recording: Engine = { open: (path, options) => (opens.push(options), rocksEngine.open(path, options)) }
    h = await openHarness(
      {
        readers: { min: 1, max: 1, placement: 'in-process' },
        rocksdb: { primary: { maxBackgroundJobs: 3 }, reader: { maxBackgroundJobs: 1 } },
      },
      recording,
    )
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    expect(await h.index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    const primary = opens.filter((o) => !o.readOnly)
    const readers = opens.filter((o) => o.readOnly)
    expect(primary.length).toBeGreaterThan(0)
    expect(readers.length).toBeGreaterThan(0)
    for (const o of primary) expect(o).toMatchObject({ maxOpenFiles: 10_000, maxBackgroundJobs: 3, maxWriteBufferNumber: 4 })
    for (const o of readers) expect(o).toMatchObject({ maxOpenFiles: -1, maxBackgroundJobs: 1, maxWriteBufferNumber: 2, createIfMissing: false })
  })
})

describe('a RocksDB open refused for permission', () => {
  it('should give up on the primary at once, with the cause, not restart it', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    h.faults.failNext('open', 1, { role: 'primary' }, { reason: 'permission' })
    const write = h.index.batchPut('t', 1, [meta(1)]).catch((e: unknown) => e)
    // The clock stands still: a primary restarted under backoff would never get here (bounded wait).
    await waitFor(() => h!.events.some((e) => e.type === 'failed' && e.actor === 'shard'))
    expect(await write).toMatchObject({ cause: { reason: 'permission' } })
    expect(h.events.filter((e) => e.type === 'restarted')).toEqual([])
    expect(h.index.stats().shards.find((s) => s.id === h!.shardId('t', 1))).toMatchObject({ state: 'failed', restarts: { primary: 0 }, cause: { reason: 'permission' } })
  })
})

describe("an open that meets a file RocksDB's listing named but a flush deleted (reason missing)", () => {
  it("should open a reader again at once, up to 8 opens in a row, then fail it", async () => {
    h = await openHarness({ readers: { min: 1, max: 1, placement: 'in-process' }, supervision: { readers: { backoff: { minMs: 100, jitter: 0 } } } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    expect(await h.index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    // 7 in a row: the 8th open serves, and the reader never failed.
    const before = h.faults.injected.open
    h.faults.failNext('open', 7, { role: 'reader' }, { reason: 'missing' })
    h.index.faults.crash('t', 1, 'readers')
    await waitFor(() => h!.events.some((e) => e.type === 'restarted' && e.actor === 'reader-1'))
    await h.clock.advance(100)
    await waitFor(() => h!.faults.injected.open === before + 7 && shardStats().readers.serving === 1)
    expect(h.events.filter((e) => e.type === 'failed' && e.actor === 'reader-2')).toEqual([])
    // 8 in a row: the open fails with the 8th, and the reader restarts under backoff (the clock stands still).
    h.faults.failNext('open', 8, { role: 'reader' }, { reason: 'missing' })
    h.index.faults.crash('t', 1, 'readers')
    await waitFor(() => h!.events.some((e) => e.type === 'restarted' && e.actor === 'reader-2'))
    await h.clock.advance(1_000)
    await waitFor(() => h!.events.some((e) => e.type === 'failed' && e.actor === 'reader-3'))
    expect(h.events.find((e) => e.type === 'failed' && e.actor === 'reader-3')?.detail).toContain('(missing)')
    expect(h.faults.injected.open).toBe(before + 15)
  })

  it('should restart a primary under backoff, not open it again at once', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    h.faults.failNext('open', 1, { role: 'primary' }, { reason: 'missing' })
    const write = h.index.batchPut('t', 1, [meta(1)], { timeoutMs: 3_600_000 })
    await waitFor(() => h!.events.some((e) => e.type === 'restarted' && e.actor === 'primary'))
    expect(shardStats()).toMatchObject({ state: 'restarting', restarts: { primary: 1 } })
    await h.clock.advance(100)
    await write
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })
})

const shardStats = () => h!.index.stats().shards.find((s) => s.id === h!.shardId('t', 1))!
