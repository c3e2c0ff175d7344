/**
 * Trust: a read never lies and nothing is destroyed. Torn reader views are caught and never served; a corrupted block
 * fails the reads that meet it, alone, with a typed error; a failed refresh leaves the old view serving; a retried
 * retention reports everything it removed; a short view is no proof that a token is foreign. Real RocksDB in temp
 * dirs; torn and stale views are built from the real files of a real primary (test/support/views.ts).
 */
import { existsSync } from 'node:fs'
import { open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FaultInjector, ManualClock, ShardUnavailable, rebuildManifest, StorageFailure, defaults, isRockvisorError, openIndex, rocksEngine, type Index, type LifecycleEvent, type MessageMeta, type StorageHandle } from '../src/index.js'
import { getByMsgId, putMetas } from '../src/store.js'
import { readViewState, viewCheck } from '../src/views.js'
import { identityKey } from '../src/keys.js'
import { topicsOnDisk } from '../src/cli/root-info.js'
import { recordInspection } from './support/coverage.js'
import { cleanupAfterEach } from './support/cleanups.js'
import { shardStats, untilReaderCovers, waitFor } from './support/harness.js'
import { listTree } from './support/tmp.js'
import { RedirectingEngine, snapshot, tornCopy } from './support/views.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const { add, harness, scratch } = cleanupAfterEach(() => (viewCheck.enabled = true))
/** A reader-mode index on `root` over `engine`, recording its events. */
const readerIndex = async (root: string, engine: RedirectingEngine | FaultInjector, events: LifecycleEvent[] = []): Promise<Index> => {
  const index = await openIndex({ root, mode: 'reader', engine, clock: new ManualClock(1_000_000), inspect: recordInspection })
  index.subscribe((e) => events.push(e))
  add(() => index.close())
  return index
}
const settings = { ...defaults.readerRocksdb }

/**
 * A real primary in a scratch directory (`live`) with three batches of epoch 1, and `copy`, a snapshot of it taken
 * then (before any flush); runs `body`, then closes the primary.
 */
const beforeAFlush = async (body: (scene: { dir: string; live: string; primary: StorageHandle; copy: string }) => Promise<void>) => {
  const dir = await scratch()
  const live = join(dir, 'live')
  const primary = await rocksEngine.open(live, { ...settings, readOnly: false })
  try {
    for (let s = 1; s <= 3; s++) await putMetas(primary, 0, [meta(s)], { seq: s, epoch: 1 })
    await body({ dir, live, primary, copy: await snapshot(live, join(dir, 'copy')) })
  } finally {
    await primary.close()
  }
}

describe('torn views', () => {
  it('should see the hole a flush racing a read-only open leaves, by the flush epochs', () =>
    beforeAFlush(async ({ live, primary, copy }) => {
      await primary.flush()
      await putMetas(primary, 0, [meta(4)], { seq: 4, epoch: 2 })
      // The MANIFEST from before the flush, the WAL from after it: what the race gives a read-only open.
      const torn = await rocksEngine.open(await tornCopy(copy, live), { ...settings, readOnly: true })
      const whole = await rocksEngine.open(live, { ...settings, readOnly: true })
      try {
        // The stored sequence says the torn view is current, and the first three writes are not in it.
        expect(await readViewState(torn)).toEqual({ seq: 4, epoch: 2, missing: [1] })
        expect(await getByMsgId(torn, 0, 'm1')).toBeUndefined()
        expect(await getByMsgId(torn, 0, 'm4')).toEqual(meta(4))
        expect(await readViewState(whole)).toEqual({ seq: 4, epoch: 2, missing: [] })
        expect(await getByMsgId(whole, 0, 'm1')).toEqual(meta(1))
      } finally {
        await torn.close()
        await whole.close()
      }
    }))

  it.each([
    ['in the memtable the flush switches out', 'before'],
    ['in the memtable after it', 'after'],
  ] as const)('should see the hole when batches written beside the flush (a boundary epoch) land %s', (_where, lands) =>
    // Epoch 1 (solid) before the flush; epoch 2 (boundary) beside it; epoch 3 (solid) after it.
    beforeAFlush(async ({ dir, live, primary, copy }) => {
      if (lands === 'before') await putMetas(primary, 0, [meta(4)], { seq: 4, epoch: 2 })
      await primary.flush()
      if (lands === 'after') await putMetas(primary, 0, [meta(4)], { seq: 4, epoch: 2 })
      const boundaryOnly = await rocksEngine.open(await tornCopy(await snapshot(copy, join(dir, 'torn-1')), live), { ...settings, readOnly: true })
      await putMetas(primary, 0, [meta(5)], { seq: 5, epoch: 3 })
      const torn = await rocksEngine.open(await tornCopy(await snapshot(copy, join(dir, 'torn-2')), live), { ...settings, readOnly: true })
      const whole = await rocksEngine.open(live, { ...settings, readOnly: true })
      try {
        // Each torn view misses the flushed memtable, and its solid epoch 1 with it.
        const hole = await readViewState(boundaryOnly)
        if (lands === 'after') expect(hole).toEqual({ seq: 4, epoch: 2, missing: [1] })
        else expect(hole.missing).toEqual([]) // the new WAL is empty: an older view, whole (stale, not torn)
        expect(await readViewState(torn)).toEqual(lands === 'after' ? { seq: 5, epoch: 3, missing: [1] } : { seq: 5, epoch: 3, missing: [1, 2] })
        expect(await getByMsgId(torn, 0, 'm1')).toBeUndefined()
        expect(await readViewState(whole)).toEqual({ seq: 5, epoch: 3, missing: [] })
      } finally {
        await boundaryOnly.close()
        await torn.close()
        await whole.close()
      }
    }))

  /** A writer with three writes in one epoch, a flush, a fourth write; and a torn copy of its shard directory. */
  const tornScene = async () => {
    const w = await harness({ readers: { min: 0 }, freshness: { flushIntervalMs: 1_000 } })
    for (let n = 1; n <= 3; n++) await w.index.batchPut('t', 1, [meta(n)])
    const dir = w.index.locate('t', 1).dir
    const copy = await snapshot(dir, join(await scratch(), 'copy'))
    const flushes = w.faults.calls.flushes
    await w.clock.advance(2_000) // the time trigger flushes the primary
    await waitFor(() => w.faults.calls.flushes > flushes)
    const { token } = await w.index.batchPut('t', 1, [meta(4)])
    await tornCopy(copy, dir)
    const engine = new RedirectingEngine(rocksEngine)
    engine.redirect(dir, copy)
    return { w, token, engine }
  }

  it('should discard a torn view, count it and announce it, and answer from a whole one', async () => {
    const { w, token, engine } = await tornScene()
    const events: LifecycleEvent[] = []
    const index = await readerIndex(w.root, engine, events)
    expect(await index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    expect(engine.redirected).toBe(1)
    const s = index.stats().shards.find((x) => x.id === w.shardId('t', 1))!
    expect(s.integrity.tornViews).toBe(1)
    expect(s.restarts.readers).toBe(0)
    expect(events.filter((e) => e.type === 'torn-view')).toHaveLength(1)
  })

  it('should serve the hole as a wrong answer with the view check off (the check is what catches it)', async () => {
    const { w, token, engine } = await tornScene()
    viewCheck.enabled = false
    const index = await readerIndex(w.root, engine)
    expect(await index.getByMsgId('t', 1, 'm1', { after: token })).toBeUndefined()
    expect(await index.getByMsgId('t', 1, 'm4', { after: token })).toEqual(meta(4))
  })
})

describe('opens racing the primary', () => {
  it('should open a reader again at once when a file it listed was deleted meanwhile, without a failed refresh', async () => {
    const h = await harness({ readers: { min: 1, max: 1 } })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, first.token, 'm1')
    // What a refresh meets when the primary deletes a WAL or table file it had listed: ENOENT, reason missing.
    h.faults.failNext('open', 2, { role: 'reader' }, { reason: 'missing' })
    const second = await h.index.batchPut('t', 1, [meta(2)])
    await untilReaderCovers(h, 't', 1, second.token, 'm2')
    expect(h.faults.injected.open).toBe(2)
    const s = shardStats(h, 't', 1)
    expect(s.integrity.refreshFailures).toBe(0)
    expect(s.restarts.readers).toBe(0)
  })
})

describe('stale views', () => {
  it('should not call a token foreign because an open took an older view', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const dir = w.index.locate('t', 1).dir
    const stale = await snapshot(dir, join(await scratch(), 'stale'))
    const { token } = await w.index.batchPut('t', 1, [meta(2)])
    const engine = new RedirectingEngine(rocksEngine)
    // The first open and a refresh see the older (whole) view; the next one sees the write.
    engine.redirect(dir, stale, 2)
    const index = await readerIndex(w.root, engine)
    expect(await index.getByMsgId('t', 1, 'm2', { after: token })).toEqual(meta(2))
    expect(engine.redirected).toBe(2)
  })
})

/**
 * Overwrites 64 bytes in the by-id part of the largest table file of `dir` (keys sort by view: by id, by time, by
 * segment offset, each about a third of the file); returns its path.
 */
const corruptTable = async (dir: string): Promise<string> => {
  const tables = (await readdir(dir)).filter((n) => n.endsWith('.sst')).map((n) => join(dir, n))
  const sizes = await Promise.all(tables.map(async (t) => (await stat(t)).size))
  const file = tables[sizes.indexOf(Math.max(...sizes))]!
  const fd = await open(file, 'r+')
  try {
    await fd.write(Buffer.alloc(64, 0xa5), 0, 64, Math.floor(Math.max(...sizes) / 6))
  } finally {
    await fd.close()
  }
  return file
}

describe('corrupted blocks', () => {
  it('should fail only the reads that meet a corrupted block, typed, and keep serving the others without a restart', async () => {
    const root = await scratch()
    const metas = Array.from({ length: 3_000 }, (_, i) => meta(i))
    // Every batch of 500 metas (1,500 records) is flushed into a table file of its own.
    const first = await openIndex({ root, shards: 2, freshness: { flushEveryRecords: 1_500 } })
    for (let i = 0; i < metas.length; i += 500) await first.batchPut('t', 1, metas.slice(i, i + 500))
    const dir = first.locate('t', 1).dir
    const shard = first.locate('t', 1).id
    await first.close()
    await corruptTable(dir)

    const events: LifecycleEvent[] = []
    const index = await openIndex({ root, engine: new FaultInjector(), clock: new ManualClock(1_000_000), inspect: recordInspection })
    add(() => index.close())
    index.subscribe((e) => events.push(e))
    const results = await Promise.allSettled(metas.map((m) => index.getByMsgId('t', 1, m.msgId)))
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') expect(r.value).toEqual(metas[i])
    })
    expect(failed.length).toBeGreaterThan(0)
    expect(failed.length).toBeLessThan(metas.length / 2)
    for (const { reason } of failed) {
      expect(reason).toBeInstanceOf(StorageFailure)
      expect(reason).toMatchObject({ reason: 'corruption', shard, path: dir })
    }
    // Other keys kept being served through the same handles: nothing restarted.
    const s = index.stats().shards.find((x) => x.id === shard)!
    expect(s.restarts).toEqual({ primary: 0, readers: 0 })
    expect(s.state).toBe('running')
    expect(s.integrity.corruptReads).toBe(failed.length)
    expect(events.filter((e) => e.type === 'corruption')).toHaveLength(failed.length)
    expect(events.filter((e) => e.type === 'failed')).toHaveLength(0)
  })
})

describe('refresh failures', () => {
  it('should keep the old view serving a scan when a refresh fails, without a restart', async () => {
    const h = await harness({ readers: { min: 1, max: 1 } })
    const metas = Array.from({ length: 300 }, (_, i) => meta(i))
    const { token } = await h.index.batchPut('t', 1, metas)
    await untilReaderCovers(h, 't', 1, token, 'm0')
    const readerReads = h.faults.calls.readerReads
    const scan = h.index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]()
    const seen: MessageMeta[] = []
    for (let i = 0; i < 3; i++) seen.push((await scan.next()).value as MessageMeta)
    expect(h.faults.calls.readerReads).toBe(readerReads + 1) // the scan runs on the reader

    h.faults.failNext('open', 1, { role: 'reader' })
    await h.index.batchPut('t', 1, [meta(300)])
    // A fresh range read the stale reader cannot serve: the primary answers and the reader is asked to refresh, which
    // fails. (A point read would be answered by the reader's view merged with the memory of recent writes, no refresh.)
    expect(await h.index.getRangeByTime('t', 1, 1300, 1300)).toEqual({ first: { segmentId: 0, offset: 300 }, last: { segmentId: 0, offset: 300 } })
    await waitFor(() => shardStats(h, 't', 1).integrity.refreshFailures === 1)
    for (;;) {
      const next = await scan.next()
      if (next.done) break
      seen.push(next.value)
    }
    expect(seen).toEqual(metas)
    const s = shardStats(h, 't', 1)
    expect(s.restarts.readers).toBe(0)
    expect(s.readers).toEqual({ cooling: 1 })
    expect(h.events.filter((e) => e.type === 'refresh-failed')).toHaveLength(1)
    expect(h.events.filter((e) => e.type === 'failed')).toHaveLength(0)

    // After its refresh backoff the reader refreshes again when a read needs it.
    await h.clock.advance(defaults.readerSpec.backoff.minMs)
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
    const last = await h.index.batchPut('t', 1, [meta(301)])
    await untilReaderCovers(h, 't', 1, last.token, 'm301')
    expect(shardStats(h, 't', 1).restarts.readers).toBe(0)
  })
})

describe('retention', () => {
  /**
   * A new writer on a root whose shard of ('t', 1) holds m1: the shard exists on disk, not in this index (which
   * looks at its directory before a retention queues).
   */
  const reopenedWithM1 = async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    await h.index.close()
    const index = await openIndex({ root: h.root, readers: { min: 0 } })
    add(() => index.close())
    return index
  }

  it('should apply a retention and a write issued just after it in that order, on an index that has not opened the shard yet', async () => {
    // The retention looks at the shard's directory before it queues; the write issued after it must not overtake it.
    const index = await reopenedWithM1()
    const retention = index.deleteBefore('t', 1, 1_000)
    const write = index.batchPut('t', 1, [{ ...meta(2), timestamp: 500 }])
    expect((await retention).deleted).toBe(0)
    await write
    expect(await index.getByMsgId('t', 1, 'm2')).toEqual({ ...meta(2), timestamp: 500 })
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  it('should apply a write waiting behind such a retention before a retention issued after it, once the shard exists', async () => {
    const index = await reopenedWithM1()
    // The first retention creates the shard once it has looked at its directory: a second one issued right then
    // finds the shard, while the write issued between the two still waits for the first to queue.
    let second: Promise<{ deleted: number }> | undefined
    const unsubscribe = index.subscribe(() => {
      second ??= index.deleteBefore('t', 1, 1_000)
    })
    const first = index.deleteBefore('t', 1, 1_000)
    const write = index.batchPut('t', 1, [{ ...meta(2), timestamp: 500 }])
    expect((await first).deleted).toBe(0)
    await write
    expect(second).toBeDefined()
    unsubscribe()
    // Issued after the write, the second retention removes the meta it wrote.
    expect((await second!).deleted).toBe(1)
    expect(await index.getByMsgId('t', 1, 'm2')).toBeUndefined()
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  it('should apply a retention issued after a write to a shard nobody wrote yet, once the write created it', async () => {
    const h = await harness({ readers: { min: 0 } })
    // A shard not created yet: the first retention looks at its directory (absent), the write waits for it and
    // creates the shard, and the second retention waits for the write; the directory may not be on disk yet when it
    // runs (the primary opens after the write queued), and the write it must follow is queued all the same.
    const first = h.index.deleteBefore('t', 1, 5)
    const write = h.index.batchPut('t', 1, [{ ...meta(1), timestamp: 0 }])
    const second = h.index.deleteBefore('t', 1, 11)
    expect((await first).deleted).toBe(0)
    await write
    expect((await second).deleted).toBe(1)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toBeUndefined()
  })

  it('should report every meta it deleted when its retry resumes after a failed chunk', async () => {
    const h = await harness({ readers: { min: 0 } })
    const metas = Array.from({ length: 1_030 }, (_, i) => meta(i))
    await h.index.batchPut('t', 1, metas)
    // The first chunk (1,024 metas) is written; the second fails; the write is retried on the restarted primary.
    h.faults.failNext('write', 1, { role: 'primary' }, { skip: 1 })
    let settled = false
    const deleting = h.index.deleteBefore('t', 1, 1_000_000).finally(() => (settled = true))
    while (!settled) await h.clock.advance(50)
    expect((await deleting).deleted).toBe(1_030)
    expect(h.faults.injected.write).toBe(1)
    expect(await h.index.getByMsgId('t', 1, 'm1029')).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm0')).toBeUndefined()
  })

  it('should leave whole chunks removed, oldest first, when it fails after writing one, and finish when called again', async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, Array.from({ length: 1_030 }, (_, i) => meta(i)))
    // The first chunk (1,024 metas) is written; every later write fails until the request's deadline.
    h.faults.failNext('write', 1_000, { role: 'primary' }, { skip: 1 })
    let settled = false
    const failure = h.index
      .deleteBefore('t', 1, 1_000_000, { timeoutMs: 2_000 })
      .then(() => 'resolved', (e: unknown) => e)
      .finally(() => (settled = true))
    while (!settled) await h.clock.advance(50)
    expect(isRockvisorError(await failure)).toBe(true)
    h.faults.clear()
    h.index.recover()
    const left: string[] = []
    for await (const m of h.index.scanByTime('t', 1, 0, Number.MAX_SAFE_INTEGER)) left.push(m.msgId)
    expect(left).toEqual(Array.from({ length: 6 }, (_, i) => `m${1_024 + i}`))
    expect((await h.index.deleteBefore('t', 1, 1_000_000)).deleted).toBe(6)
  })
})

describe('damaged directories', () => {
  /** A root with metas in two shards of topic t, closed; returns the root and the directory of partition 1's shard. */
  const writtenRoot = async () => {
    const root = await scratch()
    const index = await openIndex({ root, shards: 2, freshness: { flushEveryRecords: 30 } })
    await index.batchPut('t', 1, Array.from({ length: 20 }, (_, i) => meta(i)))
    await index.batchPut('t', 3, [meta(100)])
    const { dir, id } = index.locate('t', 1)
    expect(index.locate('t', 3).id).not.toBe(id)
    await index.close()
    return { root, dir, shard: id }
  }

  /** The first table file of a shard directory, by number (the oldest flush: it holds the sequence and epoch keys). */
  const firstTable = async (dir: string): Promise<string> => {
    const tables = (await readdir(dir)).filter((n) => n.endsWith('.sst')).sort()
    expect(tables.length).toBeGreaterThan(0)
    return join(dir, tables[0]!)
  }

  // `opens`: RocksDB's open succeeds (the damage is met reading the view's state), and it rolls its MANIFEST, WAL
  // and OPTIONS files as any open does; the table files are kept all the same. Otherwise only its info log rotates.
  const damages: [string, string, (dir: string) => Promise<unknown>, boolean][] = [
    ['whose CURRENT is gone', 'CURRENT', async (dir: string) => rm(join(dir, 'CURRENT')), false],
    ['whose CURRENT lost its newline (RocksDB: "CURRENT file does not end with newline")', 'CURRENT file does not end with newline', async (dir: string) => writeFile(join(dir, 'CURRENT'), ''), false],
    ['whose CURRENT names a MANIFEST that is gone', 'names a file that is gone', async (dir: string) => writeFile(join(dir, 'CURRENT'), 'MANIFEST-999999\n'), false],
    [
      'whose table file holding its sequence is corrupted (its first block)',
      'checksum mismatch',
      async (dir: string) => {
        const file = await open(await firstTable(dir), 'r+')
        try {
          await file.write(Buffer.alloc(64, 0xa5), 0, 64, 0)
        } finally {
          await file.close()
        }
      },
      true,
    ],
  ]

  it.each(damages)('should refuse a shard %s at once, with the cause, deleting nothing, and serve the other shards', async (_, said, damage, opens) => {
    const { root, dir, shard } = await writtenRoot()
    await damage(dir)
    const before = await listTree(dir)
    const events: LifecycleEvent[] = []
    const clock = new ManualClock(1_000_000)
    const index = await openIndex({ root, engine: new FaultInjector(), clock, inspect: recordInspection })
    add(() => index.close())
    index.subscribe((e) => events.push(e))
    // No clock advance: a failure that restarting cannot cure is not retried under backoff.
    const write = await index.batchPut('t', 1, [meta(50)]).catch((e: unknown) => e)
    const read = await index.getByMsgId('t', 1, 'm1').catch((e: unknown) => e)
    for (const err of [write, read]) {
      expect(err).toBeInstanceOf(ShardUnavailable)
      expect(err).toMatchObject({ shard, cause: { reason: 'corruption', path: dir } })
      expect((err as ShardUnavailable).message).toContain(said)
    }
    const s = index.stats().shards.find((x) => x.id === shard)!
    expect(s.state).toBe('failed')
    expect(s.restarts.primary).toBe(0)
    expect(s.cause).toMatchObject({ reason: 'corruption', path: dir })
    expect(events.filter((e) => e.type === 'restarted')).toEqual([])
    // Not a file of the damaged directory was created, changed or deleted (but for RocksDB's info log, and what an
    // open that succeeded rolls); no table file was touched.
    const after = await listTree(dir)
    const tables = (list: string[]) => list.filter((x) => /\.sst /.test(x))
    expect(tables(after)).toEqual(tables(before))
    if (!opens) expect(after.filter((x) => !x.startsWith('LOG'))).toEqual(before.filter((x) => !x.startsWith('LOG')))
    // The other shard is untouched.
    expect(await index.getByMsgId('t', 3, 'm100')).toEqual(meta(100))
  })

  it.each(damages)('should refuse in reader mode a shard %s at once, with the cause, instead of answering it as empty', async (_, said, damage) => {
    const { root, dir, shard } = await writtenRoot()
    await damage(dir)
    const before = await listTree(dir)
    // The clock stands still: a reader restarted under backoff would leave the read waiting.
    const index = await openIndex({ root, mode: 'reader', engine: new FaultInjector(), clock: new ManualClock(1_000_000), inspect: recordInspection })
    add(() => index.close())
    const err = await index.getByMsgId('t', 1, 'm1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ShardUnavailable)
    expect(err).toMatchObject({ shard, cause: { reason: 'corruption', path: dir } })
    expect((err as ShardUnavailable).message).toContain(said)
    expect(index.stats().shards.find((x) => x.id === shard)!.restarts.readers).toBe(0)
    // A read-only open writes nothing but RocksDB's info log.
    expect((await listTree(dir)).filter((x) => !x.startsWith('LOG'))).toEqual(before.filter((x) => !x.startsWith('LOG')))
    expect(await index.getByMsgId('t', 3, 'm100')).toEqual(meta(100))
  })

  it('should refuse two shard directories that were swapped, by their identities, in both modes, instead of answering for the wrong partitions', async () => {
    const { root, dir } = await writtenRoot()
    const index0 = await openIndex({ root, readers: { min: 0 } })
    const other = index0.locate('t', 3)
    const mine = index0.locate('t', 1)
    await index0.close()
    const swap = async () => {
      await rename(dir, `${dir}.swap`)
      await rename(other.dir, dir)
      await rename(`${dir}.swap`, other.dir)
    }
    await swap()
    const before = await listTree(root)
    for (const mode of ['reader', 'writer'] as const) {
      const index = await openIndex({ root, mode, engine: new FaultInjector(), clock: new ManualClock(1_000_000), inspect: recordInspection })
      try {
        // Each read meets the other shard's database: refused at once, with the cause, never answered (m1 is not in
        // the database its directory now holds: the read would answer that it does not exist).
        for (const [p, msgId, at, found] of [[1, 'm1', mine, other], [3, 'm100', other, mine]] as const) {
          const err = await index.getByMsgId('t', p, msgId).catch((e: unknown) => e)
          expect(err).toBeInstanceOf(ShardUnavailable)
          expect(err).toMatchObject({ shard: at.id, cause: { reason: 'corruption', path: at.dir } })
          expect((err as Error).message).toContain(
            `the directory ${at.dir} holds the database of shard "${found.id} of 2", not of shard "${at.id} of 2" (its identity entry): ` +
              `shard directories were swapped, moved or restored to the wrong place, or the manifest's shard count changed since it was written. ` +
              `No read was answered from it and nothing in it was changed: put each shard directory back where its identity says, or restore the manifest's shard count`,
          )
          const s = index.stats().shards.find((x) => x.id === at.id)!
          if (mode === 'writer') expect(s.state).toBe('failed')
          expect(s.restarts).toEqual({ primary: 0, readers: 0 })
        }
        if (mode === 'writer') expect(await index.batchPut('t', 1, [meta(50)]).catch((e: unknown) => e)).toBeInstanceOf(ShardUnavailable)
      } finally {
        await index.close()
      }
      // Reader mode changed nothing but RocksDB's info logs.
      const logs = (list: string[]) => list.filter((x) => !/\/LOG/.test(x))
      if (mode === 'reader') expect(logs(await listTree(root))).toEqual(logs(before))
    }
    // Neither the manifest's rebuild nor the listing of what the root holds takes a shard for another.
    // (The first of the two directories met says so.)
    for (const listing of [() => rebuildManifest(root, { force: true }), () => topicsOnDisk(root)]) {
      const err = await listing().catch((e: unknown) => e)
      expect(err).toMatchObject({ _tag: 'StorageFailure', reason: 'corruption' })
      const [at, found] = (err as StorageFailure).path === mine.dir ? [mine, other] : [other, mine]
      expect((err as StorageFailure).path).toBe(at.dir)
      expect((err as Error).message).toContain(`holds the database of shard "${found.id}", not of shard "${at.id}" (its identity entry)`)
    }
    // Put back, the shards answer every meta: nothing was lost.
    await swap()
    const index = await openIndex({ root, readers: { min: 0 } })
    add(() => index.close())
    for (let i = 0; i < 20; i++) expect(await index.getByMsgId('t', 1, `m${i}`)).toEqual(meta(i))
    expect(await index.getByMsgId('t', 3, 'm100')).toEqual(meta(100))
  })

  /** Makes the shard in `dir` as an older version left it: no identity entry. */
  const forgetIdentity = async (dir: string): Promise<void> => {
    const raw = await rocksEngine.open(dir, { ...defaults.primaryRocksdb, readOnly: false })
    try {
      await raw.write([{ type: 'del', key: identityKey }])
      expect((await readViewState(raw)).identity).toBeUndefined()
    } finally {
      await raw.close()
    }
  }
  const identityIn = async (dir: string): Promise<string | undefined> => {
    const handle = await rocksEngine.open(dir, { ...defaults.readerRocksdb, readOnly: true })
    try {
      const found = (await readViewState(handle)).identity
      return found === undefined ? undefined : Buffer.from(found).toString()
    } finally {
      await handle.close()
    }
  }

  it('should add its identity to a shard written before identities existed, at its next write, when its topic records its count', async () => {
    const { root, dir, shard } = await writtenRoot()
    await forgetIdentity(dir)
    // A reader-mode index serves it as it is, and writes nothing.
    const before = await listTree(dir)
    const reader = await openIndex({ root, mode: 'reader', clock: new ManualClock(1_000_000) })
    expect(await reader.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await reader.close()
    expect((await listTree(dir)).filter((x) => !x.startsWith('LOG'))).toEqual(before.filter((x) => !x.startsWith('LOG')))
    // A writer's next batch adds it: the topic's SHARDS record confirms the count.
    const writer = await openIndex({ root, readers: { min: 0 } })
    await writer.batchPut('t', 1, [meta(60)])
    await writer.close()
    expect(await identityIn(dir)).toBe(`${shard} of 2`)
  })

  it('should quote at most 300 characters of an identity entry that is not one (the entry may hold anything)', async () => {
    const { root, dir } = await writtenRoot()
    const raw = await rocksEngine.open(dir, { ...defaults.primaryRocksdb, readOnly: false })
    await raw.write([{ type: 'put', key: identityKey, value: Buffer.from('x'.repeat(5_000)) }])
    await raw.close()
    const index = await openIndex({ root, readers: { min: 0 } })
    add(() => index.close())
    const err = await index.getByMsgId('t', 1, 'm1').catch((e: unknown) => e)
    expect(err).toMatchObject({ _tag: 'ShardUnavailable', cause: { reason: 'corruption', path: dir } })
    expect((err as Error).message).toContain(`holds the database of shard "${'x'.repeat(300)}", not of shard`)
  })

  it('should write the identity with the first batch of a new shard, also without the memory of recent writes', async () => {
    for (const recentWritesBytes of [0, 1024]) {
      const root = await scratch()
      const index = await openIndex({ root, shards: 2, readers: { min: 0 }, freshness: { recentWritesBytes } })
      await index.batchPut('t', 1, [meta(1)])
      const { dir, id } = index.locate('t', 1)
      await index.close()
      expect(await identityIn(dir)).toBe(`${id} of 2`)
    }
  })

  it('should not give an identity to a shard of a topic without a record of its count, whose manifest may be wrong', async () => {
    // As an older version left a topic: no SHARDS record, no identities. Its manifest was then edited to a larger
    // count (which every directory number fits) and a writer wrote: that count must not become the shards'.
    const { root, dir } = await writtenRoot()
    await forgetIdentity(dir)
    const shardsFile = join(dir, '..', '..', 'SHARDS')
    await rm(shardsFile)
    const manifest = join(root, 'rockvisor.json')
    await writeFile(manifest, '{"format":1,"shards":8}\n')
    const wrong = await openIndex({ root, readers: { min: 0 } })
    // A partition that 8 shards route to the directory of partition 1 under 2.
    const p = [...Array(64).keys()].find((q) => wrong.locate('t', q).dir === dir)!
    await wrong.batchPut('t', p, [meta(70)])
    await wrong.close()
    expect(await identityIn(dir)).toBeUndefined()
    expect(existsSync(shardsFile)).toBe(false)
    // The manifest put back, every meta answers.
    await writeFile(manifest, '{"format":1,"shards":2}\n')
    const right = await openIndex({ root, readers: { min: 0 } })
    add(() => right.close())
    for (let i = 0; i < 20; i++) expect(await right.getByMsgId('t', 1, `m${i}`)).toEqual(meta(i))
    expect(await right.getByMsgId('t', 3, 'm100')).toEqual(meta(100))
  })

  it("should refuse, in reader mode, a topic directory whose TOPIC file names another topic", async () => {
    const { root, dir } = await writtenRoot()
    await writeFile(join(dir, '..', '..', 'TOPIC'), 'someone else')
    const index = await openIndex({ root, mode: 'reader', engine: new FaultInjector(), clock: new ManualClock(1_000_000), inspect: recordInspection })
    add(() => index.close())
    const err = await index.getByMsgId('t', 1, 'm1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ShardUnavailable)
    expect((err as ShardUnavailable).cause).toMatchObject({ reason: 'corruption' })
    expect((err as ShardUnavailable).message).toContain('another topic')
  })
})

describe('replacement across primaries', () => {
  it('should displace a meta another writer put at a place while this primary was down', async () => {
    const h = await harness({
      readers: { min: 0 },
      supervision: { primary: { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 1, withinMs: 600_000 } } },
    })
    await h.index.batchPut('t', 1, [{ msgId: 'a1', timestamp: 1, segmentId: 1, offset: 10, msgLen: 1 }])
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary')
    // The directory is unlocked during the backoff: another writer puts a meta above every place this index wrote.
    const other = await openIndex({ root: h.root })
    await other.batchPut('t', 1, [{ msgId: 'b', timestamp: 2, segmentId: 1, offset: 20, msgLen: 1 }])
    await other.close()
    // This index's primary reopens; its write at the same place must replace the other writer's meta.
    const writing = h.index.batchPut('t', 1, [{ msgId: 'a2', timestamp: 3, segmentId: 1, offset: 20, msgLen: 1 }], { timeoutMs: 3_600_000 })
    await h.clock.advance(60_000)
    await writing
    expect(await h.index.getByMsgId('t', 1, 'b')).toBeUndefined()
    expect(await h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 1, offset: 20 })).toBe('a2')
  })
})
