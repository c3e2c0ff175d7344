/**
 * Supervision on real RocksDB with a ManualClock: restarts, backoff, intensity, escalation, isolation, recovery,
 * the elastic pool, bounded queues and graceful close.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Closed, Overloaded, ShardUnavailable, StorageFailure, openIndex, rocksEngine, type Engine, type MessageMeta } from '../src/index.js'
import { holding, holdingOpens, overridingHandles } from './support/engines.js'
import { gate, openHarness, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
let h: Harness | undefined
afterEach(async () => {
  await h?.dispose()
  h = undefined
})


describe('primary supervision', () => {
  it('should reopen a crashed primary after its backoff, holding writes until then', async () => {
    h = await openHarness({ supervision: { primary: { backoff: { minMs: 500, maxMs: 5_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    const write = h.index.batchPut('t', 1, [meta(2)])
    let acked = false
    // A failure of the write is asserted by `await write` below; this observer must not leave it unhandled.
    void write.then(
      () => (acked = true),
      () => undefined,
    )
    await h.clock.advance(499)
    expect(acked).toBe(false)
    expect(shardStats(h, 't', 1).state).toBe('restarting')
    expect(shardStats(h, 't', 1).queues.pendingWrites).toBe(1)
    await h.clock.advance(1)
    await write
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', restarts: { primary: 1 } })
    expect(h.faults.maxWritersPerDir).toBe(1)
  })

  it('should back off exponentially between failed opens and give up past the intensity, isolating the shard', async () => {
    h = await openHarness({ supervision: { primary: { intensity: { maxRestarts: 3, withinMs: 60_000 }, backoff: { minMs: 100, factor: 2, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const other = [...Array(64).keys()].find((p) => h!.shardId('t', p) !== h!.shardId('t', 1))!
    await h.index.batchPut('t', other, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    const dir = h.index.locate('t', 1).dir
    h.faults.failNext('open', 100, { role: 'primary', dir })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    const write = h.index.batchPut('t', 1, [meta(2)]).catch((e: unknown) => e)
    for (const delay of [100, 200, 400]) {
      await h.event((e) => e.type === 'restarted' && e.actor === 'primary' && e.detail === `after ${delay} ms`, n)
      await h.clock.advance(delay)
    }
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    expect(await write).toBeInstanceOf(ShardUnavailable)
    await expect(h.index.batchPut('t', 1, [meta(3)])).rejects.toBeInstanceOf(ShardUnavailable)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'failed', restarts: { primary: 3 } })
    // Reads are still served by the shard's readers; the other shard never noticed.
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await h.index.batchPut('t', other, [meta(5)])
    expect(shardStats(h, 't', other)).toMatchObject({ state: 'running', restarts: { primary: 0 } })
    // Explicit recovery.
    h.faults.clear()
    h.index.recover('t', 1)
    await h.index.batchPut('t', 1, [meta(4)])
    expect(await h.index.getByMsgId('t', 1, 'm4')).toEqual(meta(4))
    expect(shardStats(h, 't', 1).state).toBe('running')
    expect(h.events.some((e) => e.type === 'recovered' && e.actor === 'primary')).toBe(true)
  })

  it('should reset the backoff after a stable period', async () => {
    h = await openHarness({ supervision: { primary: { backoff: { minMs: 100, factor: 2, jitter: 0 }, resetAfterMs: 5_000 } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const crashAndReopen = async (expectedDelay: number) => {
      const n = h!.events.length
      h!.index.faults.crash('t', 1, 'primary')
      const e = await h!.event((x) => x.type === 'restarted' && x.actor === 'primary', n)
      expect(e.detail).toBe(`after ${expectedDelay} ms`)
      await h!.clock.advance(expectedDelay)
      await h!.event((x) => x.type === 'opened' && x.actor === 'primary', n)
    }
    await crashAndReopen(100)
    await crashAndReopen(200)
    await h.clock.advance(5_000)
    await crashAndReopen(100)
  })

  it('should fail a write with StorageFailure when the engine fails it twice, and keep serving', async () => {
    h = await openHarness({ supervision: { primary: { backoff: { minMs: 0, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.index.faults.failNext('write', 2, { role: 'primary' })
    const err = await h.index.batchPut('t', 1, [meta(2)]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StorageFailure)
    expect((err as StorageFailure).reason).toBe('injected')
    expect(await h.index.getByMsgId('t', 1, 'm2')).toBeUndefined()
    await h.index.batchPut('t', 1, [meta(3)])
    expect(await h.index.getByMsgId('t', 1, 'm3')).toEqual(meta(3))
  })

  it('should retry a write once on the restarted primary when its first attempt fails', async () => {
    h = await openHarness({ supervision: { primary: { backoff: { minMs: 0, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.index.faults.failNext('write', 1, { role: 'primary' })
    await h.index.batchPut('t', 1, [meta(2)])
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
    expect(shardStats(h, 't', 1).restarts.primary).toBe(1)
  })

  it('should retry on the restarted primary a write whose handle another request failed and closed under it', async () => {
    // The primary's MultiGets wait while `holding` (then complete for real), so a write stays between its read of the
    // entries it replaces and its write batch while another request fails the primary.
    const held: (() => void)[] = []
    let holding = false
    const release = () => {
      holding = false
      held.splice(0).forEach((go) => go())
    }
    const closedWrites: string[] = []
    const engine: Engine = {
      open: async (path, options) => {
        const handle = await rocksEngine.open(path, options)
        return {
          path: handle.path,
          readOnly: handle.readOnly,
          getMany: async (keys) => {
            const values = await handle.getMany(keys)
            if (holding && !options.readOnly) await new Promise<void>((go) => held.push(go))
            return values
          },
          write: (ops) =>
            handle.write(ops).catch((e: unknown) => {
              closedWrites.push(String(e))
              throw e
            }),
          iterate: (range) => handle.iterate(range),
          withSnapshot: (fn) => handle.withSnapshot(fn),
          flush: () => handle.flush(),
          property: (name) => handle.property(name),
          close: () => handle.close(),
        }
      },
    }
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 0, jitter: 0 } } } }, engine)
    try {
      // m2 is written again below: a msgId the partition holds is looked up (a new one is not, see src/msgids.ts).
      await h.index.batchPut('t', 1, [meta(1), meta(2)])
      holding = true
      const write = h.index.batchPut('t', 1, [{ ...meta(2), msgLen: 99 }]).then(
        ({ token }) => token,
        (e: unknown) => e,
      )
      await waitFor(() => held.length === 1)
      holding = false
      // A read on the primary fails, and so does the probe after it (a broken handle): the primary is failed and its
      // handle closed at once (forced), the write's too.
      h.index.faults.failNext('read', 2, { role: 'primary' })
      expect(await h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' })).toEqual(meta(1))
      release()
      expect(await write).toEqual(expect.any(String))
    } finally {
      release()
    }
    // The write's first attempt met the closed handle; its retry went to the restarted primary.
    expect(closedWrites).toEqual([expect.stringContaining('RocksDB session is closed')])
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual({ ...meta(2), msgLen: 99 })
    expect(shardStats(h, 't', 1).restarts.primary).toBe(1)
  })
})

describe('reader supervision', () => {
  it('should replace a crashed reader after its backoff and answer the reads it held', async () => {
    h = await openHarness({ readers: { min: 2 }, supervision: { readers: { backoff: { minMs: 300, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 2)
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'readers')).toBe(2)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    // Two failures in a row: the pool's backoff grows (300 ms, then 600 ms).
    await h.event((e) => e.type === 'restarted' && e.detail?.endsWith('after 600 ms') === true, n)
    expect(shardStats(h, 't', 1).readers).toEqual({ waiting: 2 })
    await h.clock.advance(300)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    expect(shardStats(h, 't', 1).readers.waiting).toBe(1)
    await h.clock.advance(300)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 2)
    expect(shardStats(h, 't', 1).restarts.readers).toBe(2)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  it('should retry a read that fails once without restarting a reader that still answers', async () => {
    h = await openHarness({ readers: { min: 1 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    // The reader's view must cover the write, so that the read below goes to the reader, not to the primary.
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const readerReads = h.faults.calls.readerReads
    h.index.faults.failNext('read', 1, { role: 'reader' })
    const n = h.events.length
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    // The read failed (injected); a probe found the handle healthy, and the retry was served by the same reader.
    expect(h.faults.injected.read).toBe(1)
    expect(h.faults.calls.readerReads).toBe(readerReads + 2)
    expect(shardStats(h, 't', 1).restarts.readers).toBe(0)
    expect(h.events.slice(n).filter((e) => e.type === 'failed')).toEqual([])
  })

  it('should restart a reader whose handle is broken, and serve the read on another handle', async () => {
    h = await openHarness({ readers: { min: 1 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const readerReads = h.faults.calls.readerReads
    const primaryReads = h.faults.calls.primaryReads
    // The read and the probe both fail: the handle is broken.
    h.index.faults.failNext('read', 2, { role: 'reader' })
    const n = h.events.length
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    expect(h.faults.injected.read).toBe(2)
    expect(h.faults.calls.readerReads).toBe(readerReads)
    expect(h.faults.calls.primaryReads).toBe(primaryReads + 1)
    await h.event((e) => e.type === 'failed' && e.actor === 'reader-1', n)
  })

  it('should degrade the pool past the readers intensity, serve reads from the primary, and recover', async () => {
    h = await openHarness({ readers: { min: 1 }, supervision: { readers: { intensity: { maxRestarts: 2, withinMs: 60_000 }, backoff: { minMs: 0, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    const dir = h.index.locate('t', 1).dir
    h.faults.failNext('open', 100, { role: 'reader', dir })
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'readers')).toBe(1)
    await h.event((e) => e.type === 'degraded', n)
    await waitFor(() => Object.keys(shardStats(h!, 't', 1).readers).length === 0)
    expect(shardStats(h, 't', 1)).toMatchObject({ pool: 'degraded', state: 'running' })
    await h.index.batchPut('t', 1, [meta(2)])
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
    h.faults.clear()
    h.index.recover('t', 1)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    expect(shardStats(h, 't', 1).pool).toBe('healthy')
  })
})

describe('restart types and streams', () => {
  it('should let a temporary reader go without replacing it or degrading the pool', async () => {
    h = await openHarness({ readers: { min: 1 }, supervision: { readers: { restart: 'temporary' } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    const n = h.events.length
    h.index.faults.crash('t', 1, 'readers')
    await h.event((e) => e.type === 'failed' && e.actor === 'reader-1', n)
    await h.clock.advance(60_000)
    expect(shardStats(h, 't', 1)).toMatchObject({ pool: 'healthy', readers: {}, restarts: { readers: 0 } })
    expect(h.events.slice(n).some((e) => e.type === 'degraded' || e.type === 'restarted')).toBe(false)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  it('should replace a crashed primary even while a scan still holds its handle', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } } } })
    await h.index.batchPut('t', 1, Array.from({ length: 200 }, (_, i) => meta(i)))
    const scan = h.index.scanByTime('t', 1, 0, 10_000, { consistency: 'primary' })[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    await h.clock.advance(100)
    // The write goes through on the new primary although the scan was never finished.
    await h.index.batchPut('t', 1, [meta(500)])
    expect(await h.index.getByMsgId('t', 1, 'm500')).toEqual(meta(500))
    // The scan's handle is gone: it ends with a typed error (or ends), never hangs.
    const rest = await (async () => {
      try {
        for (let r = await scan.next(); !r.done; r = await scan.next());
        return 'ended'
      } catch (e) {
        return (e as { _tag?: string })._tag
      }
    })()
    expect(['ended', 'StorageFailure']).toContain(rest)
  })
})

describe('reader pool', () => {
  it('should grow under load up to max, retire idle readers down to min, and recycle old ones', async () => {
    h = await openHarness({ readers: { min: 1, max: 3, growAt: 1, idleMs: 10_000, maxLifetimeMs: 100_000 }, maintenanceIntervalMs: 1_000 })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    // A reader whose view holds m1, so that the reads below load the readers (a view without it is merged with the
    // memory of recent writes, which answers them at once, with no load on any handle).
    await untilReaderCovers(h, 't', 1, token, 'm1')
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    // (Rounds of reads until the pool has grown, or 10 s: the opens it starts take real time.)
    for (const start = Date.now(); Date.now() - start < 10_000 && (shardStats(h, 't', 1).readers.serving ?? 0) < 3; ) {
      await Promise.all(Array.from({ length: 16 }, () => h!.index.getByMsgId('t', 1, 'm1')))
    }
    expect(shardStats(h, 't', 1).readers.serving).toBe(3)
    await h.clock.advance(11_000)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1 && !shardStats(h!, 't', 1).readers.retiring)
    expect(h.events.filter((e) => e.type === 'retired').length).toBe(2)
    const before = h.events.length
    await h.clock.advance(100_000)
    await h.event((e) => e.type === 'retired', before)
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  // Without a memory of recent writes (recentWritesBytes 0), as a reader-mode index or a range read: a point read
  // that no view satisfies asks a refresh (the tests "refreshes with a memory of recent writes" below cover the rest).
  it('should refresh a stale reader so that reads return to the pool after writes', async () => {
    h = await openHarness({ readers: { min: 1 }, freshness: { recentWritesBytes: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    await h.index.batchPut('t', 1, [meta(2)])
    // The reader is behind: this read is served by the primary and triggers a refresh of the reader.
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
    await waitFor(() => h!.index.stats().totals.handles === 2 && shardStats(h!, 't', 1).readers.serving === 1)
    expect(h.faults.opened.reader).toBe(2)
  })
  it('should keep a reader whose refresh fails serving its old view, answer from the primary meanwhile, and refresh it after its backoff', async () => {
    h = await openHarness({ readers: { min: 1 }, freshness: { recentWritesBytes: 0 }, supervision: { readers: { backoff: { minMs: 100, jitter: 0 } } } })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, first.token, 'm1')
    const { token } = await h.index.batchPut('t', 1, [meta(2)])
    h.faults.failNext('open', 1, { role: 'reader' })
    const n = h.events.length
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
    await h.event((e) => e.type === 'refresh-failed' && e.actor === 'reader-1', n)
    expect(shardStats(h, 't', 1).readers).toEqual({ cooling: 1 })
    // The old view still serves what it holds.
    const readerReads = h.faults.calls.readerReads
    expect(await h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 10_000 })).toEqual(meta(1))
    expect(h.faults.calls.readerReads).toBe(readerReads + 1)
    await h.clock.advance(100)
    await untilReaderCovers(h, 't', 1, token, 'm2')
    expect(shardStats(h, 't', 1).restarts.readers).toBe(0)
    expect(h.events.slice(n).filter((e) => e.type === 'failed')).toEqual([])
  })
})

describe('queues and close', () => {
  it('should reject writes beyond the bounded queue with Overloaded while the primary is down', async () => {
    h = await openHarness({ queues: { maxPendingWrites: 3 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 4_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    // Settled from the start: a write failing before the clock moves is reported by the assertion below, not as an
    // unhandled rejection.
    const pending = Promise.allSettled([2, 3, 4].map((n) => h!.index.batchPut('t', 1, [meta(n)])))
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    await expect(h.index.batchPut('t', 1, [meta(5)])).rejects.toBeInstanceOf(Overloaded)
    await h.clock.advance(1_000)
    expect((await pending).filter((r) => r.status === 'rejected')).toEqual([])
    for (const n of [2, 3, 4]) expect(await h.index.getByMsgId('t', 1, `m${n}`)).toEqual(meta(n))
    expect(await h.index.getByMsgId('t', 1, 'm5')).toBeUndefined()
  })

  it('should close idempotently, drain accepted writes, release every handle and refuse later calls', async () => {
    h = await openHarness({ readers: { min: 2 } })
    await Promise.all([1, 2, 3].map((p) => h!.index.batchPut('t', p, [meta(p)])))
    // Observed from the start: if the close failed it, the assertion below says so (not an unhandled rejection).
    const inflight = h.index.batchPut('t', 1, [meta(9)]).then(
      () => 'acknowledged',
      (e: unknown) => e,
    )
    const first = h.index.close()
    const second = h.index.close()
    expect(second).toBe(first)
    await first
    expect(await inflight).toBe('acknowledged')
    expect(h.faults.liveHandles).toBe(0)
    expect(h.index.stats().totals).toEqual({ primaries: 0, readers: 0, handles: 0 })
    await expect(h.index.getByMsgId('t', 1, 'm1')).rejects.toBeInstanceOf(Closed)
    await expect(h.index.batchPut('t', 1, [meta(2)])).rejects.toBeInstanceOf(Closed)
    expect(h.events.filter((e) => e.type === 'closed').length).toBe(h.index.stats().shards.length)
  })

  it('should finish the writes accepted while their primary was still opening when close() was called, and keep them', async () => {
    // Read-write opens wait until the test lets them go: the writes below are accepted while the primary opens.
    let letGo: (() => void) | undefined
    const engine: Engine = {
      open: async (path, options) => {
        if (!options.readOnly) await new Promise<void>((go) => (letGo = go))
        return rocksEngine.open(path, options)
      },
    }
    h = await openHarness({ readers: { min: 0 } }, engine)
    const writes = [1, 2, 3].map((n) =>
      h!.index.batchPut('t', 1, [meta(n)]).then(
        () => 'acknowledged',
        (e: unknown) => e,
      ),
    )
    await waitFor(() => letGo !== undefined)
    expect(shardStats(h, 't', 1).primary).toBe('opening')
    const closing = h.index.close()
    await expect(h.index.batchPut('t', 1, [meta(4)])).rejects.toBeInstanceOf(Closed)
    letGo!()
    await closing
    expect(await Promise.all(writes)).toEqual(['acknowledged', 'acknowledged', 'acknowledged'])
    const again = await openIndex({ root: h.root, shards: 4 })
    try {
      expect(await Promise.all([1, 2, 3, 4].map((n) => again.getByMsgId('t', 1, `m${n}`)))).toEqual([meta(1), meta(2), meta(3), undefined])
    } finally {
      await again.close()
    }
  })

  it('should fail with Closed at once the writes waiting for a primary that backs off when close() is called', async () => {
    h = await openHarness({ supervision: { primary: { backoff: { minMs: 1_000, maxMs: 4_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    const waiting = h.index.batchPut('t', 1, [meta(2)]).then(
      () => 'acknowledged',
      (e: unknown) => e,
    )
    // The clock does not move: the close neither waits for the backoff nor for closeTimeoutMs.
    await h.index.close()
    const failure = await waiting
    expect(failure).toBeInstanceOf(Closed)
    expect((failure as Closed).message).toBe(`shard ${h.shardId('t', 1)} is closed`)
  })

  it('should wait closeTimeoutMs for a write that never finishes, then release every handle, failing the write typed', async () => {
    // The primary's writes wait for the test once it holds them (before reaching RocksDB).
    const writes = gate(false)
    const engine = holding(writes, 'primary', 'write')
    h = await openHarness({ readers: { min: 1 }, closeTimeoutMs: 2_000 }, engine)
    await h.index.batchPut('t', 1, [meta(1)])
    writes.hold()
    const stuck = h.index.batchPut('t', 1, [meta(2)]).then(
      () => 'acknowledged',
      (e: unknown) => e,
    )
    try {
      await waitFor(() => writes.waiting === 1)
      let closed = false
      const closing = h.index.close().then(() => (closed = true))
      // Accepted work is waited for, up to closeTimeoutMs by the index's clock: nothing closes before.
      await h.clock.advance(1_999)
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve))
      expect(closed).toBe(false)
      expect(h.faults.liveHandles).toBeGreaterThan(0)
      await h.clock.advance(1)
      await closing
      expect(h.faults.liveHandles).toBe(0)
      expect(h.index.stats().totals).toEqual({ primaries: 0, readers: 0, handles: 0 })
      // The write, let go at last, meets a released handle: a typed failure, never an acknowledgement.
      writes.open()
      expect(await stuck).toBeInstanceOf(StorageFailure)
    } finally {
      writes.open()
    }
  })

  it('should close while a reader is still opening, and release the handle that open brings afterwards', async () => {
    // Reader opens wait until the gate opens (then run for real): the close finds the reader in `opening`.
    const opens = gate()
    const engine = holdingOpens(opens, 'reader', 'before')
    h = await openHarness({ readers: { min: 1 } }, engine)
    try {
      await h.index.batchPut('t', 1, [meta(1)])
      await waitFor(() => opens.waiting === 1)
      expect(shardStats(h, 't', 1).readers).toEqual({ opening: 1 })
      const closing = h.index.close()
      // The shard closes without waiting for the reader's open (its actor is gone)...
      await waitFor(() => h!.events.some((e) => e.type === 'closed' && e.actor === 'shard'))
      expect(h.faults.opened.reader).toBe(0)
      // ...and the handle the open brings once it finishes is released, so close ends with nothing open.
      opens.open()
      await closing
    } finally {
      // Whatever failed above, the held open must finish for the index to close.
      opens.open()
    }
    expect(h.faults.opened.reader).toBe(1)
    expect(h.faults.liveHandles).toBe(0)
    expect(h.index.stats().totals).toEqual({ primaries: 0, readers: 0, handles: 0 })
    expect(h.events.some((e) => e.type === 'opened' && e.actor.startsWith('reader-'))).toBe(false)
  })

  it('should end close() at twice closeTimeoutMs while RocksDB still closes a handle, and let that close finish alone', async () => {
    // The primary's handle closes only when the test lets it.
    const closes = gate(false)
    const engine = overridingHandles({
      primary: (handle) => ({
        close: async () => {
          await closes.pass()
          return handle.close()
        },
      }),
    })
    h = await openHarness({ readers: { min: 0 }, closeTimeoutMs: 500 }, engine)
    try {
      await h.index.batchPut('t', 1, [meta(1)])
      closes.hold()
      let closed = false
      const closing = h.index.close().then(() => (closed = true))
      await waitFor(() => closes.waiting === 1)
      // closeTimeoutMs for the actors' ordered shutdown, then as long again for RocksDB's closes.
      await h.clock.advance(999)
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve))
      expect(closed).toBe(false)
      await h.clock.advance(1)
      await closing
      expect(h.faults.liveHandles).toBe(1)
      closes.open()
      await waitFor(() => h!.faults.liveHandles === 0)
    } finally {
      closes.open()
    }
  })

  it('should fail with Closed a read that outlasted the close and found its handle released, not with an I/O error', async () => {
    // The primary's MultiGets wait, once held, until let go (before reaching RocksDB).
    const reads = gate(false)
    const engine = holding(reads, 'primary', 'getManySettled')
    h = await openHarness({ readers: { min: 0 }, closeTimeoutMs: 500 }, engine)
    await h.index.batchPut('t', 1, [meta(1)])
    reads.hold()
    const read = h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' }).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    )
    try {
      await waitFor(() => reads.waiting === 1)
      const closing = h.index.close()
      // The read runs: close waits for it, then releases its handle anyway.
      await h.clock.advance(500)
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve))
      await h.clock.advance(500)
      await closing
      // (Its release runs in the background: the read goes on once the handle is closed.)
      await waitFor(() => h!.faults.liveHandles === 0)
      reads.open()
      const outcome = await read
      expect(outcome).toMatchObject({ error: { _tag: 'Closed' } })
      expect((outcome as { error: Closed }).error.message).toMatch(/^shard .* is closed: the index closed while this read ran, and released its handle \(/)
    } finally {
      reads.open()
    }
  })

  it('should never start an open that waited for its turn once close() stopped its actor, so nothing is created after', async () => {
    // One native open at a time in the process: shard A's primary open holds the turn (in RocksDB, until let go),
    // shard B's waits for it.
    const opens = gate()
    const started: string[] = []
    const engine = holdingOpens(opens, 'primary', 'after', started)
    h = await openHarness({ readers: { min: 0 }, closeTimeoutMs: 500, maxConcurrentOpens: 1 }, engine)
    try {
      void h.index.batchPut('t', 1, [meta(1)]).catch((e: unknown) => e)
      await waitFor(() => opens.waiting === 1)
      const other = [...Array(64).keys()].find((p) => h!.shardId('t', p) !== h!.shardId('t', 1))!
      void h.index.batchPut('t', other, [meta(2)]).catch((e: unknown) => e)
      const b = h.index.locate('t', other).dir
      // B's checks of its directories are done: it waits for the turn.
      await waitFor(() => existsSync(b))
      const closing = h.index.close()
      await h.clock.advance(500)
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve))
      await h.clock.advance(500)
      await closing
      // A's open completes (released as nobody's); B's never reaches RocksDB: no database appears in B.
      // (The open counts once RocksDB answers; only then is the wait for its release meaningful.)
      const opened = h.faults.opened.primary
      opens.open()
      await waitFor(() => h!.faults.opened.primary === opened + 1 && h!.faults.liveHandles === 0)
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve))
      expect(started).toEqual([h.index.locate('t', 1).dir])
      expect(existsSync(join(b, 'CURRENT'))).toBe(false)
      // So nothing holds B's lock: a new index writes there.
      const again = await openIndex({ root: h.root, readers: { min: 0 } })
      try {
        expect(await again.batchPut('t', other, [meta(3)])).toMatchObject({ bytes: expect.any(Number) })
      } finally {
        await again.close()
      }
    } finally {
      opens.open()
    }
  })

  it('should end close() at twice closeTimeoutMs while an open outlasts it, and release that handle once the open completes', async () => {
    // The primary's open (in RocksDB) waits until the test lets it go.
    const opens = gate()
    const engine = holdingOpens(opens, 'primary', 'after')
    h = await openHarness({ readers: { min: 0 }, closeTimeoutMs: 500 }, engine)
    try {
      const write = h.index.batchPut('t', 1, [meta(1)]).then(
        () => 'acknowledged',
        (e: unknown) => e,
      )
      await waitFor(() => opens.waiting === 1)
      let closed = false
      const closing = h.index.close().then(() => (closed = true))
      // closeTimeoutMs for the work (the write waits for the primary) and the actors, then as long again for the
      // opens still in RocksDB and the closes: close() then ends, though the open still runs (a stuck disk would
      // hold it for ever).
      await h.clock.advance(999)
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve))
      expect(closed).toBe(false)
      await h.clock.advance(1)
      await closing
      expect(await write).toBeInstanceOf(Closed)
      // The open completes: its handle (RocksDB's lock included) is released at once, nobody's.
      // (The open counts once RocksDB answers; only then is the wait for its release meaningful.)
      const opened = h.faults.opened.primary
      opens.open()
      await waitFor(() => h!.faults.opened.primary === opened + 1 && h!.faults.liveHandles === 0)
      const again = await openIndex({ root: h.root, readers: { min: 0 } })
      try {
        expect(await again.batchPut('t', 1, [meta(1)])).toMatchObject({ bytes: expect.any(Number) })
      } finally {
        await again.close()
      }
    } finally {
      opens.open()
    }
  })
})
