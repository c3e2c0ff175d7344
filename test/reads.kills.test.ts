/**
 * The edges of the read path of src/shard.ts that the freshness and supervision suites reach only loosely, found by
 * mutation testing (TESTING.md, "Mutation testing"), on real RocksDB with a ManualClock: a view exactly as old as a
 * staleness bound allows; a read whose signal aborted before it began (it must never reach RocksDB); a scan retried
 * after its reader broke, which its deadline no longer bounds; a writer-mode token ahead of the data; reads waiting on
 * a shard whose primary gave up, as its readers go one by one; how many lone point reads go out between two turns of
 * the read scheduler; a turn of point reads that no one view serves whole; a damaged entry (also in a MultiGet where
 * another key failed); and a MultiGet that fails (with an error of a user's engine, or a failure retrying cannot cure,
 * or twice); a turn with primary-only reads among others; the need a turn is served by (its strictest read's, not its
 * first's: sequence and staleness bound); the deadline of a read queued for a turn, and of reads deferred while the
 * process runs its most MultiGets at once (each at its own, to the millisecond); what a Timeout says a read waited for;
 * a scan whose iteration fails before its first entry (retried once, no restart of a sound handle); the bound on reads
 * waiting for a handle; and the reader pool under held reads (the least-loaded reader serves, and one more reader is
 * asked for exactly when the reads in flight reach `readers.growAt` per reader); and which stale reader a read has
 * refreshed (the lowest sequence, then the view opened first), and who refreshes for a waiting read when that refresh
 * fails (another reader; the failed one cools down); a primary-only read, which asks no reader to refresh (also while
 * it waits for the primary and a reader fails); the ShardUnavailable of a primary that crashed past its restart
 * intensity, and of a reader-mode shard whose readers did; a damaged entry met by a read that waited for a handle; a
 * writer-mode shard whose primary another index holds locked (its readers serve what they can, never merged with a
 * memory of writes that is no longer complete); a turn whose strictest read comes before a laxer one; which stale
 * reader serves reads the memory of recent writes completes (the least loaded); a turn that memory answers whole (no
 * MultiGet); a point read retried after its MultiGet failed (it started: its deadline no longer bounds it; a reader
 * whose probe fails too is failed with that cause; the probe asks for a key: a MultiGet of none never touches the
 * handle); and one retried on a sound handle (counted once: that reader is no more loaded than the other afterwards); a
 * shard whose reads a turn's budget left waiting (served in the next turn, with no other read to start it); a read
 * whose signal aborts while it waits (Timeout, aborted, at once; it never runs); requests waiting for a primary whose
 * open meets another index's lock (they fail with it); a writer-mode pool at min 0, which asks for its first reader
 * once the reads in flight reach `growAt`; and a shard another index wrote while this index's primary was down (its
 * sequence goes on from the other's, and fresh reads see the other's writes); a range read that fails with a transient
 * failure (retried once, no restart; a failure retrying cannot cure fails at once); a reader-mode token ahead of the
 * data (judged so by exactly three short views, `field: 'after'`); and a writer-mode read after this index's own token,
 * which no number of short views makes ahead, nor views opened before the read began waiting; where a range read is
 * counted in `stats().served`; and a failure of a reader's old view, swapped out by a refresh while a scan held it (the
 * view that replaced it keeps serving); a read that waited for a view leaves the queue of reads waiting for a handle
 * once served (`queues.maxPendingReads`); what a reader-mode shard whose readers failed with no error at all says; and
 * a settled request, which leaves neither its deadline's timer nor a listener on its signal; a range read whose I/O
 * began before its deadline passed (it finishes and answers); and a refresh that fails while a bounded read waits for
 * it (another reader refreshes: its view is too old, however new).
 */
import { getEventListeners } from 'node:events'
import { describe, expect, it } from 'vitest'
import { FaultInjector, InvalidInput, ManualClock, openIndex, rocksEngine, ShardUnavailable, StorageFailure, Timeout, type Engine, type MessageMeta } from '../src/index.js'
import { getManySettled } from '../src/engine.js'
import { decodeSequence, segmentOffsetKey, sequenceKey, sequenceValue } from '../src/keys.js'
import { recordInspection } from './support/coverage.js'
import { holding, holdingOpens, overridingHandles } from './support/engines.js'
import { cleanupAfterEach } from './support/cleanups.js'
import { drive as driving, gate, orStillWaiting, shardStats, tracker, untilReaderCovers, waitFor } from './support/harness.js'
import { settle } from '../src/clock.js'
import { bindingOptions } from './support/readers.js'
import { parseToken } from '../src/tokens.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1_000 + n, segmentId: 0, offset: n, msgLen: 10 })
const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
const { add, harness, scratch } = cleanupAfterEach()

/** A reader-mode index that does not follow the logs (which would answer point reads without a refresh), for tests whose subject is the refresh. */
const openRefreshing = (options: Omit<Parameters<typeof openIndex>[0], 'mode' | 'freshness'>) =>
  openIndex({ mode: 'reader', inspect: recordInspection, freshness: { followLogs: false }, ...options })
/** `p`'s outcome (`{ value }` or `{ error }`), settled while moving `clock` as real I/O goes (see the harness's `drive`). */
const drive = async <T>(clock: ManualClock, p: Promise<T>, stepMs?: number): Promise<{ value?: T; error?: unknown }> => {
  const { advancedMs: _, ...outcome } = await driving(clock, p, stepMs)
  return outcome
}

describe('bounded staleness', () => {
  it('should serve a bounded read from a view exactly maxStalenessMs old, and not from one a millisecond older', async () => {
    // Without the memory of recent writes, which completes any view of this index's shard up to now (a bounded read
    // at a stale view is then answered as of now).
    const h = await harness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 }, freshness: { recentWritesBytes: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const view = () => shardStats(h, 't', 1).views[0]!
    const reader = view().reader
    await h.clock.advance(500 - view().ageMs)
    expect(view()).toMatchObject({ reader, ageMs: 500 })
    const served = () => shardStats(h, 't', 1).served
    const before = served()
    const opens = h.faults.opened.reader
    expect(await h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 500 })).toEqual(meta(1))
    expect(served()).toEqual({ ...before, readers: before.readers + 1 })
    expect(h.faults.opened.reader).toBe(opens)
    // A millisecond later that view is too old for the same bound: the primary answers (and the reader refreshes).
    await h.clock.advance(1)
    expect(await h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 500 })).toEqual(meta(1))
    expect(served()).toEqual({ ...before, readers: before.readers + 1, primary: before.primary + 1 })
  })
})

describe('a read whose signal aborted before it began', () => {
  it('should fail with Timeout and never reach RocksDB, also when the primary is ready at once', async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    const reads = h.faults.calls.primaryReads
    const read = h.index.getRangeByTime('t', 1, 0, 10_000, { signal: AbortSignal.abort() })
    await expect(read).rejects.toBeInstanceOf(Timeout)
    await expect(read).rejects.toMatchObject({ aborted: true })
    await settle()
    expect(h.faults.calls.primaryReads).toBe(reads)
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000)).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 1 } })
    expect(h.faults.calls.primaryReads).toBeGreaterThan(reads)
  })
})

describe('a read whose signal aborts while it waits', () => {
  it('should fail with Timeout (aborted) at once, and never reach RocksDB once the primary is back', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    // The primary crashes and waits 1 s on the index's clock to reopen: the read waits for it.
    h.index.faults.crash('t', 1, 'primary')
    await settle()
    const controller = new AbortController()
    const { outcomes, track } = tracker()
    track('read', h.index.getRangeByTime('t', 1, 0, 10_000, { signal: controller.signal }))
    await settle()
    expect(outcomes.read).toBeUndefined()
    controller.abort()
    await settle()
    expect(outcomes.read).toEqual({ error: expect.any(Timeout) })
    const aborted = outcomes.read!.error as Timeout
    expect(aborted).toMatchObject({ aborted: true })
    expect(aborted.message).toBe(`request on shard ${h.shardId('t', 1)} aborted by its signal while it waited for ${aborted.waitedFor}; it did not run`)
    // The primary reopens: only the next read is served (counted as the one after it).
    const range = { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 1 } }
    const served = () => shardStats(h, 't', 1).served.primary
    let before = served()
    expect(await drive(h.clock, h.index.getRangeByTime('t', 1, 0, 10_000))).toEqual({ value: range })
    const first = served() - before
    before = served()
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000)).toEqual(range)
    expect(first).toBe(served() - before)
    expect(first).toBeGreaterThan(0)
  })
})

describe('a scan retried on another view', () => {
  it('should not be bound by its deadline again: it waits for the restarted reader and returns every entry', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1), meta(2), meta(3)])
    const faults = new FaultInjector()
    const clock = new ManualClock(1_000_000)
    const r = await openIndex({ root: w.root, mode: 'reader', engine: faults, clock, inspect: recordInspection, readers: { min: 1, max: 1 } })
    add(() => r.close())
    expect(await collect(r.scanByTime('t', 1, 0, 10_000))).toEqual([meta(1), meta(2), meta(3)])

    expect(faults.breakHandles({ role: 'reader' })).toBe(1)
    const { outcomes, track } = tracker()
    track('read', collect(r.scanByTime('t', 1, 0, 10_000, { timeoutMs: 50 })))
    // The scan began on the broken handle (its deadline lifted), failed there, and the handle failed its probe: the
    // reader restarts under backoff, and the scan's second attempt waits for it.
    const readers = () => r.stats().shards.find((s) => s.id === r.locate('t', 1).id)!.readers
    await waitFor(() => readers().serving === undefined)
    await clock.advance(60)
    for (let i = 0; i < 2_000 && outcomes.read === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1))
      await clock.advance(10)
    }
    expect(outcomes.read).toEqual({ value: [meta(1), meta(2), meta(3)] })
  })
})

describe('a token ahead of the data, in writer mode', () => {
  it('should fail with InvalidInput once two views opened for it fell short, while the primary is down', async () => {
    const h = await harness({ readers: { min: 1, max: 1 }, supervision: { primary: { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 3, withinMs: 600_000 } } } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    // Sequence 50 of this shard was never written: no view will ever hold it, and the primary (which would answer
    // the read) waits out its backoff on a clock that stands still.
    const ahead = `${h.shardId('t', 1)}@50`
    // (A range read: a point read at a reader merged with the memory of recent writes is answered as the primary would.)
    // (The real-time bound only turns a read that would wait forever into a clear failure; it measures nothing.)
    const err = await orStillWaiting(h.index.getRangeByTime('t', 1, 0, 10_000, { after: ahead }).catch((e: unknown) => e))
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).message).toBe(
      `after: the token asks for sequence 50 of shard ${h.shardId('t', 1)}, but its directory holds sequence 1: the token is not from this root, or its write was lost`,
    )
  })
})

describe("a writer-mode read after this index's own token", () => {
  it('should never judge that token ahead of the data, however many views fall short while the primary is down', async () => {
    // While `lying`, readers' views say they hold one sequence less than they do: every view falls short.
    const lying = { on: false }
    const engine = overridingHandles({
      reader: (handle) => ({
        getMany: async (keys) => {
          const values = await handle.getMany(keys)
          const seq = values[0]
          if (lying.on && seq !== undefined && Buffer.from(keys[0]!).equals(Buffer.from(sequenceKey))) values[0] = sequenceValue(decodeSequence(seq) - 1)
          return values
        },
      }),
    })
    const h = await harness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 }, supervision: { primary: { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 3, withinMs: 600_000 } } } }, engine)
    const first = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, first.token, 'm1')
    // A write the reader's view lacks; then the primary crashes, and waits a minute to reopen.
    const { token } = await h.index.batchPut('t', 1, [meta(2)])
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    lying.on = true
    const opens = h.faults.opened.reader
    const { outcomes, track } = tracker()
    track('read', h.index.getRangeByTime('t', 1, 0, 10_000, { after: token, timeoutMs: 1_000 }))
    // Views open one after another for it, each short: still it waits (this index acknowledged that sequence).
    await waitFor(() => h.faults.opened.reader - opens >= 5)
    expect(outcomes.read).toBeUndefined()
    // Until its deadline.
    await h.clock.advance(1_000)
    await waitFor(() => outcomes.read !== undefined)
    expect(outcomes.read!.error).toBeInstanceOf(Timeout)
    lying.on = false
  })
})

describe('a token ahead of the data, in reader mode', () => {
  it('should fail with InvalidInput (field after) once exactly three views opened for it fell short', async () => {
    const w = await harness({ readers: { min: 0 } })
    const { token } = await w.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    const index = await openIndex({ root: w.root, mode: 'reader', engine: faults, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 1, max: 1 } })
    add(() => index.close())
    expect(await index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    const opens = faults.opened.reader
    const ahead = `${w.shardId('t', 1)}@${parseToken(token).sequence + 5}`
    const err = await index.getByMsgId('t', 1, 'm1', { after: ahead }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInput)
    expect(err).toMatchObject({ field: 'after' })
    // The view the read found, and three opened since, each short of the token: the third is the proof.
    expect(faults.opened.reader - opens).toBe(3)
  })
})

describe('views opened before a read began waiting', () => {
  it("should never count against its token: three such views, all short of it, do not make it ahead", async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    // Readers' opens wait, once RocksDB has opened them (their views fixed), while `held.on`.
    const held = { on: false, waiting: [] as (() => void)[] }
    const engine: Engine = {
      open: async (path, options) => {
        const handle = await rocksEngine.open(path, options)
        if (options.readOnly && held.on) await new Promise<void>((resolve) => held.waiting.push(resolve))
        return handle
      },
    }
    const index = await openIndex({ root: w.root, mode: 'reader', engine: new FaultInjector(engine), clock: new ManualClock(1_000_000), inspect: recordInspection, maxConcurrentOpens: 4, readers: { min: 3, max: 3 } })
    add(() => index.close())
    add(async () => {
      held.on = false
      for (const go of held.waiting.splice(0)) go()
    })
    held.on = true
    // The shard starts: its three readers open on m1 and wait to be published.
    const first = index.getByMsgId('t', 1, 'm1')
    await waitFor(() => held.waiting.length === 3)
    // Then m2 is written, and a read of it begins waiting: no view opened so far can hold it.
    const { token } = await w.index.batchPut('t', 1, [meta(2)])
    const second = index.getByMsgId('t', 1, 'm2', { after: token }).then((value) => ({ value }), (error: unknown) => ({ error }))
    await settle()
    held.on = false
    for (const go of held.waiting.splice(0)) go()
    // The three views are published, all short of the token, all opened before the read began: a refresh serves it.
    expect(await first).toEqual(meta(1))
    expect(await second).toEqual({ value: meta(2) })
  })
})

describe("a failure of a reader's old view, swapped out by a refresh while a scan held it", () => {
  it('should leave the view that replaced it serving', async () => {
    // Per reader handle, in the order they open: its scans wait while `held`, and then fail, as its probes do,
    // while `broken`.
    const handles: { held: boolean; broken: boolean; go?: () => void }[] = []
    const flaky = (path: string) => new StorageFailure({ reason: 'io', path, message: 'an old view that failed' })
    const engine = overridingHandles({
      reader: (handle) => {
        const state: (typeof handles)[number] = { held: false, broken: false }
        handles.push(state)
        return {
          iterate: (range) =>
            (async function* () {
              if (state.held) await new Promise<void>((resolve) => (state.go = resolve))
              if (state.broken) throw flaky(handle.path)
              yield* handle.iterate(range)
            })(),
          getMany: async (keys) => {
            if (state.broken) throw flaky(handle.path)
            return handle.getMany(keys)
          },
        }
      },
    })
    const w = await harness({ readers: { min: 0 } })
    const first = await w.index.batchPut('t', 1, [meta(1)])
    // Without the memory of recent writes (fed from the logs in reader mode), a read of a newer write makes the reader
    // refresh rather than be answered by its view merged with that memory: the refresh is what this test is about.
    const index = await openIndex({
      root: w.root,
      mode: 'reader',
      engine: new FaultInjector(engine),
      clock: new ManualClock(1_000_000),
      inspect: recordInspection,
      readers: { min: 1, max: 1 },
      freshness: { recentWritesBytes: 0 },
    })
    add(() => index.close())
    expect(await index.getByMsgId('t', 1, 'm1', { after: first.token })).toEqual(meta(1))
    expect(handles).toHaveLength(1)
    // A scan begins on that view, and waits there for its first entry.
    handles[0]!.held = true
    const scan = index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]()
    const firstEntry = scan.next()
    await waitFor(() => handles[0]!.go !== undefined)
    // A read of a newer write: the reader refreshes, and its new view serves.
    const second = await w.index.batchPut('t', 1, [meta(2)])
    expect(await index.getByMsgId('t', 1, 'm2', { after: second.token })).toEqual(meta(2))
    expect(handles).toHaveLength(2)
    // The old view fails under the scan before its first entry, and its probe too: the failure is reported on it.
    handles[0]!.broken = true
    handles[0]!.go!()
    // The scan is retried on the new view; the new view keeps serving.
    expect(await firstEntry).toEqual({ done: false, value: meta(1) })
    await scan.return?.(undefined)
    expect(index.stats().shards[0]!.views).toEqual([expect.objectContaining({ reader: 'reader-1', sequence: parseToken(second.token).sequence })])
    expect(await index.getByMsgId('t', 1, 'm2', { after: second.token })).toEqual(meta(2))
    expect(handles).toHaveLength(2)
  })
})

describe('a shard whose primary gave up', () => {
  it('should fail with ShardUnavailable the reads that wait for a view once its last reader is gone', async () => {
    const h = await harness({
      readers: { min: 1, max: 1 },
      // No memory of recent writes: the reader's stale view alone cannot answer a fresh read.
      freshness: { recentWritesBytes: 0 },
      supervision: {
        primary: { intensity: { maxRestarts: 0, withinMs: 60_000 } },
        readers: { intensity: { maxRestarts: 0, withinMs: 60_000 }, backoff: { minMs: 0, jitter: 0 } },
      },
    })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    await h.index.batchPut('t', 1, [meta(2)])
    const dir = h.index.locate('t', 1).dir
    h.faults.failNext('open', 1_000, { dir })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    // The reader's view lacks m2, and its refresh fails: the read waits for a view that holds m2.
    const { outcomes, track } = tracker()
    track('read', h.index.getByMsgId('t', 1, 'm2'))
    await waitFor(() => h.events.slice(n).some((e) => e.type === 'refresh-failed'))
    expect(outcomes.read).toBeUndefined()
    // Its last reader gives up: nothing can serve the read any more.
    h.index.faults.crash('t', 1, 'readers')
    await waitFor(() => outcomes.read !== undefined)
    expect(outcomes.read!.error).toBeInstanceOf(ShardUnavailable)
    expect((outcomes.read!.error as ShardUnavailable).message).toMatch(/^shard t\/\d+ is unavailable: its primary/)
  })
  it('should keep those reads waiting while a reader is left, and serve them once its refresh succeeds', async () => {
    const h = await harness({
      readers: { min: 2, max: 2 },
      freshness: { recentWritesBytes: 0 },
      supervision: { primary: { intensity: { maxRestarts: 0, withinMs: 60_000 } } },
    })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => shardStats(h, 't', 1).readers.serving === 2)
    await h.index.batchPut('t', 1, [meta(2)])
    const dir = h.index.locate('t', 1).dir
    h.faults.failNext('open', 1_000, { dir })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    const { outcomes, track } = tracker()
    track('read', h.index.getRangeByTime('t', 1, 0, 10_000))
    await h.event((e) => e.type === 'refresh-failed', n)
    // One of the two readers goes: the other may still come to serve the read.
    const gone = shardStats(h, 't', 1).views[0]!.reader
    h.index.faults.crash('t', 1, gone as `reader-${number}`)
    await h.event((e) => e.type === 'restarted' && e.actor === gone, n)
    expect(outcomes.read).toBeUndefined()
    h.faults.clear()
    for (let i = 0; i < 2_000 && outcomes.read === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1))
      await h.clock.advance(100)
    }
    expect(outcomes.read).toEqual({ value: { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } } })
  })
})

describe('lone point reads between two turns of the read scheduler', () => {
  it('should let 256 lone reads go out at once, then make the next wait for a turn', async () => {
    const h = await harness({ readers: { min: 1, max: 1 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    // m2 is newer than the reader's view: the memory of recent writes answers it, with no I/O, so a caller that reads
    // it in a loop would never let the event loop turn without the bound.
    await h.index.batchPut('t', 1, [meta(2)])
    const memory = shardStats(h, 't', 1).served.memory
    let done = 0
    const marks: number[] = []
    const mark = (): void => {
      marks.push(done)
      if (marks.length < 5) setImmediate(mark)
    }
    setImmediate(mark)
    for (let i = 0; i < 2_000 && marks.length < 5; i++) {
      expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
      done++
    }
    expect(shardStats(h, 't', 1).served.memory).toBe(memory + done)
    // Between two turns: the read the turn sent, and 256 at once.
    expect(marks.slice(1).map((m, i) => m - marks[i]!)).toEqual([257, 257, 257, 257])
  })

  it("should serve a shard whose reads a turn's budget left waiting in a next turn, with no other read to start it", async () => {
    const h = await harness({ readers: { min: 0 } })
    // Two partitions on two shards (the harness has 4).
    const b = [2, 3, 4, 5, 6, 7, 8].find((p) => h.shardId('t', p) !== h.shardId('t', 1))!
    await h.index.batchPut('t', 1, [meta(1)])
    await h.index.batchPut('t', b, [meta(2)])
    // Two reads in one turn: the second waits for a turn of the scheduler, which starts its count of lone reads over.
    expect(await Promise.all([h.index.getByMsgId('t', 1, 'm1'), h.index.getByMsgId('t', 1, 'm1')])).toEqual([meta(1), meta(1)])
    // In one turn: the first read of each shard goes out alone; the next 256 of the first shard wait, and then one of
    // the other. The next turn sends the 256, its whole budget: the other shard's read waits for the turn after.
    const reads: Promise<unknown>[] = []
    for (let i = 0; i < 257; i++) reads.push(h.index.getByMsgId('t', 1, 'm1'))
    reads.push(h.index.getByMsgId('t', b, 'm2'), h.index.getByMsgId('t', b, 'm2'))
    const outcome = await orStillWaiting(Promise.all(reads))
    expect(outcome).toEqual([...Array.from({ length: 257 }, () => meta(1)), meta(2), meta(2)])
  })
})

/**
 * A root whose partition 1 of topic t holds m1 and m2, m1's entry by place damaged: its msgId bytes replaced by one
 * byte that is not UTF-8 (written through a raw handle, the index closed).
 */
const damagedRoot = async (): Promise<string> => {
  const root = await scratch()
  const first = await openIndex({ root, clock: new ManualClock(1_000_000), inspect: recordInspection })
  await first.batchPut('t', 1, [meta(1), meta(2)])
  const dir = first.locate('t', 1).dir
  await first.close()
  const raw = await rocksEngine.open(dir, { ...bindingOptions, readOnly: false })
  try {
    const key = segmentOffsetKey(1, { segmentId: 0, offset: 1 })
    const [value] = await raw.getMany([key])
    await raw.write([{ type: 'put', key, value: Buffer.concat([Buffer.from(value!).subarray(0, 12), Buffer.of(0xff)]) }])
  } finally {
    await raw.close()
  }
  return root
}

describe('a damaged entry (bytes that do not decode)', () => {
  it('should fail the point read that meets it with StorageFailure corruption, at a reader or at the primary, and serve the rest', async () => {
    const root = await damagedRoot()

    for (const readers of [0, 1]) {
      const index = await openIndex({ root, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: readers } })
      add(() => index.close())
      const events: { type: string; actor?: string }[] = []
      index.subscribe((e) => events.push(e as { type: string; actor?: string }))
      // (m2 first: the shard opens, and the damaged read then goes out in a MultiGet at once, not after a wait.)
      expect(await index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 2 })).toBe('m2')
      // With a reader: once it serves, the damaged read goes to it.
      if (readers > 0) await waitFor(() => index.stats().shards[0]?.views.length === 1)
      // Failed, not answered with the error as its value.
      const outcome = await index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 1 }).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      )
      expect(outcome).not.toHaveProperty('value')
      const failure = (outcome as { error: unknown }).error
      expect(failure).toBeInstanceOf(StorageFailure)
      expect(failure).toMatchObject({ reason: 'corruption' })
      expect((failure as StorageFailure).message).toContain('does not decode (The encoded data was not valid for encoding utf-8): it is damaged')
      // The event and the message name what the read went through: the primary, or the reader.
      const actor = readers === 0 ? 'primary' : expect.stringMatching(/^reader-/)
      expect(events.filter((e) => e.type === 'corruption')).toEqual([expect.objectContaining({ actor })])
      expect((failure as StorageFailure).message).toMatch(readers === 0 ? /, read through primary: / : /, read through reader-/)
      expect(await index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 2 })).toBe('m2')
      expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
      await index.close()
    }
  })
})

describe('a damaged entry in a MultiGet where another key failed', () => {
  it('should fail the damaged read with StorageFailure corruption too, never answer it', async () => {
    const root = await damagedRoot()
    // m2's entry by place fails in every MultiGet, as a corrupted block would.
    const failedKey = Buffer.from(segmentOffsetKey(1, { segmentId: 0, offset: 2 }))
    const engine = overridingHandles({
      primary: (handle, path) => ({
        getManySettled: async (keys) => {
          const { values } = await getManySettled(handle, keys)
          const errors = keys.map((k) => (failedKey.equals(k) ? new StorageFailure({ reason: 'corruption', path, message: 'a corrupted block' }) : undefined))
          return errors.some((e) => e !== undefined) ? { values, errors } : { values }
        },
      }),
    })
    const index = await openIndex({ root, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 0 }, engine })
    add(() => index.close())
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    // The first read goes out alone; the other two share a MultiGet.
    const outcomes = await Promise.all(
      [2, 1, 2].map((offset) => index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset }).then((value) => ({ value }), (error: unknown) => ({ error }))),
    )
    for (const outcome of outcomes) expect(outcome).toMatchObject({ error: { _tag: 'StorageFailure', reason: 'corruption' } })
    expect((outcomes[1] as { error: StorageFailure }).error.message).toContain('does not decode')
  })
})

describe('a turn of point reads that no one view serves whole', () => {
  it('should send each read a view serves to it, and let the others wait for a fresher view (reader mode)', async () => {
    const w = await harness({ readers: { min: 0 } })
    const first = await w.index.batchPut('t', 1, [meta(1)])
    const r = await openIndex({ root: w.root, mode: 'reader', clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 1, max: 1 } })
    add(() => r.close())
    expect(await r.getByMsgId('t', 1, 'm1', { after: first.token })).toEqual(meta(1))
    const second = await w.index.batchPut('t', 1, [meta(2)])
    // The first read goes out alone; the next two share a turn: one needs the view the reader has, one a newer one.
    // (The real-time bound only turns a read that would wait forever into a clear failure.)
    const reads = Promise.all([
      r.getByMsgId('t', 1, 'm1', { after: first.token }),
      r.getByMsgId('t', 1, 'm1', { after: first.token }),
      r.getByMsgId('t', 1, 'm2', { after: second.token }),
    ])
    const outcome = await orStillWaiting(reads)
    expect(outcome).toEqual([meta(1), meta(1), meta(2)])
  })
})

describe('a MultiGet that fails', () => {
  /** The primary's MultiGets fail while `mode.fail` says how; every read of a MultiGet is counted. */
  const mode = { fail: undefined as (() => unknown) | undefined, calls: 0 }
  const failing = overridingHandles({
    primary: (handle) => ({
      getManySettled: async (keys) => {
        mode.calls++
        const fail = mode.fail
        if (fail !== undefined) throw fail()
        return handle.getManySettled!(keys)
      },
    }),
  })

  it('should fail its reads with the error an engine of the user threw, not answer with it', async () => {
    mode.fail = undefined
    const h = await harness({ readers: { min: 0 } }, failing)
    await h.index.batchPut('t', 1, [meta(1)])
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    const bug = new Error('a bug in a wrapping engine')
    mode.fail = () => bug
    await expect(h.index.getByMsgId('t', 1, 'm1')).rejects.toBe(bug)
    mode.fail = undefined
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })

  it('should fail its reads at once with a failure that retrying cannot cure, and after one retry with a transient one', async () => {
    mode.fail = undefined
    const h = await harness({ readers: { min: 0 } }, failing)
    await h.index.batchPut('t', 1, [meta(1)])
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    const refused = new StorageFailure({ reason: 'permission', path: 'x', message: 'refused' })
    mode.fail = () => refused
    let calls = mode.calls
    await expect(h.index.getByMsgId('t', 1, 'm1')).rejects.toBe(refused)
    expect(mode.calls - calls).toBe(1)
    const flaky = new StorageFailure({ reason: 'io', path: 'x', message: 'flaky' })
    mode.fail = () => flaky
    calls = mode.calls
    await expect(h.index.getByMsgId('t', 1, 'm1')).rejects.toBe(flaky)
    expect(mode.calls - calls).toBe(2)
    mode.fail = undefined
  })
})

describe('a point read retried after its MultiGet failed', () => {
  it('should no longer be bound by its deadline while the retry waits for a handle (it started)', async () => {
    // Readers' MultiGets and probes fail with a transient failure while `reader.broken`.
    const reader = { broken: false }
    const flaky = (path: string) => new StorageFailure({ reason: 'io', path, message: 'flaky' })
    const engine = overridingHandles({
      reader: (handle) => ({
        getManySettled: async (keys) => {
          if (reader.broken) throw flaky(handle.path)
          return handle.getManySettled!(keys)
        },
        // As RocksDB's handle does, a MultiGet of no key answers without touching the handle (a probe must ask for one).
        getMany: async (keys) => {
          if (reader.broken && keys.length > 0) throw flaky(handle.path)
          return handle.getMany(keys)
        },
      }),
    })
    const w = await harness({ readers: { min: 0 } })
    const { token } = await w.index.batchPut('t', 1, [meta(1)])
    const clock = new ManualClock(1_000_000)
    const index = await openIndex({
      root: w.root,
      mode: 'reader',
      engine: new FaultInjector(engine),
      clock,
      inspect: recordInspection,
      readers: { min: 1, max: 1 },
      supervision: { readers: { backoff: { minMs: 100, jitter: 0 } } },
    })
    add(() => index.close())
    const events: string[] = []
    const details: string[] = []
    index.subscribe((e) => {
      events.push(`${e.type} ${e.actor}`)
      if (e.type === 'failed') details.push(`${e.actor}: ${e.detail}`)
    })
    expect(await index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
    reader.broken = true
    let settled = false
    const read = index.getByMsgId('t', 1, 'm1', { timeoutMs: 50 }).finally(() => (settled = true))
    // Its MultiGet fails, and the probe of the handle too: the reader is restarted after 100 ms, and the read,
    // retried, waits for a handle.
    await waitFor(() => events.includes('restarted reader-1'))
    // The reader failed with the MultiGet's failure, the cause its probe confirmed.
    expect(details).toEqual([`reader-1: flaky`])
    reader.broken = false
    await clock.advance(60)
    await settle()
    expect(settled).toBe(false)
    await clock.advance(40)
    expect(await read).toEqual(meta(1))
  })
})

describe('a turn with primary-only reads among others', () => {
  it('should send the primary-only reads to the primary and the others to a reader that serves them', async () => {
    const h = await harness({ readers: { min: 1, max: 1 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const before = shardStats(h, 't', 1).served
    // The first goes out alone; the other two share the next turn.
    expect(
      await Promise.all([
        h.index.getByMsgId('t', 1, 'm1'),
        h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' }),
        h.index.getByMsgId('t', 1, 'm1'),
      ]),
    ).toEqual([meta(1), meta(1), meta(1)])
    expect(shardStats(h, 't', 1).served).toEqual({ ...before, primary: before.primary + 1, readers: before.readers + 2 })
  })
})

describe('a turn of point reads that the memory of recent writes answers whole', () => {
  it('should answer it from memory without a MultiGet, and send a turn it answers in part as one MultiGet of the rest', async () => {
    // Readers' MultiGets, counted with their keys.
    const calls: number[] = []
    const counting = overridingHandles({
      reader: (handle) => ({
        getManySettled: (keys) => {
          calls.push(keys.length)
          return handle.getManySettled!(keys)
        },
      }),
    })
    const h = await harness({ readers: { min: 1, max: 1 } }, counting)
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    // m2 and m3 are newer than the reader's view: the memory of recent writes answers them.
    await h.index.batchPut('t', 1, [meta(2), meta(3)])
    const before = shardStats(h, 't', 1).served
    calls.length = 0
    // The first goes out alone, the next two share a turn: no MultiGet at all.
    expect(await Promise.all([h.index.getByMsgId('t', 1, 'm2'), h.index.getByMsgId('t', 1, 'm3'), h.index.getByMsgId('t', 1, 'm2')])).toEqual([meta(2), meta(3), meta(2)])
    expect(calls).toEqual([])
    expect(shardStats(h, 't', 1).served).toEqual({ ...before, memory: before.memory + 3 })
    // A turn the memory answers in part: the rest goes out in one MultiGet on the reader.
    expect(await Promise.all([h.index.getByMsgId('t', 1, 'm3'), h.index.getByMsgId('t', 1, 'm1'), h.index.getByMsgId('t', 1, 'm2')])).toEqual([meta(3), meta(1), meta(2)])
    expect(calls).toEqual([1])
  })
})

describe('the need of a turn of point reads', () => {
  // The first read of each test goes out alone; the next two share a turn, the strict read either last (a need
  // taken from the turn's first read fails) or first (a need taken from its last read fails).
  it.each(['last', 'first'] as const)('should serve a turn by a view that satisfies its strictest read, the strict read %s', async (strictAt) => {
    const h = await harness({ readers: { min: 1, max: 1 }, freshness: { recentWritesBytes: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    await h.index.batchPut('t', 1, [meta(2)])
    // The reader's view holds m1, not m2: it serves the bounded reads, only the primary serves the fresh one.
    const bounded = () => h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 3_600_000 })
    const fresh = () => h.index.getByMsgId('t', 1, 'm2')
    const turn = strictAt === 'last' ? [bounded(), bounded(), fresh()] : [bounded(), fresh(), bounded()]
    expect(await Promise.all(turn)).toEqual(strictAt === 'last' ? [meta(1), meta(1), meta(2)] : [meta(1), meta(2), meta(1)])
  })

  it.each(['last', 'first'] as const)('should serve a turn by a view recent enough for its strictest staleness bound, the strict read %s', async (strictAt) => {
    const h = await harness({ readers: { min: 1, max: 1 }, freshness: { recentWritesBytes: 0 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    await h.clock.advance(10)
    expect(shardStats(h, 't', 1).views[0]!.ageMs).toBeGreaterThanOrEqual(10)
    const before = shardStats(h, 't', 1).served
    // Any view will do for the loose reads, only one taken in the last 5 ms for the strict one (the reader's is
    // older: the primary serves its turn).
    const loose = () => h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 3_600_000 })
    const strict = () => h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 5 })
    const turn = strictAt === 'last' ? [loose(), loose(), strict()] : [loose(), strict(), loose()]
    expect(await Promise.all(turn)).toEqual([meta(1), meta(1), meta(1)])
    // (If the first read shared the turn too, the primary served all three.)
    const after = shardStats(h, 't', 1).served
    expect(after.primary - before.primary).toBeGreaterThanOrEqual(2)
    expect(after.primary - before.primary + after.readers - before.readers).toBe(3)
  })
})

describe('a point read queued for a turn whose deadline passes before the turn', () => {
  it('should fail with Timeout at its exact deadline, without reaching RocksDB, while a read with time left is served', async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    const reads = h.faults.calls.primaryReads
    // The first goes out at once (a MultiGet runs): the other two wait for the next turn of the scheduler.
    const first = h.index.getByMsgId('t', 1, 'm1')
    const late = h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 1 })
    const inTime = h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 2 })
    const lateOutcome = late.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    )
    // No timer is due within 1 ms: the clock stands exactly at the late read's deadline when the turn runs.
    await h.clock.advance(1)
    expect(await first).toEqual(meta(1))
    expect(await inTime).toEqual(meta(1))
    const outcome = await lateOutcome
    expect(outcome).toMatchObject({ error: expect.any(Timeout) })
    expect(outcome).toMatchObject({ error: { aborted: false } })
    // One MultiGet for the first read, one for the read with time left: the late one never reached RocksDB.
    expect(h.faults.calls.primaryReads - reads).toBe(2)
  })
})

describe('point reads deferred while the process runs its most MultiGets at once', () => {
  /** The primary's MultiGets wait, while `hold.on`, until `hold.release()`. */
  const hold = { on: false, waiting: [] as (() => void)[], release(): void { for (const go of this.waiting.splice(0)) go() } }
  const holding = overridingHandles({
    primary: (handle) => ({
      getManySettled: async (keys) => {
        if (hold.on) await new Promise<void>((resolve) => hold.waiting.push(resolve))
        return handle.getManySettled!(keys)
      },
    }),
  })

  it('should fail each deferred read at its own deadline, not before, and serve the rest once a MultiGet finishes', async () => {
    hold.on = false
    const h = await harness({ readers: { min: 0 } }, holding)
    await h.index.batchPut('t', 1, [meta(1), meta(2)])
    hold.on = true
    // As many reads as the process runs MultiGets at once (half of libuv's pool), each a MultiGet of its own (the first
    // goes out at once, each next one in the next turn): they are held, and the reads after them are deferred.
    const most = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))
    const held: Promise<unknown>[] = []
    for (let k = 1; k <= most; k++) {
      held.push(h.index.getByMsgId('t', 1, k % 2 === 1 ? 'm1' : 'm2'))
      await waitFor(() => hold.waiting.length === k)
    }
    const { outcomes, track } = tracker()
    track('at 10', h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 10 }))
    // The later deadlines are deferred in a later turn: the timer armed for the earliest deadline stays armed.
    await settle()
    track('at 20', h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 20 }))
    track('at 60000', h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 60_000 }))
    await h.clock.advance(9)
    expect(outcomes).toEqual({})
    await h.clock.advance(1)
    expect(outcomes).toEqual({ 'at 10': { error: expect.any(Timeout) } })
    const expired = (outcomes['at 10'] as { error: Timeout }).error
    // Its deadline passed (no signal aborted it): said so, with what it waited for.
    expect(expired).toMatchObject({ aborted: false, timeoutMs: 10 })
    expect(expired.message).toBe(`request on shard ${h.shardId('t', 1)} waited 10 ms for ${expired.waitedFor}; it did not run`)
    expect(expired.waitedFor).toContain('a point-read MultiGet to finish')
    await h.clock.advance(9)
    expect(Object.keys(outcomes)).toEqual(['at 10'])
    await h.clock.advance(1)
    expect(Object.keys(outcomes).sort()).toEqual(['at 10', 'at 20'])
    expect(outcomes['at 20']).toEqual({ error: expect.any(Timeout) })
    hold.on = false
    hold.release()
    expect(await Promise.all(held)).toEqual(held.map((_, i) => meta(i % 2 === 0 ? 1 : 2)))
    await waitFor(() => outcomes['at 60000'] !== undefined)
    expect(outcomes['at 60000']).toEqual({ value: meta(1) })
  })

  it('should stay armed for the reads deferred again after a MultiGet finished, fail them at their own deadline, and go once nothing is in flight', async () => {
    hold.on = false
    const h = await harness({ readers: { min: 0 } }, holding)
    await h.index.batchPut('t', 1, [meta(1)])
    const timersBefore = h.clock.pending
    hold.on = true
    const most = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))
    const held: Promise<unknown>[] = []
    for (let k = 1; k <= most; k++) {
      held.push(h.index.getByMsgId('t', 1, 'm1'))
      await waitFor(() => hold.waiting.length === k)
    }
    // Deferred together: a read any view may serve (deadline 10 ms) and a primary-only one (50 ms). When one
    // MultiGet finishes, they are routed apart (primary-only reads last): the first takes the free place, the
    // primary-only one is deferred again, under the timer armed for the first one's deadline.
    const { outcomes, track } = tracker()
    track('fresh at 10', h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 10 }))
    track('primary at 50', h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 50, consistency: 'primary' }))
    await settle()
    hold.waiting.shift()!()
    await waitFor(() => hold.waiting.length === most)
    await h.clock.advance(10)
    // The first read is out (held in its MultiGet, no longer bound by its deadline); the timer fired for nothing due.
    expect(outcomes).toEqual({})
    await h.clock.advance(39)
    expect(outcomes).toEqual({})
    await h.clock.advance(1)
    expect(outcomes).toEqual({ 'primary at 50': { error: expect.any(Timeout) } })
    hold.on = false
    hold.release()
    await Promise.all(held)
    await waitFor(() => outcomes['fresh at 10'] !== undefined)
    expect(outcomes['fresh at 10']).toEqual({ value: meta(1) })
    expect(h.clock.pending).toBe(timersBefore)
    // Again, with a read whose deadline is far off: served once the MultiGets finish, it leaves the timer armed for
    // its deadline, which goes once nothing is in flight (it would keep the process alive for a minute).
    hold.on = true
    const again: Promise<unknown>[] = []
    for (let k = 1; k <= most; k++) {
      again.push(h.index.getByMsgId('t', 1, 'm1'))
      await waitFor(() => hold.waiting.length === k)
    }
    const late = h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 60_000 })
    await settle()
    expect(h.clock.pending).toBe(timersBefore + 1)
    hold.on = false
    hold.release()
    expect(await Promise.all([...again, late])).toEqual([...again, late].map(() => meta(1)))
    await settle()
    expect(h.clock.pending).toBe(timersBefore)
  })
})

describe('what a Timeout says a read waited for', () => {
  it('should name the view a reader-mode read waited for, its staleness bound, and the newest view open (or none)', async () => {
    const w = await harness({ readers: { min: 0 } })
    const { token } = await w.index.batchPut('t', 1, [meta(1)])
    const seq = Number(token.slice(token.lastIndexOf('@') + 1))
    const id = w.shardId('t', 1)
    // No reader ever opens: none open.
    const faults = new FaultInjector()
    faults.failNext('open', 1_000, { role: 'reader' })
    const clock = new ManualClock(1_000_000)
    const index = await openRefreshing({ root: w.root, engine: faults, clock })
    add(() => index.close())
    // A first read makes the shard, whose reader's open fails (in real time: its directory checks come first); the
    // read timed below begins once that failure is on record, so that its 100 ms cannot pass before it.
    const first = index.getByMsgId('t', 1, 'm1', { after: token, timeoutMs: 3_600_000 }).catch((e: unknown) => e)
    await waitFor(() => faults.injected.open > 0)
    const none = await drive(clock, index.getByMsgId('t', 1, 'm1', { after: token, timeoutMs: 100 }))
    expect(none).toMatchObject({
      error: { _tag: 'Timeout', waitedFor: `a reader view of shard ${id} at sequence >= ${seq} (newest view: none open)`, cause: { reason: 'injected' } },
    })
    // Why no view came: the readers' last failed open, in the message too.
    expect((none.error as Timeout).message).toMatch(/ \(the last open of its readers failed: .*injected.*\); it did not run$/)
    // A read its own signal stopped was not kept waiting by that failure: no cause.
    const stopped = await drive(clock, index.getByMsgId('t', 1, 'm1', { after: token, signal: AbortSignal.abort() }))
    expect(stopped.error).toMatchObject({ _tag: 'Timeout', aborted: true })
    expect((stopped.error as Timeout).cause).toBeUndefined()
    // A reader open at the token, whose refreshes then fail: a read after a newer token names that view.
    faults.clear()
    expect(await drive(clock, index.getByMsgId('t', 1, 'm1', { after: token, timeoutMs: 3_600_000 }))).toEqual({ value: meta(1) })
    expect(await first).toEqual(meta(1))

    const { token: newer } = await w.index.batchPut('t', 1, [meta(2)])
    const newerSeq = Number(newer.slice(newer.lastIndexOf('@') + 1))
    faults.failNext('open', 1_000, { role: 'reader' })
    expect(await drive(clock, index.getByMsgId('t', 1, 'm2', { after: newer, timeoutMs: 100 }))).toMatchObject({
      error: { waitedFor: `a reader view of shard ${id} at sequence >= ${newerSeq} (newest view: ${seq})` },
    })
    // A bounded read whose bound the open view is too old for: the time its view must be taken at or after.
    await clock.advance(5_000)
    const since = clock.now() - 1_000
    expect(await drive(clock, index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 1_000, timeoutMs: 100 }))).toMatchObject({
      error: { waitedFor: `a reader view of shard ${id} at sequence >= 0 taken at or after ${since} (newest view: ${seq})` },
    })
  })

  it('should fail a write whose signal aborted before it was issued with Timeout (aborted), and never apply it', async () => {
    const h = await harness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    const stopped = await drive(h.clock, h.index.batchPut('t', 1, [meta(2)], { signal: AbortSignal.abort() }))
    expect(stopped.error).toMatchObject({ _tag: 'Timeout', aborted: true })
    expect(await h.index.getByMsgId('t', 1, 'm2', { consistency: 'primary' })).toBeUndefined()
  })

  it('should say that the primary exhausted its restart intensity when its failures carried no error at all', async () => {
    // An engine of the user's whose open rejects with nothing: the shard gives up with no cause to name.
    const engine: Engine = { open: () => Promise.reject(undefined) }
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 0, withinMs: 60_000 } } } }, engine)
    const write = await drive(h.clock, h.index.batchPut('t', 1, [meta(1)], { timeoutMs: 3_600_000 }))
    expect(write.error).toMatchObject({
      _tag: 'ShardUnavailable',
      message: `shard ${h.shardId('t', 1)} is unavailable: its primary exhausted its restart intensity. Recover it with index.recover(${JSON.stringify(h.shardId('t', 1))}) once the cause is fixed`,
    })
    expect((write.error as ShardUnavailable).cause).toBeUndefined()
  })

  it("should forget the readers' failed open once a reader opened (reader mode)", async () => {
    const w = await harness({ readers: { min: 0 } })
    const { token } = await w.index.batchPut('t', 1, [meta(1)])
    // The reader-mode index's first reader open fails; the restart after 100 ms opens.
    const opens = gate(false)
    const faults = new FaultInjector(holdingOpens(opens, 'reader', 'before'))
    faults.failNext('open', 1, { role: 'reader' })
    const clock = new ManualClock(1_000_000)
    const index = await openRefreshing({ root: w.root, engine: faults, clock, supervision: { readers: { backoff: { minMs: 100, maxMs: 100, jitter: 0 } } } })
    add(() => index.close())
    expect(await drive(clock, index.getByMsgId('t', 1, 'm1', { after: token, timeoutMs: 3_600_000 }))).toEqual({ value: meta(1) })
    expect(faults.injected.open).toBe(1)
    // A newer write, whose refresh is held: the read times out, and no open failed since a reader opened.
    const { token: newer } = await w.index.batchPut('t', 1, [meta(2)])
    opens.hold()
    const late = await drive(clock, index.getByMsgId('t', 1, 'm2', { after: newer, timeoutMs: 100 }))
    opens.open()
    expect(late.error).toMatchObject({ _tag: 'Timeout' })
    expect((late.error as Timeout).cause).toBeUndefined()
  })

  it('should say why the primary did not come: its last failed open, until an open succeeds', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.faults.failNext('open', 1_000, { role: 'primary' })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    // The restart after 1 s fails (on record once its failure is announced); a write then waits and is told so.
    await drive(h.clock, h.event((e) => e.type === 'failed' && e.actor === 'primary' && e.detail?.includes('injected open') === true, n))
    const failed = await drive(h.clock, h.index.batchPut('t', 1, [meta(2)], { timeoutMs: 500 }))
    expect(failed.error).toMatchObject({ _tag: 'Timeout', cause: { reason: 'injected', path: expect.stringContaining(h.shardId('t', 1).split('/')[0]!) } })
    expect((failed.error as Timeout).message).toMatch(/ \(the last open of its primary failed: .*\); it did not run$/)
    // An open succeeds: what waits after the next crash is told nothing of the old failure.
    h.faults.clear()
    expect(await drive(h.clock, h.index.batchPut('t', 1, [meta(2)], { timeoutMs: 3_600_000 }))).toMatchObject({ value: { bytes: expect.any(Number) } })
    h.index.faults.crash('t', 1, 'primary')
    const quiet = await drive(h.clock, h.index.batchPut('t', 1, [meta(3)], { timeoutMs: 100 }))
    expect(quiet.error).toMatchObject({ _tag: 'Timeout' })
    expect((quiet.error as Timeout).cause).toBeUndefined()
  })

  /**
   * A shard of partition 1 with one reader that covers `m1`, whose primary crashed and then failed to reopen: that
   * failure is on record, and the next reopen is a minute away (readers restart after 100 ms).
   */
  const primaryDownAfterFailedOpen = async (engine?: Engine) => {
    const slow = { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 10, withinMs: 3_600_000 } }
    const h = await harness({ readers: { min: 1, max: 1 }, supervision: { primary: slow, readers: { backoff: { minMs: 100, maxMs: 100, jitter: 0 } } } }, engine)
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    h.faults.failNext('open', 1_000, { role: 'primary' })
    const crashedAt = h.events.length
    h.index.faults.crash('t', 1, 'primary')
    await drive(h.clock, h.event((e) => e.type === 'failed' && e.actor === 'primary' && e.detail?.includes('injected open') === true, crashedAt), 100)
    return h
  }

  it("should keep the primary's failed open for a wait for the primary when a reader's open fails after it", async () => {
    // The reader's MultiGets wait, while held, until let go.
    const multiGets = gate(false)
    const h = await primaryDownAfterFailedOpen(holding(multiGets, 'reader', 'getManySettled'))
    // (The next reopen is a minute later: the read times out first.)
    const first = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary', timeoutMs: 30_000 }), 100)
    expect((first.error as Timeout).message).toContain('(the last open of its primary failed: ')
    // A read the reader serves, deferred for a MultiGet while the process runs its most: its Timeout is not the
    // primary's doing.
    multiGets.hold()
    const most = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))
    const loose = { consistency: 'bounded', maxStalenessMs: 3_600_000 } as const
    const taking: Promise<unknown>[] = []
    for (let k = 1; k <= most; k++) {
      taking.push(h.index.getByMsgId('t', 1, 'm1', loose))
      await waitFor(() => multiGets.waiting === k)
    }
    const deferred = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { ...loose, timeoutMs: 100 }))
    expect(deferred.error).toMatchObject({ _tag: 'Timeout', waitedFor: expect.stringContaining('MultiGet to finish') })
    expect((deferred.error as Timeout).cause).toBeUndefined()
    multiGets.open()
    await Promise.all(taking)
    // Then a reader crashes and its reopen fails too: a later wait for the primary still names the primary's failure.
    h.faults.failNext('open', 1_000, { role: 'reader' })
    const n = h.events.length
    h.index.faults.crash('t', 1, 'readers')
    await drive(h.clock, h.event((e) => e.type === 'failed' && e.actor.startsWith('reader-') && e.detail?.includes('injected') === true, n))
    const second = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary', timeoutMs: 500 }))
    expect(second.error).toMatchObject({ _tag: 'Timeout', waitedFor: `the primary of shard ${h.shardId('t', 1)} to open`, cause: { reason: 'injected' } })
    expect((second.error as Timeout).message).toContain('(the last open of its primary failed: ')
  })

  it("should keep the primary's failed open for a wait for the primary when a reader opens after it", async () => {
    const h = await primaryDownAfterFailedOpen()
    // Then a reader crashes and its replacement opens: a reader's open that succeeds says nothing of the primary.
    const n = h.events.length
    h.index.faults.crash('t', 1, 'readers')
    await drive(h.clock, h.event((e) => e.type === 'opened' && e.actor.startsWith('reader-'), n), 100)
    const read = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary', timeoutMs: 500 }))
    expect(read.error).toMatchObject({ _tag: 'Timeout', waitedFor: `the primary of shard ${h.shardId('t', 1)} to open`, cause: { reason: 'injected' } })
  })

  it("should not blame a reader's failed open for a write that waited for its turn in the write queue", async () => {
    // The primary's writes wait, once held, until let go.
    const writes = gate(false)
    const engine = holding(writes, 'primary', 'write')
    const h = await harness({ readers: { min: 1, max: 1 }, supervision: { readers: { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 10, withinMs: 3_600_000 } } } }, engine)
    // The pool's first reader fails to open (and waits a minute to try again): a reader's failure is on record.
    h.faults.failNext('open', 1, { role: 'reader' })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => h.events.some((e) => e.type === 'failed' && e.actor.startsWith('reader-')))
    writes.hold()
    const first = h.index.batchPut('t', 1, [meta(2)])
    await waitFor(() => writes.waiting === 1)
    try {
      const queued = await drive(h.clock, h.index.batchPut('t', 1, [meta(3)], { timeoutMs: 100 }))
      expect(queued.error).toMatchObject({ _tag: 'Timeout', waitedFor: expect.stringMatching(/^its turn in the write queue/) })
      expect((queued.error as Timeout).cause).toBeUndefined()
    } finally {
      writes.open()
    }
    await first
  })

  it("should tell a writer-mode fresh read, which waits for a reader view or the primary, whichever's open failed last", async () => {
    const slow = { backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 }, intensity: { maxRestarts: 10, withinMs: 3_600_000 } }
    const quick = { backoff: { minMs: 100, maxMs: 100, jitter: 0 }, intensity: { maxRestarts: 1_000, withinMs: 3_600_000 } }
    const h = await harness({ readers: { min: 1, max: 1 }, supervision: { primary: slow, readers: quick } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    // The readers crash and their reopens fail: the last failed open is a reader's (the primary is up).
    h.faults.failNext('open', 1_000, { role: 'reader' })
    h.index.faults.crash('t', 1, 'readers')
    await drive(h.clock, waitFor(() => h.faults.injected.open > 0))
    // The primary crashes too (no failed open): a fresh read waits for a view or the primary, and is told of the reader's.
    h.index.faults.crash('t', 1, 'primary')
    const byReader = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 100 }))
    expect(byReader.error).toMatchObject({ _tag: 'Timeout', waitedFor: expect.stringMatching(/, or the primary of shard /), cause: { reason: 'injected' } })
    expect((byReader.error as Timeout).message).toContain('(the last open of its readers failed: ')
    // Then the primary's reopen fails: the same read is told of the primary's.
    h.faults.failNext('open', 1_000, { role: 'primary' })
    const reopenedAt = h.events.length
    await drive(h.clock, h.event((e) => e.type === 'failed' && e.actor === 'primary' && e.detail?.includes('injected open') === true, reopenedAt), 100)
    const byPrimary = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 30_000 }), 100)
    expect(byPrimary.error).toMatchObject({ _tag: 'Timeout', cause: { reason: 'injected' } })
    expect((byPrimary.error as Timeout).message).toContain('(the last open of its primary failed: ')
  })

  it("should name the primary a writer-mode read waited for, and a fresh read's view or the primary", async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 5_000, maxMs: 5_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const id = h.shardId('t', 1)
    h.index.faults.crash('t', 1, 'primary')
    const down = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary', timeoutMs: 100 }))
    expect(down).toMatchObject({ error: { _tag: 'Timeout', waitedFor: `the primary of shard ${id} to open` } })
    // A crash is no failed open: nothing to tell.
    expect((down.error as Timeout).cause).toBeUndefined()
    expect(await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { timeoutMs: 100 }))).toMatchObject({
      error: { _tag: 'Timeout', waitedFor: expect.stringMatching(new RegExp(`^a reader view of shard ${id} at sequence >= [0-9]+ \\(newest view: none open\\), or the primary of shard ${id}$`)) },
    })
    expect(await drive(h.clock, h.index.batchPut('t', 1, [meta(2)], { timeoutMs: 100 }))).toMatchObject({
      error: { _tag: 'Timeout', waitedFor: `the primary of shard ${id} to open` },
    })
  })
})

describe('a range read that fails with a transient failure', () => {
  /** The primary's snapshots (a range read's two seeks) fail while `flaky.failures > 0` (each failure counts down). */
  const flaky = { failures: 0, snapshots: 0, reason: 'io' as 'io' | 'permission' }
  const failing = overridingHandles({
    primary: (handle) => ({
      withSnapshot: async (fn) => {
        flaky.snapshots++
        if (flaky.failures > 0) {
          flaky.failures--
          throw new StorageFailure({ reason: flaky.reason, path: handle.path, message: `flaky snapshot ${flaky.snapshots}` })
        }
        return handle.withSnapshot(fn)
      },
    }),
  })

  it('should retry it once on a handle that is not broken (no restart), and fail with the second failure', async () => {
    Object.assign(flaky, { failures: 0, reason: 'io' })
    const h = await harness({ readers: { min: 0 } }, failing)
    await h.index.batchPut('t', 1, [meta(1), meta(2)])
    const range = { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } }
    const stats = () => shardStats(h, 't', 1)
    const before = { served: stats().served.primary, restarts: stats().restarts.primary, snapshots: flaky.snapshots }
    flaky.failures = 1
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000)).toEqual(range)
    expect(flaky.snapshots - before.snapshots).toBe(2)
    // Each attempt is counted where it was served; the probe found the primary sound: nothing restarted.
    expect(stats().served.primary - before.served).toBe(2)
    flaky.failures = 2
    await expect(h.index.getRangeByTime('t', 1, 0, 10_000)).rejects.toMatchObject({ _tag: 'StorageFailure', reason: 'io', message: `flaky snapshot ${before.snapshots + 4}` })
    expect(flaky.snapshots - before.snapshots).toBe(4)
    expect(stats().restarts.primary).toBe(before.restarts)
    expect(stats().queues.pendingReads).toBe(0)
    // A failure retrying cannot cure fails the read at once.
    Object.assign(flaky, { failures: 1, reason: 'permission' })
    await expect(h.index.getRangeByTime('t', 1, 0, 10_000)).rejects.toMatchObject({ reason: 'permission', message: `flaky snapshot ${before.snapshots + 5}` })
    expect(flaky.snapshots - before.snapshots).toBe(5)
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000)).toEqual(range)
  })
})

describe('a range read that started before its deadline passed', () => {
  it('should finish and answer, its deadline passed or not', async () => {
    // The primary's snapshots (a range read's seeks) wait at the gate while it is held.
    const snapshots = gate(false)
    const engine = overridingHandles({ primary: (handle) => ({ withSnapshot: async (fn) => (await snapshots.pass(), handle.withSnapshot(fn)) }) })
    const h = await harness({ readers: { min: 0 } }, engine)
    await h.index.batchPut('t', 1, [meta(1), meta(2)])
    snapshots.hold()
    const { outcomes, track } = tracker()
    track('read', h.index.getRangeByTime('t', 1, 0, 10_000, { timeoutMs: 50 }))
    await waitFor(() => snapshots.waiting === 1)
    // Its I/O began: the deadline passes while it runs, and no longer bounds it.
    await h.clock.advance(100)
    await settle()
    expect(outcomes).toEqual({})
    snapshots.open()
    await waitFor(() => outcomes.read !== undefined)
    expect(outcomes.read).toEqual({ value: { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } } })
  })
})

describe('where a range read is counted', () => {
  it("should count it in stats().served as the reader's or the primary's, whichever served it", async () => {
    const h = await harness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const range = { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 1 } }
    const before = shardStats(h, 't', 1).served
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000, { after: token, consistency: 'bounded', maxStalenessMs: 3_600_000 })).toEqual(range)
    expect(shardStats(h, 't', 1).served).toEqual({ ...before, readers: before.readers + 1 })
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000, { consistency: 'primary' })).toEqual(range)
    expect(shardStats(h, 't', 1).served).toEqual({ ...before, readers: before.readers + 1, primary: before.primary + 1 })
  })
})

describe('a scan whose iteration fails before its first entry', () => {
  /** The primary's iterations fail with a transient failure while `flaky.failures > 0` (each failure counts down). */
  const flaky = { failures: 0, iterations: 0 }
  const failing = overridingHandles({
    primary: (handle) => ({
      iterate: (range) => {
        flaky.iterations++
        if (flaky.failures > 0) {
          flaky.failures--
          return (async function* () {
            yield* []
            throw new StorageFailure({ reason: 'io', path: handle.path, message: `flaky iteration ${flaky.iterations}` })
          })()
        }
        return handle.iterate(range)
      },
    }),
  })

  it('should retry it once on a handle that is not broken (no restart), and fail with the second failure', async () => {
    flaky.failures = 0
    const h = await harness({ readers: { min: 0 } }, failing)
    await h.index.batchPut('t', 1, [meta(1), meta(2)])
    const stats = () => shardStats(h, 't', 1)
    const before = { served: stats().served.primary, restarts: stats().restarts.primary, iterations: flaky.iterations }
    flaky.failures = 1
    expect(await collect(h.index.scanByTime('t', 1, 0, 10_000))).toEqual([meta(1), meta(2)])
    expect(flaky.iterations - before.iterations).toBe(2)
    // Each attempt is counted where it was served; the probe found the primary sound: nothing restarted.
    expect(stats().served.primary - before.served).toBe(2)
    expect(stats().restarts.primary).toBe(before.restarts)
    expect(stats().queues.pendingReads).toBe(0)
    flaky.failures = 2
    const failure = await collect(h.index.scanByTime('t', 1, 0, 10_000)).catch((e: unknown) => e)
    expect(failure).toMatchObject({ _tag: 'StorageFailure', reason: 'io', message: `flaky iteration ${before.iterations + 4}` })
    expect(flaky.iterations - before.iterations).toBe(4)
    expect(stats().queues.pendingReads).toBe(0)
    flaky.failures = 0
  })
})

describe('reads waiting for a handle, at queues.maxPendingReads', () => {
  it('should refuse one more with Overloaded naming the shard and how many wait, free the place of one that timed out, and serve those that waited', async () => {
    const h = await harness({ readers: { min: 0 }, queues: { maxPendingReads: 2 }, supervision: { primary: { backoff: { minMs: 5_000, maxMs: 5_000, jitter: 0 } } } })
    await h.index.batchPut('t', 1, [meta(1)])
    const id = h.shardId('t', 1)
    h.index.faults.crash('t', 1, 'primary')
    // Writes waiting for the primary too: they do not count against the reads' bound.
    const writes = [h.index.batchPut('t', 1, [meta(2)]), h.index.batchPut('t', 1, [meta(3)])]
    await waitFor(() => shardStats(h, 't', 1).queues.pendingWrites === 2)
    const primary = { consistency: 'primary' } as const
    const brief = [1, 2].map(() => h.index.getByMsgId('t', 1, 'm1', { ...primary, timeoutMs: 50 }).catch((e: unknown) => e))
    await waitFor(() => shardStats(h, 't', 1).queues.pendingReads === 2)
    const refused = await h.index.getByMsgId('t', 1, 'm1', primary).catch((e: unknown) => e)
    expect(refused).toMatchObject({ _tag: 'Overloaded', shard: id, message: `shard ${id}: 2 reads already wait for a handle` })
    // Reads that timed out leave the queue: their places are free for others.
    await h.clock.advance(50)
    for (const outcome of await Promise.all(brief)) expect(outcome).toMatchObject({ _tag: 'Timeout' })
    const waiting = [h.index.getByMsgId('t', 1, 'm1', primary), h.index.getByMsgId('t', 1, 'm1', primary)]
    await waitFor(() => shardStats(h, 't', 1).queues.pendingReads === 2)
    expect(await h.index.getByMsgId('t', 1, 'm1', primary).catch((e: unknown) => e)).toMatchObject({ _tag: 'Overloaded' })
    // The primary reopens after its backoff: the two that waited are served.
    expect(await drive(h.clock, Promise.all(waiting))).toEqual({ value: [meta(1), meta(1)] })
    expect((await Promise.all(writes)).length).toBe(2)
  })
})

describe('a read that waited for a view, once served', () => {
  it('should leave the queue of reads waiting for a handle (reader mode, queues.maxPendingReads 1)', async () => {
    const w = await harness({ readers: { min: 0 } })
    const first = await w.index.batchPut('t', 1, [meta(1)])
    const clock = new ManualClock(1_000_000)
    const index = await openIndex({ root: w.root, mode: 'reader', clock, readers: { min: 1, max: 1 }, queues: { maxPendingReads: 1 } })
    add(() => index.close())
    // The first read waits for the shard's first reader; the second, after a newer write, for a refresh: each is the
    // only read waiting when it comes.
    expect(await drive(clock, index.getByMsgId('t', 1, 'm1', { after: first.token }))).toEqual({ value: meta(1) })
    const second = await w.index.batchPut('t', 1, [meta(2)])
    expect(await drive(clock, index.getByMsgId('t', 1, 'm2', { after: second.token }))).toEqual({ value: meta(2) })
  })
})

describe('the reader pool under held point reads', () => {
  /** Readers' MultiGets (counted per reader handle) and opens wait while `held.on`, until `held.release()`. */
  const held = {
    on: false,
    perHandle: new Map<object, number>(),
    waiting: [] as (() => void)[],
    opens: [] as (() => void)[],
    /** How many of the next readers' MultiGets fail with a transient failure (the probe of the handle succeeds). */
    failing: 0,
    release(): void {
      this.on = false
      for (const go of [...this.waiting.splice(0), ...this.opens.splice(0)]) go()
    },
  }
  const holding = overridingHandles({
    reader: (handle) => ({
      getManySettled: async (keys) => {
        if (held.failing > 0) {
          held.failing--
          throw new StorageFailure({ reason: 'io', path: handle.path, message: 'flaky' })
        }
        if (held.on) {
          held.perHandle.set(handle, (held.perHandle.get(handle) ?? 0) + 1)
          await new Promise<void>((resolve) => held.waiting.push(resolve))
        }
        return handle.getManySettled!(keys)
      },
    }),
  })
  const gated: Engine = {
    open: async (path, options) => {
      if (options.readOnly && held.on) await new Promise<void>((resolve) => held.opens.push(resolve))
      return holding.open(path, options)
    },
  }

  /**
   * A reader-mode index on a root holding m1..m8 whose `readers.min` readers all serve (they open on the data, at
   * the same view); from then on its readers' MultiGets are held.
   */
  const ready = async (readers: { min: number; max: number; growAt?: number }) => {
    held.on = false
    held.failing = 0
    held.perHandle.clear()
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, Array.from({ length: 8 }, (_, i) => meta(i + 1)))
    const faults = new FaultInjector(gated)
    const index = await openIndex({ root: w.root, mode: 'reader', engine: faults, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { ...readers, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => index.close())
    // (Run before the close: a held read would keep it waiting.)
    add(async () => held.release())
    expect(await index.getByMsgId('t', 1, 'm8')).toEqual(meta(8))
    await waitFor(() => index.stats().shards[0]?.views.length === readers.min)
    held.on = true
    return { index, faults }
  }

  it('should send each read to the least-loaded reader that serves it', async () => {
    const { index } = await ready({ min: 2, max: 2 })
    const reads = [index.getByMsgId('t', 1, 'm1')]
    await settle()
    reads.push(index.getByMsgId('t', 1, 'm2'))
    await waitFor(() => held.waiting.length === 2)
    expect([...held.perHandle.values()]).toEqual([1, 1])
    held.release()
    expect(await Promise.all(reads)).toEqual([meta(1), meta(2)])
  })

  it('should count a point read retried on a sound handle once: that reader is as loaded as the other afterwards', async () => {
    const { index } = await ready({ min: 2, max: 2 })
    held.on = false
    // A MultiGet fails once; the probe finds its handle sound: the read is retried, and served.
    held.failing = 1
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    expect(held.failing).toBe(0)
    expect(index.stats().shards[0]!.restarts.readers).toBe(0)
    // Nothing in flight on either reader now: two reads in two turns go one to each.
    held.on = true
    const reads = [index.getByMsgId('t', 1, 'm2')]
    await waitFor(() => held.waiting.length === 1)
    reads.push(index.getByMsgId('t', 1, 'm3'))
    await waitFor(() => held.waiting.length === 2)
    expect([...held.perHandle.values()]).toEqual([1, 1])
    held.release()
    expect(await Promise.all(reads)).toEqual([meta(2), meta(3)])
  })

  it('should send a writer-mode read that the memory of recent writes completes to the least-loaded stale reader', async () => {
    held.on = false
    held.perHandle.clear()
    const h = await harness({ readers: { min: 2, max: 2, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } }, gated)
    add(async () => held.release())
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 8 }, (_, i) => meta(i + 1)))
    await untilReaderCovers(h, 't', 1, token, 'm8', 2)
    // A write the readers' views lack: fresh reads are served by a reader merged with the memory of that write.
    await h.index.batchPut('t', 1, [meta(9)])
    const before = shardStats(h, 't', 1).served
    held.on = true
    const reads = [h.index.getByMsgId('t', 1, 'm1')]
    await waitFor(() => held.waiting.length === 1)
    reads.push(h.index.getByMsgId('t', 1, 'm2'))
    await waitFor(() => held.waiting.length === 2)
    // Each reader has one: the second read went to the reader with none in flight.
    expect([...held.perHandle.values()]).toEqual([1, 1])
    held.release()
    expect(await Promise.all(reads)).toEqual([meta(1), meta(2)])
    expect(shardStats(h, 't', 1).served).toEqual({ ...before, readers: before.readers + 2 })
  })

  it('should ask for one more reader once the reads in flight reach growAt per reader, not before', async () => {
    const { index } = await ready({ min: 2, max: 4, growAt: 2 })
    /** Reader actors of the shard, whatever their state (a new one counts from the moment it is asked for). */
    const actors = () => Object.values(index.stats().shards[0]!.readers).reduce((a, n) => a + n, 0)
    expect(actors()).toBe(2)
    // One read alone (1 in flight), then three in one turn: routed with 1 in flight and 2 more of its chunk, 3 over
    // 2 readers, below growAt per reader; they go to the other reader (4 in flight).
    const reads: Promise<unknown>[] = [index.getByMsgId('t', 1, 'm1')]
    await waitFor(() => held.waiting.length === 1)
    reads.push(index.getByMsgId('t', 1, 'm2'), index.getByMsgId('t', 1, 'm3'), index.getByMsgId('t', 1, 'm4'))
    await waitFor(() => held.waiting.length === 2)
    expect([...held.perHandle.values()]).toEqual([1, 1])
    expect(actors()).toBe(2)
    // The next read meets 4 in flight over 2 readers: growAt per reader, and a third reader is asked for at once.
    reads.push(index.getByMsgId('t', 1, 'm5'))
    await settle()
    expect(actors()).toBe(3)
    // While that reader opens (its open is held), more reads ask for no other.
    reads.push(index.getByMsgId('t', 1, 'm6'))
    await settle()
    expect(actors()).toBe(3)
    held.release()
    expect(await Promise.all(reads)).toEqual([1, 2, 3, 4, 5, 6].map(meta))
  })
})

describe('a writer-mode pool that starts with no reader', () => {
  it('should ask for its first reader once the reads in flight reach growAt', async () => {
    const h = await harness({ readers: { min: 0, max: 1, growAt: 2, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    await h.index.batchPut('t', 1, [meta(1)])
    expect(shardStats(h, 't', 1).readers).toEqual({})
    // Lone reads (one in flight at a time) stay below growAt: no reader is asked for.
    for (let i = 0; i < 3; i++) expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await settle()
    expect(shardStats(h, 't', 1).readers).toEqual({})
    // Reads in one turn reach it: the first reader is asked for, opens, and serves.
    expect(await Promise.all(Array.from({ length: 8 }, () => h.index.getByMsgId('t', 1, 'm1')))).toEqual(Array.from({ length: 8 }, () => meta(1)))
    await waitFor(() => shardStats(h, 't', 1).views.length === 1, 2_000)
  })
})

describe('which stale reader a read has refreshed', () => {
  it('should refresh the reader with the oldest view: the lowest sequence, then the one opened first', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const clock = new ManualClock(1_000_000)
    const index = await openRefreshing({ root: w.root, clock, readers: { min: 2, max: 2, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => index.close())
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await waitFor(() => index.stats().shards[0]?.views.length === 2)
    /** Each reader's view (sequence, opened at), by reader id. */
    const views = () => Object.fromEntries(index.stats().shards[0]!.views.map((v) => [v.reader, { sequence: v.sequence, openedAt: clock.now() - v.ageMs }]))
    const [one, other] = Object.keys(views())
    const s1 = views()[one!]!.sequence
    expect(views()[other!]).toEqual(views()[one!])
    /** Runs `read`, and returns the reader whose view it had refreshed (the one whose view opened anew). */
    const refreshedBy = async (read: () => Promise<unknown>): Promise<string[]> => {
      const before = views()
      await read()
      const after = views()
      return Object.keys(after).filter((reader) => after[reader]!.openedAt !== before[reader]!.openedAt)
    }
    /** A bounded read that neither view is recent enough for: one reader refreshes for it. */
    const boundedRead = async (): Promise<void> => {
      await clock.advance(20)
      expect(await drive(clock, index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 5 }))).toEqual({ value: meta(1) })
    }
    // A write, and a read after it: the views tie (same sequence, opened together): the reader first in the pool
    // refreshes (which one that is depends on which open finished first).
    const { token } = await w.index.batchPut('t', 1, [meta(2)])
    const s2 = Number(token.slice(token.lastIndexOf('@') + 1))
    await clock.advance(10)
    const tie = await refreshedBy(async () => expect(await drive(clock, index.getByMsgId('t', 1, 'm2', { after: token }))).toEqual({ value: meta(2) }))
    expect(tie).toHaveLength(1)
    const first = tie[0]!
    const second = first === one ? other! : one!
    expect([views()[first]!.sequence, views()[second]!.sequence]).toEqual([s2, s1])
    // The second's view has the lower sequence: it refreshes, though it comes later in the pool.
    expect(await refreshedBy(boundedRead)).toEqual([second])
    expect([views()[first]!.sequence, views()[second]!.sequence]).toEqual([s2, s2])
    // The same sequence: the view opened first refreshes: the first reader, then the second, then the first.
    expect(await refreshedBy(boundedRead)).toEqual([first])
    expect(await refreshedBy(boundedRead)).toEqual([second])
    expect(await refreshedBy(boundedRead)).toEqual([first])
  })
})

describe('a refresh that fails while a read waits for it', () => {
  /** A writer that wrote m1, and a reader-mode index on its root whose two readers both serve m1. */
  const twoReaders = async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    const clock = new ManualClock(1_000_000)
    const index = await openRefreshing({ root: w.root, engine: faults, clock, readers: { min: 2, max: 2, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => index.close())
    const events: { type: string; actor?: string }[] = []
    index.subscribe((e) => events.push(e as { type: string; actor?: string }))
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await waitFor(() => index.stats().shards[0]?.views.length === 2)
    return { w, faults, clock, index, events }
  }

  it('should let another reader refresh for the read, and not ask the failed one again while it cools down', async () => {
    const { w, faults, clock, index, events } = await twoReaders()
    const readers = index.stats().shards[0]!.views.map((v) => v.reader)
    const { token } = await w.index.batchPut('t', 1, [meta(2)])
    const seq = Number(token.slice(token.lastIndexOf('@') + 1))
    // One reader is asked to refresh and its open fails: the other refreshes instead.
    faults.failNext('open', 1, { role: 'reader' })
    expect(await drive(clock, index.getByMsgId('t', 1, 'm2', { after: token }))).toEqual({ value: meta(2) })
    const failed = events.filter((e) => e.type === 'refresh-failed').map((e) => e.actor)
    expect(failed).toHaveLength(1)
    const other = readers.find((r) => r !== failed[0])!
    expect(readers).toContain(failed[0])
    const views = Object.fromEntries(index.stats().shards[0]!.views.map((v) => [v.reader, v.sequence]))
    expect(views[other]).toBeGreaterThanOrEqual(seq)
    expect(views[failed[0]!]).toBeLessThan(seq)
    expect(index.stats().shards[0]!.integrity.refreshFailures).toBe(1)
  })

  it('should have another reader refresh for a bounded read, their views being too old however new their sequence', async () => {
    const { faults, clock, index, events } = await twoReaders()
    // Both views hold every write, and are 20 ms old: a read bounded to 5 ms waits for a refresh. The first reader
    // asked fails to refresh: the other must refresh for the read (its sequence is new enough, its age is not).
    await clock.advance(20)
    faults.failNext('open', 1, { role: 'reader' })
    expect(await drive(clock, index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 5, timeoutMs: 1_000 }))).toEqual({ value: meta(1) })
    expect(events.filter((e) => e.type === 'refresh-failed')).toHaveLength(1)
  })
})

describe('a primary-only read while the readers are stale', () => {
  it('should ask no reader to refresh: only the primary serves it', async () => {
    const h = await harness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    await h.index.batchPut('t', 1, [meta(2)])
    const opens = h.faults.opened.reader
    expect(await h.index.getByMsgId('t', 1, 'm2', { consistency: 'primary' })).toEqual(meta(2))
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000, { consistency: 'primary' })).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } })
    // A refresh asked for would show at once: the reader actor leaves `serving` when it receives REFRESH.
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
    expect(h.faults.opened.reader).toBe(opens)
  })

  it('should ask no reader to refresh while it waits for the primary, whatever happens to the readers', async () => {
    const h = await harness({
      readers: { min: 2, max: 2, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 },
      supervision: { primary: { backoff: { minMs: 5_000, maxMs: 5_000, jitter: 0 } }, readers: { backoff: { minMs: 10, maxMs: 10, jitter: 0 } } },
    })
    await h.index.batchPut('t', 1, [meta(1)])
    // A read opens the pool (its readers open on demand).
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    await waitFor(() => shardStats(h, 't', 1).views.length === 2)
    const second = await h.index.batchPut('t', 1, [meta(2)])
    // The primary is down for 5 s: a primary-only read after the second write waits for it.
    h.index.faults.crash('t', 1, 'primary')
    await settle()
    const { outcomes, track } = tracker()
    track('primary read', h.index.getByMsgId('t', 1, 'm2', { consistency: 'primary', after: second.token, timeoutMs: 3_600_000 }))
    await settle()
    // A reader fails and is restarted: the reads still waiting are looked at again, and none is one a reader may
    // serve, so the other reader keeps its view and keeps serving.
    const views = () => Object.fromEntries(shardStats(h, 't', 1).views.map((v) => [v.reader, v.sequence]))
    const other = Object.keys(views()).find((r) => r !== 'reader-1')!
    const seq = views()[other]!
    expect(seq).toBeLessThan(parseToken(second.token).sequence)
    h.index.faults.crash('t', 1, 'reader-1')
    await h.clock.advance(10)
    await settle()
    expect(views()[other]).toBe(seq)
    expect(shardStats(h, 't', 1).readers).toMatchObject({ serving: 1 })
    expect(shardStats(h, 't', 1).readers.refreshing).toBeUndefined()
    expect(outcomes).toEqual({})
  })
})

describe('a shard whose primary exhausted its restart intensity by crashes', () => {
  it('should fail requests with ShardUnavailable naming the last failure, and how to recover the shard', async () => {
    // With a reader serving: reads go on, but a write has nothing to wait for.
    const h = await harness({ readers: { min: 1, max: 1 }, supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 10, maxMs: 10, jitter: 0 } } } })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    const id = h.shardId('t', 1)
    // Within the intensity: one restart. The second crash is one too many.
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    expect(await drive(h.clock, waitFor(() => shardStats(h, 't', 1).primary === 'ready'))).toEqual({ value: undefined })
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    expect(await drive(h.clock, waitFor(() => shardStats(h, 't', 1).state === 'failed'))).toEqual({ value: undefined })
    const failure = await h.index.batchPut('t', 1, [meta(2)]).catch((e: unknown) => e)
    expect(failure).toMatchObject({ _tag: 'ShardUnavailable', shard: id })
    expect((failure as Error).message).toBe(`shard ${id} is unavailable: its primary gave up after: injected crash of primary in ${id}. Recover it with index.recover(${JSON.stringify(id)}) once the cause is fixed`)
    expect((failure as { cause?: unknown }).cause).toMatchObject({ message: `injected crash of primary in ${id}` })
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
  })
})

describe('a damaged entry met by a read that waited for a handle', () => {
  it('should fail that read with StorageFailure corruption too (reader mode, the first read of a shard)', async () => {
    const root = await damagedRoot()
    const index = await openIndex({ root, mode: 'reader', clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 1 } })
    add(() => index.close())
    // The shard's first read: no reader is open yet, so it waits for one and reads alone when it opens.
    const failure = await index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 1 }).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(StorageFailure)
    expect(failure).toMatchObject({ reason: 'corruption' })
    expect((failure as StorageFailure).message).toContain('it is damaged')
    expect(await index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 2 })).toBe('m2')
  })
})

describe('a reader-mode shard whose readers exhausted their restart intensity', () => {
  it('should fail the reads waiting with ShardUnavailable naming its readers and their last failure', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const id = w.shardId('t', 1)
    const faults = new FaultInjector()
    faults.failNext('open', 1_000, { role: 'reader' })
    const clock = new ManualClock(1_000_000)
    const index = await openIndex({
      root: w.root,
      mode: 'reader',
      engine: faults,
      clock,
      inspect: recordInspection,
      readers: { min: 1, max: 1 },
      supervision: { readers: { intensity: { maxRestarts: 1, withinMs: 60_000 }, backoff: { minMs: 10, maxMs: 10, jitter: 0 } } },
    })
    add(() => index.close())
    const outcome = await drive(clock, index.getByMsgId('t', 1, 'm1'))
    expect(outcome).toMatchObject({ error: { _tag: 'ShardUnavailable', shard: id } })
    expect((outcome.error as Error).message).toMatch(new RegExp(`^shard ${id} is unavailable: its readers gave up after: injected open failure`))
  })
})

describe('a reader-mode shard whose readers failed with no error at all', () => {
  it('should say that its readers exhausted their restart intensity', async () => {
    const w = await harness({ readers: { min: 0 } })
    await w.index.batchPut('t', 1, [meta(1)])
    const id = w.shardId('t', 1)
    // An engine of the user's whose read-only opens reject with nothing: the readers give up with no cause to name.
    const engine: Engine = { open: (path, options) => (options.readOnly === true ? Promise.reject(undefined) : rocksEngine.open(path, options)) }
    const clock = new ManualClock(1_000_000)
    const index = await openIndex({ root: w.root, mode: 'reader', engine, clock, readers: { min: 1, max: 1 }, supervision: { readers: { intensity: { maxRestarts: 0, withinMs: 60_000 } } } })
    add(() => index.close())
    const outcome = await drive(clock, index.getByMsgId('t', 1, 'm1', { timeoutMs: 3_600_000 }))
    expect(outcome.error).toMatchObject({
      _tag: 'ShardUnavailable',
      message: `shard ${id} is unavailable: its readers exhausted their restart intensity. Recover it with index.recover(${JSON.stringify(id)}) once the cause is fixed`,
    })
    expect((outcome.error as ShardUnavailable).cause).toBeUndefined()
  })
})

describe('a request with a deadline and a signal, once it settled', () => {
  it("should leave neither its deadline's timer nor a listener on its signal", async () => {
    const h = await harness({ readers: { min: 0 } })
    // The first write arms what a shard keeps armed (the time trigger of its flushes).
    await h.index.batchPut('t', 1, [meta(1)])
    const timers = h.clock.pending
    const controller = new AbortController()
    await h.index.batchPut('t', 1, [meta(2)], { signal: controller.signal, timeoutMs: 60_000 })
    expect(await h.index.getByMsgId('t', 1, 'm2', { signal: controller.signal, timeoutMs: 60_000 })).toEqual(meta(2))
    await settle()
    expect(h.clock.pending).toBe(timers)
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
  })
})

describe('the token of a write that stamped nothing, after a write that failed', () => {
  it('should be the last sequence on disk, never one a failed attempt burned, so a reader-mode index meets it at once', async () => {
    const h = await harness({ readers: { min: 0 }, supervision: { primary: { backoff: { minMs: 10, maxMs: 10, jitter: 0 } } } })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    // Both attempts of the next batch fail (the second on the restarted primary): their sequences are never written.
    h.faults.failNext('write', 2, { role: 'primary' })
    const failed = await drive(h.clock, h.index.batchPut('t', 1, [meta(2)]))
    expect(failed.error).toBeInstanceOf(StorageFailure)
    // A retention with nothing to delete writes no batch: its token is the first batch's.
    const retention = await drive(h.clock, h.index.deleteBefore('t', 1, 0))
    expect(retention.value).toMatchObject({ deleted: 0 })
    const { token } = retention.value as { token: string }
    expect(parseToken(token).sequence).toBe(parseToken(first.token).sequence)
    // An empty batch says the same.
    expect(parseToken((await h.index.batchPut('t', 1, [])).token).sequence).toBe(parseToken(first.token).sequence)
    const reader = await openIndex({ root: h.root, mode: 'reader', clock: new ManualClock(1_000_000) })
    add(() => reader.close())
    expect(await reader.getByMsgId('t', 1, 'm1', { after: token, timeoutMs: 3_600_000 })).toEqual(meta(1))
    // The next batch that is written takes a sequence above every one handed out.
    const next = await drive(h.clock, h.index.batchPut('t', 1, [meta(3)]))
    expect(parseToken((next.value as { token: string }).token).sequence).toBeGreaterThan(parseToken(first.token).sequence + 2)
  })
})

describe("a shard another index wrote while this index's primary was down", () => {
  it("should go on from the other index's sequence (tokens keep rising), and count its writes as read-your-writes", async () => {
    const h = await harness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 }, supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 } } } })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, first.token, 'm1')
    // The primary crashes; while it backs off, another index of the root writes twice, and closes.
    // The crash releases the primary's handle (and RocksDB's lock) in the background: wait until it is gone, or the
    // other index meets the lock.
    const live = h.faults.liveHandles
    h.index.faults.crash('t', 1, 'primary')
    await waitFor(() => h.faults.liveHandles === live - 1)
    const other = await openIndex({ root: h.root, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 0 } })
    await other.batchPut('t', 1, [meta(2)])
    const theirs = await other.batchPut('t', 1, [meta(3)])
    await other.close()
    expect(await drive(h.clock, waitFor(() => shardStats(h, 't', 1).primary === 'ready'))).toEqual({ value: undefined })
    // A fresh read sees what the primary found on disk (the reader's view, older, no longer serves it alone).
    expect(await h.index.getByMsgId('t', 1, 'm3')).toEqual(meta(3))
    // This index's next write takes the sequence after the other's.
    const mine = await h.index.batchPut('t', 1, [meta(4)])
    expect(parseToken(mine.token).sequence).toBe(parseToken(theirs.token).sequence + 1)
    expect(await h.index.getByMsgId('t', 1, 'm4', { after: mine.token })).toEqual(meta(4))
  })
})

describe('a writer-mode shard whose primary another index holds locked', () => {
  it('should fail writes with the lock error at once, and serve reads its readers can serve, after a refresh if need be', async () => {
    const h = await harness({
      readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 },
      supervision: { primary: { backoff: { minMs: 1_000, maxMs: 1_000, jitter: 0 } }, readers: { backoff: { minMs: 5_000, maxMs: 5_000, jitter: 0 } } },
    })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    // A write the reader's view lacks.
    const fourth = await h.index.batchPut('t', 1, [meta(4)])
    // The primary crashes; while it backs off, another index of the root takes the directory's lock and writes.
    const live = h.faults.liveHandles
    h.index.faults.crash('t', 1, 'primary')
    // Requests that wait for the primary meanwhile: a write, and a read only the primary serves. And a read after
    // the write the reader lacks, which a refresh of the reader can serve: that refresh fails, and the reader waits
    // 5 s before the next, so the read still waits when the lock is met.
    h.index.faults.failNext('open', 1, { role: 'reader' })
    const { outcomes: waiting, track } = tracker()
    await settle()
    track('write', h.index.batchPut('t', 1, [meta(3)]))
    track('primary read', h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' }))
    track('read after the token', h.index.getRangeByTime('t', 1, 0, 10_000, { after: fourth.token }))
    await settle()
    expect(waiting).toEqual({})
    await waitFor(() => h.faults.liveHandles === live - 1)
    const other = await openIndex({ root: h.root, clock: new ManualClock(1_000_000), inspect: recordInspection, readers: { min: 0 } })
    add(() => other.close())
    await other.batchPut('t', 1, [meta(2)])
    expect(await drive(h.clock, waitFor(() => shardStats(h, 't', 1).cause?.reason === 'locked'))).toEqual({ value: undefined })
    // The write and the primary read fail with the lock error as the open meets it: no reader can serve either.
    await waitFor(() => Object.keys(waiting).length === 2)
    expect(waiting).toEqual({ write: { error: expect.objectContaining({ reason: 'locked' }) }, 'primary read': { error: expect.objectContaining({ reason: 'locked' }) } })
    // The read a reader can serve waits on, and is served once the reader refreshes.
    expect((await drive(h.clock, waitFor(() => waiting['read after the token'] !== undefined))).error).toBeUndefined()
    expect(waiting['read after the token']).toEqual({ value: { first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 4 } } })
    await expect(h.index.batchPut('t', 1, [meta(3)])).rejects.toMatchObject({ reason: 'locked' })
    await expect(h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' })).rejects.toMatchObject({ reason: 'locked' })
    // A bound no view meets: the reader refreshes for it (the lock refuses only what no reader can serve), and sees
    // the other index's write.
    await h.clock.advance(1_000)
    expect(await drive(h.clock, h.index.getByMsgId('t', 1, 'm2', { consistency: 'bounded', maxStalenessMs: 5 }))).toEqual({ value: meta(2) })
  })
})
