/**
 * Requests that wait for a handle when the control plane changes under them, on real RocksDB with a ManualClock (found
 * by mutation testing of src/shard.ts, TESTING.md): the index closes while the primary backs off (what waits fails with
 * Closed at once), or while a reader-mode read waits for a view that never comes; the primary exhausts its restart
 * intensity (writes and primary-only reads fail with ShardUnavailable, reads a reader can serve are served after a
 * refresh, and those that failed leave the queue of reads waiting for a handle; with no reader, everything that waits
 * fails); a writer-mode shard's readers exhaust theirs while a write waits for the primary (the write is not the
 * readers' to fail).
 */
import { describe, expect, it } from 'vitest'
import { Closed, FaultInjector, ManualClock, openIndex, rocksEngine, ShardUnavailable, StorageFailure, type Engine, type MessageMeta } from '../src/index.js'
import { settle } from '../src/clock.js'
import { recordInspection } from './support/coverage.js'
import { cleanupAfterEach } from './support/cleanups.js'
import { drive, orStillWaiting, shardStats, tracker, untilReaderCovers, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1_000 + n, segmentId: 0, offset: n, msgLen: 10 })
const { add, harness } = cleanupAfterEach()

/** Crashes the primary of partition 1 of topic t, and waits until its restart is scheduled. */
const crashPrimary = async (h: Harness): Promise<void> => {
  const n = h.events.length
  h.index.faults.crash('t', 1, 'primary')
  await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
}

const slowRestarts = { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 3, withinMs: 600_000 } }

describe('closing the index while requests wait for a handle', () => {
  it('should fail what waits for a primary that backs off with Closed at once, and close', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: slowRestarts } })
    await h.index.batchPut('t', 1, [meta(1)])
    await crashPrimary(h)
    const { outcomes, track } = tracker()
    track('write', h.index.batchPut('t', 1, [meta(2)]))
    track('read', h.index.getByMsgId('t', 1, 'm1'))
    await settle()
    expect(outcomes).toEqual({})
    expect(await orStillWaiting(h.index.close())).toBeUndefined()
    const closed = { error: expect.any(Closed) }
    expect(outcomes).toEqual({ write: closed, read: closed })
    expect((outcomes.write!.error as Closed).message).toBe(`shard ${h.shardId('t', 1)} is closed`)
  })

  it('should do the same after a reopen of the primary failed', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 }, intensity: { maxRestarts: 5, withinMs: 600_000 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    // The primary crashes; its reopen a second later fails, and it backs off again.
    h.index.faults.failNext('open', 1, { role: 'primary' })
    h.index.faults.crash('t', 1, 'primary')
    expect((await drive(h.clock, waitFor(() => shardStats(h, 't', 1).restarts.primary === 2))).error).toBeUndefined()
    const { outcomes, track } = tracker()
    track('write', h.index.batchPut('t', 1, [meta(2)]))
    await settle()
    expect(outcomes).toEqual({})
    expect(await orStillWaiting(h.index.close())).toBeUndefined()
    expect(outcomes).toEqual({ write: { error: expect.any(Closed) } })
  })

  it('should let what waits for a primary that is opening wait for that open, and fail with Closed when it fails', async () => {
    // The primary's opens wait while `gate.on`, and then fail.
    const gate = { on: false, waiting: [] as (() => void)[] }
    const engine: Engine = {
      open: async (path, options) => {
        if (!options.readOnly && gate.on) {
          await new Promise<void>((resolve) => gate.waiting.push(resolve))
          throw new StorageFailure({ reason: 'io', path, message: 'an open that failed' })
        }
        return rocksEngine.open(path, options)
      },
    }
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 }, intensity: { maxRestarts: 5, withinMs: 600_000 } } } }, engine)
    await h.index.batchPut('t', 1, [meta(1)])
    gate.on = true
    h.index.faults.crash('t', 1, 'primary')
    expect((await drive(h.clock, waitFor(() => gate.waiting.length === 1))).error).toBeUndefined()
    const { outcomes, track } = tracker()
    track('write', h.index.batchPut('t', 1, [meta(2)]))
    await settle()
    let closed = false
    const closing = h.index.close().then(() => (closed = true))
    await settle()
    expect(outcomes).toEqual({})
    expect(closed).toBe(false)
    for (const go of gate.waiting.splice(0)) go()
    expect(await orStillWaiting(closing)).toBe(true)
    expect(outcomes).toEqual({ write: { error: expect.any(Closed) } })
  })

  it('should fail a reader-mode read waiting for a view with Closed, and close', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    const index = await openIndex({ root: w.root, mode: 'reader', engine: faults, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 1, max: 1 } })
    add(() => index.close())
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    // The reader's refreshes fail from now on, and back off on the index's clock: the read waits for a view.
    faults.failNext('open', 1_000, { role: 'reader' })
    const ahead = `${w.shardId('t', 1)}@2`
    const { outcomes, track } = tracker()
    track('read', index.getByMsgId('t', 1, 'm1', { after: ahead }))
    await settle()
    expect(outcomes).toEqual({})
    expect(await orStillWaiting(index.close())).toBeUndefined()
    expect(outcomes).toEqual({ read: { error: expect.any(Closed) } })
  })
})

describe('a primary that exhausts its restart intensity while requests wait for it', () => {
  it('should fail the writes and primary-only reads with ShardUnavailable, and serve the reads a reader can serve', async () => {
    const h = await harness({
      readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 },
      queues: { maxPendingReads: 2 },
      supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 }, intensity: { maxRestarts: 1, withinMs: 600_000 } }, readers: { backoff: { minMs: 5_000, maxMs: 5_000, jitter: 0 } } },
    })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, first.token, 'm1')
    const second = await h.index.batchPut('t', 1, [meta(2)])
    // The primary crashes (restarted after 1 s): meanwhile a write, a primary-only read and a read of the reader's
    // stale view's future (after the second write's token) wait. The refresh that read asks for fails, and the
    // reader waits 5 s before it refreshes again: the read still waits when the primary gives up.
    await crashPrimary(h)
    h.index.faults.failNext('open', 1, { role: 'reader' })
    const { outcomes, track } = tracker()
    track('write', h.index.batchPut('t', 1, [meta(3)]))
    track('primary read', h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' }))
    track('read after the token', h.index.getRangeByTime('t', 1, 0, 10_000, { after: second.token }))
    await settle()
    expect(outcomes).toEqual({})
    // Its next open fails, and the one after would exceed the intensity: the primary gives up.
    h.index.faults.failNext('open', 1, { role: 'primary' })
    expect((await drive(h.clock, waitFor(() => shardStats(h, 't', 1).state === 'failed'))).error).toBeUndefined()
    await waitFor(() => Object.keys(outcomes).length === 2)
    const unavailable = { error: expect.any(ShardUnavailable) }
    expect(outcomes).toEqual({ write: unavailable, 'primary read': unavailable })
    // The primary read that failed left the queue: one more read may wait beside the one still waiting
    // (queues.maxPendingReads is 2).
    track('another read after the token', h.index.getRangeByTime('t', 1, 0, 10_000, { after: second.token }))
    // The reader refreshes once it may: the reads are served.
    expect((await drive(h.clock, waitFor(() => outcomes['read after the token'] !== undefined && outcomes['another read after the token'] !== undefined))).error).toBeUndefined()
    expect(outcomes['read after the token']).toEqual({ value: { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } } })
    expect(outcomes['another read after the token']).toEqual(outcomes['read after the token'])
  })

  it('should fail everything that waits when the shard has no reader', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 }, intensity: { maxRestarts: 1, withinMs: 600_000 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await crashPrimary(h)
    const { outcomes, track } = tracker()
    track('write', h.index.batchPut('t', 1, [meta(2)]))
    track('read', h.index.getRangeByTime('t', 1, 0, 10_000))
    await settle()
    expect(outcomes).toEqual({})
    h.index.faults.failNext('open', 1, { role: 'primary' })
    expect((await drive(h.clock, waitFor(() => shardStats(h, 't', 1).state === 'failed'))).error).toBeUndefined()
    await waitFor(() => Object.keys(outcomes).length === 2)
    expect(outcomes).toEqual({ write: { error: expect.any(ShardUnavailable) }, read: { error: expect.any(ShardUnavailable) } })
  })
})

describe("a writer-mode shard whose readers exhaust their restart intensity while a write waits for the primary", () => {
  it('should leave the write waiting for the primary, and write it once the primary is back', async () => {
    const h = await harness({
      readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 },
      supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 } }, readers: { backoff: { minMs: 10, maxMs: 10, jitter: 0 }, intensity: { maxRestarts: 1, withinMs: 600_000 } } },
    })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h, 't', 1).views.length === 1)
    await crashPrimary(h)
    const { outcomes, track } = tracker()
    track('write', h.index.batchPut('t', 1, [meta(2)]))
    await settle()
    // The reader crashes, and its restart fails: past its intensity, the pool is degraded.
    h.index.faults.failNext('open', 5, { role: 'reader' })
    h.index.faults.crash('t', 1, 'readers')
    expect((await drive(h.clock, waitFor(() => shardStats(h, 't', 1).pool === 'degraded'))).error).toBeUndefined()
    expect(outcomes).toEqual({})
    // A writer-mode shard does not give up for its readers: no cause to report.
    expect(shardStats(h, 't', 1).cause).toBeUndefined()
    // The primary reopens (at 1 s): the write goes through.
    expect((await drive(h.clock, waitFor(() => outcomes.write !== undefined))).error).toBeUndefined()
    expect(outcomes.write).toEqual({ value: expect.objectContaining({ token: expect.any(String) }) })
    expect(shardStats(h, 't', 1).cause).toBeUndefined()
  })
})
