/**
 * Fail fast, with the cause, within bounds. Each failure class meets its first error on the injected clock: the
 * non-transient ones (corruption, permission, a missing database in reader mode, a lock held elsewhere, a full disk)
 * without a single backoff cycle, and with their cause; deadlines end every wait with a Timeout that names what it
 * waited for; a failed read restarts nothing unless the handle is broken; reads in flight are bounded per shard.
 * Real RocksDB in temp dirs; time from a ManualClock (the clock never moves unless a test says so).
 */
import { spawnSync } from 'node:child_process'
import { chmod } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  FaultInjector,
  ManualClock,
  Overloaded,
  ShardUnavailable,
  StorageFailure,
  Timeout,
  openIndex,
  type Index,
  type MessageMeta,
} from '../src/index.js'
import { recordInspection } from './support/coverage.js'
import { cleanupAfterEach } from './support/cleanups.js'
import { drive, shardStats } from './support/harness.js'
import { mutantEnv } from './support/mutant-env.js'
import { removeDir, tempDir } from './support/tmp.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const { add, harness } = cleanupAfterEach()
const readerIndex = async (root: string, faults = new FaultInjector(), clock = new ManualClock(1_000_000)): Promise<Index> => {
  const index = await openIndex({ root, mode: 'reader', engine: faults, clock, inspect: recordInspection })
  add(() => index.close())
  return index
}

/**
 * The outcome of `p` with the clock standing still: a failure that needed a backoff cycle could never settle. (The
 * real-time bound only turns such a hang into a clear failure; it measures nothing.)
 */
const withoutClock = async <T>(p: Promise<T>, limitMs = 10_000): Promise<{ value?: T; error?: unknown } | 'needed the clock'> =>
  Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<'needed the clock'>((resolve) => setTimeout(() => resolve('needed the clock'), limitMs).unref()),
  ])

describe('failure classes: the first error, on the injected clock', () => {
  // Root ignores file permissions, so the index runs in a child process as the unprivileged user nobody; a process
  // that is not root cannot switch users, and skips this test (CI and the development machines run as root).
  it.skipIf(process.getuid?.() !== 0)('permission: a root the process may read but whose shard directory it may not use fails at once, with the cause', async () => {
    const parent = await tempDir()
    add(() => removeDir(parent))
    const root = join(parent, 'root')
    const writer = await openIndex({ root, shards: 2 })
    await writer.batchPut('t', 1, [meta(1)])
    const dir = writer.locate('t', 1).dir
    await writer.close()
    for (const d of [parent, root, join(root, 't'), join(root, 't', 'index')]) await chmod(d, 0o755)
    await chmod(join(root, 'rockvisor.json'), 0o644)
    await chmod(dir, 0o700)
    const tsx = createRequire(import.meta.url).resolve('tsx/cli')
    const run = spawnSync(process.execPath, [tsx, join(import.meta.dirname, 'support', 'permission-process.ts'), root], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, ...mutantEnv(), HOME: parent, TSX_TSCONFIG_PATH: join(import.meta.dirname, '..', 'tsconfig.json') },
    })
    expect(run.status, run.stderr).toBe(0)
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as {
      write: { tag: string; reason?: string; cause?: { reason: string; path: string } }
      read: { tag: string; cause?: { reason: string; path: string } }
      advancedMs: number
      state: string
      restarts: { primary: number }
      cause: { reason: string; path: string }
    }
    expect(out.advancedMs).toBe(0)
    expect(out.write.tag).toBe('ShardUnavailable')
    expect(out.write.cause).toMatchObject({ reason: 'permission' })
    expect(out.read.tag).toBe('ShardUnavailable')
    expect(out).toMatchObject({ state: 'failed', restarts: { primary: 0 }, cause: { reason: 'permission' } })
  })

  it('missing: a reader-mode read after a token of a shard with no database fails at once, naming the directory', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const index = await readerIndex(w.root)
    // A token of shard t/0 (no write ever went there), as another root could have handed out.
    const absent = w.index.locate('t', 3)
    const err = await index.getByMsgId('t', 3, 'm1', { after: `${absent.id}@7` }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StorageFailure)
    expect(err).toMatchObject({ reason: 'missing', path: absent.dir, shard: absent.id })
    // Nothing was created, and no shard started.
    expect(index.stats().shards).toEqual([])
  })

  it('lock: a second writer of a root gets the lock error at once, and the shard names it as its cause', async () => {
    const h = await harness()
    await h.index.batchPut('t', 1, [meta(1)])
    const clock = new ManualClock(1_000_000)
    const second = await openIndex({ root: h.root, clock, engine: new FaultInjector(), inspect: recordInspection })
    add(() => second.close())
    const outcome = await withoutClock(second.batchPut('t', 1, [meta(2)]))
    expect(outcome).not.toBe('needed the clock')
    const { error } = outcome as { error: unknown }
    expect(error).toBeInstanceOf(StorageFailure)
    expect(error).toMatchObject({ reason: 'locked', path: h.index.locate('t', 1).dir })
    const s = second.stats().shards[0]!
    expect(s).toMatchObject({ state: 'failed', restarts: { primary: 0 }, cause: { reason: 'locked', path: h.index.locate('t', 1).dir } })
    // Later writes get the same error at once, and the write was never applied.
    await expect(second.batchPut('t', 1, [meta(3)])).rejects.toMatchObject({ reason: 'locked' })
    expect(await h.index.getByMsgId('t', 1, 'm2')).toBeUndefined()
  })

  it('no-space: a write the disk refuses fails at once, typed; the primary reopens and the shard writes again by itself', async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.faults.failNext('write', 1, { role: 'primary' }, { reason: 'no-space' })
    const outcome = await withoutClock(h.index.batchPut('t', 1, [meta(2)]))
    expect(outcome).not.toBe('needed the clock')
    const { error } = outcome as { error: unknown }
    expect(error).toBeInstanceOf(StorageFailure)
    expect(error).toMatchObject({ reason: 'no-space' })
    // Space is back: the next write waits for the reopened primary (one backoff) and succeeds.
    const next = await drive(h.clock, h.index.batchPut('t', 1, [meta(3)], { timeoutMs: 3_600_000 }))
    expect(next.error).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm2')).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm3')).toEqual(meta(3))
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', restarts: { primary: 1 } })
  })

  it('transient: an injected open failure is retried under backoff (the contrast: a backoff cycle before success)', async () => {
    const h = await harness({ readers: { min: 0 } })
    h.faults.failNext('open', 1, { role: 'primary' })
    // (It cannot settle while the clock stands still, whatever the real time allowed.)
    expect(await withoutClock(h.index.batchPut('t', 1, [meta(0)], { timeoutMs: 3_600_000 }), 300)).toBe('needed the clock')
    const { error, advancedMs } = await drive(h.clock, h.index.batchPut('t', 1, [meta(1)], { timeoutMs: 3_600_000 }))
    expect(error).toBeUndefined()
    expect(advancedMs).toBeGreaterThan(0)
    expect(shardStats(h, 't', 1).restarts.primary).toBe(1)
  })
})

describe('deadlines', () => {
  it('should end a reader-mode read waiting for a view that never comes with a Timeout naming what it waited for', async () => {
    const w = await harness({ readers: { min: 0 } })
    const { token } = await w.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    faults.failNext('open', 1_000, { role: 'reader' })
    const clock = new ManualClock(1_000_000)
    const index = await readerIndex(w.root, faults, clock)
    const { error, advancedMs } = await drive(clock, index.getByMsgId('t', 1, 'm1', { after: token, timeoutMs: 250 }))
    expect(error).toBeInstanceOf(Timeout)
    expect(error).toMatchObject({ shard: w.shardId('t', 1), timeoutMs: 250, aborted: false })
    expect((error as Timeout).waitedFor).toContain(`sequence >= ${token.slice(token.lastIndexOf('@') + 1)}`)
    expect(advancedMs).toBeGreaterThanOrEqual(250)
    expect(index.stats().shards[0]!.queues.pendingReads).toBe(0)
  })

  it('should end a read when its signal aborts', async () => {
    const w = await harness({ readers: { min: 0 } })
    const { token } = await w.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    faults.failNext('open', 1_000, { role: 'reader' })
    const index = await readerIndex(w.root, faults)
    const controller = new AbortController()
    const read = index.getByMsgId('t', 1, 'm1', { after: token, signal: controller.signal }).catch((e: unknown) => e)
    await new Promise((resolve) => setImmediate(resolve))
    controller.abort()
    expect(await read).toMatchObject({ _tag: 'Timeout', aborted: true })
  })

  it('should time out a write waiting for its primary, and never apply it afterwards', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.index.faults.crash('t', 1, 'primary')
    const { error } = await drive(h.clock, h.index.batchPut('t', 1, [meta(2)], { timeoutMs: 200 }))
    expect(error).toBeInstanceOf(Timeout)
    expect((error as Timeout).waitedFor).toContain('the primary of shard')
    // The primary comes back; the timed-out write was not applied, a later one is.
    expect((await drive(h.clock, h.index.batchPut('t', 1, [meta(3)], { timeoutMs: 3_600_000 }))).error).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm2')).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm3')).toEqual(meta(3))
  })

  it('should refuse a bad timeoutMs or signal before anything runs', async () => {
    const h = await harness()
    await expect(h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 0 })).rejects.toMatchObject({ _tag: 'InvalidInput', field: 'timeoutMs' })
    await expect(h.index.batchPut('t', 1, [meta(1)], { signal: 'stop' as never })).rejects.toMatchObject({ _tag: 'InvalidInput', field: 'signal' })
    expect(h.index.stats().shards).toEqual([])
  })
})

describe('read failures', () => {
  it('should not restart the primary for one failed read', async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    for (let i = 0; i < 5; i++) {
      h.faults.failNext('read', 1, { role: 'primary' })
      expect(await h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' })).toEqual(meta(1))
    }
    expect(h.faults.injected.read).toBe(5)
    expect(shardStats(h, 't', 1).restarts.primary).toBe(0)
    expect(h.events.filter((e) => e.type === 'failed')).toEqual([])
  })
})

describe('bounded reads in flight', () => {
  it('should refuse the reads beyond maxInflightReads at once, and answer every admitted one right', async () => {
    const h = await harness({ readers: { min: 0 }, queues: { maxInflightReads: 50 } })
    const metas = Array.from({ length: 50 }, (_, i) => meta(i))
    await h.index.batchPut('t', 1, metas)
    const reads = Array.from({ length: 500 }, (_, i) => h.index.getByMsgId('t', 1, `m${i % 50}`))
    let peak = 0
    const sample = setInterval(() => (peak = Math.max(peak, shardStats(h, 't', 1).queues.pendingReads)), 0)
    const results = await Promise.allSettled(reads)
    clearInterval(sample)
    const served = results.flatMap((r, i) => (r.status === 'fulfilled' ? [[i, r.value] as const] : []))
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    expect(served).toHaveLength(50)
    for (const [i, value] of served) expect(value).toEqual(meta(i % 50))
    expect(refused).toHaveLength(450)
    for (const r of refused) expect(r.reason).toBeInstanceOf(Overloaded)
    expect((refused[0]!.reason as Overloaded).message).toBe(`shard ${h.shardId('t', 1)}: 50 reads already in flight (queues.maxInflightReads)`)
    expect(peak).toBeLessThanOrEqual(50)
    expect(shardStats(h, 't', 1).queues.pendingReads).toBe(0)
  })

  it('should count scans waiting for their consumer until they end, and say so when they fill the bound', async () => {
    const h = await harness({ readers: { min: 0 }, queues: { maxInflightReads: 2 } })
    await h.index.batchPut('t', 1, [meta(1), meta(2)])
    // Two scans, each handed its first entry and left waiting for its consumer.
    const scans = [0, 1].map(() => h.index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]())
    for (const scan of scans) expect(await scan.next()).toEqual({ done: false, value: meta(1) })
    expect(shardStats(h, 't', 1).queues).toMatchObject({ pendingReads: 2, inflight: 0 })
    const refused = await h.index.getByMsgId('t', 1, 'm1').catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(Overloaded)
    expect((refused as Overloaded).message).toBe(
      `shard ${h.shardId('t', 1)}: 2 reads already in flight (queues.maxInflightReads); 2 of them scans waiting for their consumer, which hold their place until they end (finish them or call return())`,
    )
    // One scan ends (its consumer stops): its place is free.
    await scans[0]!.return!()
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await scans[1]!.return!()
    expect(shardStats(h, 't', 1).queues.pendingReads).toBe(0)
  })
})

describe('causes', () => {
  it('should say why a shard is unavailable: the cause in the error and in stats', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 0, withinMs: 60_000 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.faults.failNext('open', 1, { role: 'primary' })
    h.index.faults.crash('t', 1, 'primary')
    const { error } = await drive(h.clock, h.index.batchPut('t', 1, [meta(2)]))
    expect(error).toBeInstanceOf(ShardUnavailable)
    expect((error as ShardUnavailable).cause).toMatchObject({ reason: 'injected' })
    expect((error as ShardUnavailable).message).toContain('index.recover')
    expect(shardStats(h, 't', 1).cause).toMatchObject({ reason: 'injected' })
  })
})
