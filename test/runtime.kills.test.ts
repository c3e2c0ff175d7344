/**
 * The edges of src/runtime.ts that the supervision suites reach only loosely, found by mutation testing (TESTING.md,
 * "Mutation testing"), on real RocksDB with a ManualClock: the exact moment maintenance retires an idle or an old
 * reader, what `faults.crash` counts, how stats name each state of a shard, that the supervisors' backoffs run on
 * the index's clock, that a recovered pool serves again in reader mode, and what a throwing listener's warning says.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { FaultInjector, ManualClock, openIndex, rocksEngine, ShardUnavailable, type Engine, type LifecycleEvent, type MessageMeta } from '../src/index.js'
import { recordInspection } from './support/coverage.js'
import { openHarness, shardStats, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
let h: Harness | undefined
afterEach(async () => {
  await h?.dispose()
  h = undefined
})

describe('pool maintenance on the clock', () => {
  it('should retire a reader idle for exactly idleMs above min, and not a millisecond before', async () => {
    h = await openHarness({ readers: { min: 1, max: 2, growAt: 1, idleMs: 1_000, maxLifetimeMs: 1_000_000 }, maintenanceIntervalMs: 100 })
    const start = h.clock.now()
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).readers.serving === 1)
    // Reads queue up and the pool grows to max; the clock stands still, so every use is at `start`.
    for (let round = 0; round < 50 && (shardStats(h, 't', 1).readers.serving ?? 0) < 2; round++) {
      await Promise.all(Array.from({ length: 16 }, () => h!.index.getByMsgId('t', 1, 'm1')))
    }
    await waitFor(() => shardStats(h!, 't', 1).views.length === 2)
    expect(h.clock.now()).toBe(start)
    const n = h.events.length
    // Maintenance ticks every 100 ms from the start: the tick at start + 1000 is the first that sees 1000 ms idle.
    await h.clock.advance(999)
    expect(h.events.slice(n).filter((e) => e.type === 'retired')).toEqual([])
    await h.clock.advance(1)
    // (Bounded waits: the retirement closes a real handle first, and a mutant that never retires fails in 2 s.)
    await waitFor(() => h!.events.slice(n).some((e) => e.type === 'retired'), 2_000)
    await waitFor(() => shardStats(h!, 't', 1).views.length === 1)
    // The other reader is at min now: idle as long as it likes, it stays.
    await h.clock.advance(10_000)
    expect(h.events.slice(n).filter((e) => e.type === 'retired').length).toBe(1)
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
  })

  it('should recycle a reader at exactly maxLifetimeMs even at min, replacing it', async () => {
    h = await openHarness({ readers: { min: 1, max: 1, idleMs: 1, maxLifetimeMs: 5_000 }, maintenanceIntervalMs: 100 })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).views.length === 1)
    const [first] = shardStats(h, 't', 1).views
    expect(first!.ageMs).toBe(0)
    const n = h.events.length
    // Ticks come every 100 ms from the index's start; the reader opened at a tick's time or between two.
    await h.clock.advance(4_900)
    expect(shardStats(h, 't', 1).views[0]).toMatchObject({ reader: first!.reader, ageMs: 4_900 })
    expect(h.events.slice(n).filter((e) => e.type === 'retired')).toEqual([])
    // Idle at min is never retired for idleness (idleMs 1): only the lifetime ends it.
    await h.clock.advance(100)
    await waitFor(() => h!.events.slice(n).some((e) => e.type === 'retired' && e.actor === first!.reader), 2_000)
    await waitFor(() => shardStats(h!, 't', 1).views.some((v) => v.reader !== first!.reader))
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
  })
})

describe('faults.crash', () => {
  it('should count the handles it crashed: the primary, every reader, one reader, or none', async () => {
    h = await openHarness({ readers: { min: 2, max: 2 }, supervision: { primary: { backoff: { minMs: 100, jitter: 0 } }, readers: { backoff: { minMs: 100, jitter: 0 } } } })
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(0)
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).views.length === 2)
    expect(h.index.faults.crash('t', 1, 'reader-7')).toBe(0)
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'reader-2')).toBe(1)
    await h.event((e) => e.type === 'failed' && e.actor === 'reader-2', n)
    expect(h.events.slice(n).filter((e) => e.type === 'failed').map((e) => e.actor)).toEqual(['reader-2'])
    expect(h.index.faults.crash('t', 1, 'readers')).toBe(1)
    await h.event((e) => e.type === 'failed' && e.actor === 'reader-1', n)
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'failed' && e.actor === 'primary', n)
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(0)
    expect(h.events.slice(n).find((e) => e.type === 'failed' && e.actor === 'primary')?.detail).toMatch(/^injected crash of primary in /)
  })
})

describe('stats', () => {
  it('should give the cause of a primary that gave up on an error that is not a StorageFailure', async () => {
    let failing = false
    const engine: Engine = {
      open: async (path, options) => {
        if (failing && !options.readOnly) throw new Error('disk on fire')
        return rocksEngine.open(path, options)
      },
    }
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } } }, engine)
    await h.index.batchPut('t', 1, [meta(1)])
    failing = true
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    await h.clock.advance(100)
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    // An engine of the user's (the Engine interface) may throw any error: reason io, the shard's directory, its message.
    expect(shardStats(h, 't', 1).cause).toEqual({ reason: 'io', path: h.index.locate('t', 1).dir, message: 'disk on fire' })
  })

  it('should name the shard state, the primary state and count readers by state, with totals', async () => {
    h = await openHarness({ readers: { min: 1, max: 1 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 100, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h!, 't', 1).views.length === 1)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', pool: 'healthy', primary: 'ready', readers: { serving: 1 }, restarts: { primary: 0, readers: 0 } })
    expect(h.index.stats().totals).toEqual({ primaries: 1, readers: 1, handles: 2 })
    const dir = h.index.locate('t', 1).dir
    h.faults.failNext('open', 100, { role: 'primary', dir })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'restarting', primary: 'waiting', restarts: { primary: 1 } })
    expect(h.index.stats().totals).toMatchObject({ primaries: 0, readers: 1 })
    await h.clock.advance(100)
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'failed', primary: 'none', cause: { reason: 'injected' } })
    h.faults.clear()
    h.index.recover()
    await h.event((e) => e.type === 'recovered' && e.actor === 'primary', n)
    await waitFor(() => shardStats(h!, 't', 1).primary === 'ready')
    expect(shardStats(h, 't', 1).state).toBe('running')
    expect(shardStats(h, 't', 1).cause).toBeUndefined()
    await h.index.close()
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'closed', primary: 'none', readers: {} })
    expect(h.index.stats().totals).toEqual({ primaries: 0, readers: 0, handles: 0 })
  })
})

describe('the supervisors on the index clock', () => {
  it('should wait out a primary restart backoff on the injected clock, not on the system clock', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 600_000 }, backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    expect(h.events.slice(n).find((e) => e.type === 'restarted')?.detail).toBe('after 60000 ms')
    await h.clock.advance(59_999)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'restarting', primary: 'waiting' })
    await h.clock.advance(1)
    // (Bounded wait: the reopen is real I/O. Actors on the system clock would wait a real minute, and fail here.)
    await waitFor(() => shardStats(h!, 't', 1).primary === 'ready', 2_000)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })
})

describe('a degraded reader-mode pool that recovers', () => {
  it('should fail reads with the cause while degraded, and after recover let a read wait for the new reader and drop the cause', async () => {
    h = await openHarness({ readers: { min: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    const reader = await openIndex({
      root: h.root,
      mode: 'reader',
      engine: faults,
      clock: new ManualClock(1_000_000),
      inspect: recordInspection,
      readers: { min: 1, max: 1 },
      supervision: { readers: { intensity: { maxRestarts: 0, withinMs: 60_000 }, backoff: { minMs: 0, jitter: 0 } } },
    })
    try {
      const events: LifecycleEvent[] = []
      reader.subscribe((e) => events.push(e))
      const id = reader.locate('t', 1).id
      const stats = () => reader.stats().shards.find((x) => x.id === id)!
      expect(await reader.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
      // Restart intensity 0: the first reader crash degrades the pool, and in reader mode nothing is left to read from.
      expect(reader.faults.crash('t', 1, 'readers')).toBe(1)
      await waitFor(() => events.some((e) => e.type === 'degraded'))
      expect(stats()).toMatchObject({ pool: 'degraded', cause: { reason: 'injected' } })
      await expect(reader.getByMsgId('t', 1, 'm1')).rejects.toBeInstanceOf(ShardUnavailable)
      reader.recover()
      // Asked before the new reader has opened: the read waits for it instead of failing as unavailable.
      const read = reader.getByMsgId('t', 1, 'm1')
      expect(stats().readers).not.toHaveProperty('serving')
      expect(await read).toEqual(meta(1))
      expect(stats()).toMatchObject({ pool: 'healthy', readers: { serving: 1 } })
      // No cause at all: not a `cause` key holding undefined.
      expect('cause' in stats()).toBe(false)
    } finally {
      await reader.close()
    }
  })
})

describe('a throwing lifecycle listener', () => {
  it('should name the error (or the thrown value) in the warning text, and pass the error along', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    try {
      h = await openHarness()
      const bug = new TypeError('listener bug')
      h.index.subscribe(() => {
        throw bug
      })
      h.index.subscribe(() => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error
        throw 'plain text'
      })
      await h.index.batchPut('t', 1, [meta(1)])
      const where = `a lifecycle listener of ${h.root} threw on the 'created' event of ${h.shardId('t', 1)} (shard)`
      const rest = 'The event reached the other listeners; later errors of this listener are not reported.'
      expect(warn.mock.calls).toEqual([
        [`rockvisor: ${where}: TypeError: listener bug. ${rest}`, bug],
        [`rockvisor: ${where}: plain text. ${rest}`, 'plain text'],
      ])
    } finally {
      warn.mockRestore()
    }
  })
})
