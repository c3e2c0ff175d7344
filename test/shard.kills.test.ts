/**
 * The edges of the write path of src/shard.ts (the write queue and the primary's flushes beside it) that the
 * freshness suites reach only loosely, found by mutation testing (TESTING.md, "Mutation testing"), on real RocksDB
 * with a ManualClock: the exact age at which the time trigger flushes (counted from the first record unflushed) and
 * the failure of its batch of a solid epoch, a failed flush, the exact room a write finds beside a running flush, a
 * write that timed out waiting for a flush (and how many wait), the errors of a full write queue and of a write that
 * waited its turn too long, a write RocksDB refuses for good (failed at once, the primary kept: only a full disk
 * reopens it), a write whose deadline passed while RocksDB wrote its batch, and the byte trigger (which
 * only retention reaches before the record trigger: each deleted meta counts 3 tombstones of 1,100 bytes,
 * src/index.ts).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Overloaded, StorageFailure, Timeout, type MessageMeta } from '../src/index.js'
import { overridingHandles } from './support/engines.js'
import { openHarness, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'
import { parseToken } from '../src/tokens.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1_000 + n, segmentId: 0, offset: n, msgLen: 10 })
const metas = (from: number, n: number): MessageMeta[] => Array.from({ length: n }, (_, i) => meta(from + i))
const primary = { consistency: 'primary' } as const

/** The primary's flushes wait while `held` (or fail while `failFlush`), its writes while `writesHeld`, until released. */
const gate = { held: false, writesHeld: false, failFlush: false, waiting: [] as (() => void)[] }
const release = (): void => {
  gate.held = gate.writesHeld = gate.failFlush = false
  for (const go of gate.waiting.splice(0)) go()
}
const holdingFlushes = overridingHandles({
  primary: (handle, path) => ({
    flush: async () => {
      if (gate.failFlush) throw new StorageFailure({ reason: 'io', path, message: `flush failed in ${path}` })
      if (gate.held) await new Promise<void>((resolve) => gate.waiting.push(resolve))
      return handle.flush()
    },
    write: async (ops) => {
      if (gate.writesHeld) await new Promise<void>((resolve) => gate.waiting.push(resolve))
      return handle.write(ops)
    },
  }),
})

let h: Harness | undefined
afterEach(async () => {
  release()
  await h?.dispose()
  h = undefined
})
const flushes = () => shardStats(h!, 't', 1).flushes

describe('the time trigger', () => {
  it('should flush once the first record written since the last flush is exactly flushIntervalMs old', async () => {
    // Maintenance every second from the clock's start; records enough never to reach the size trigger.
    h = await openHarness({ readers: { min: 0 }, maintenanceIntervalMs: 1_000, freshness: { flushIntervalMs: 5_000, flushEveryRecords: 3_000 } })
    await h.index.batchPut('t', 1, metas(0, 1))
    await h.clock.advance(3_000)
    // A later write does not make the memtable younger.
    await h.index.batchPut('t', 1, metas(1, 1))
    await h.clock.advance(1_999)
    // Behind any flush the maintenance queued.
    const last = await h.index.batchPut('t', 1, metas(2, 1))
    expect(flushes()).toEqual({ done: 0, running: false, writesWaiting: 0 })
    await h.clock.advance(1)
    await waitFor(() => flushes().done === 1)
    // Every batch in that memtable carried its epoch (none was written beside a flush): the trigger wrote no batch of
    // its own before flushing, and the next write's sequence follows the last one's.
    const next = await h.index.batchPut('t', 1, metas(3, 1))
    expect(parseToken(next.token).sequence).toBe(parseToken(last.token).sequence + 1)
  })
  it('should restart the primary whose batch of the sequence and a solid epoch, written by the time trigger, fails', async () => {
    h = await openHarness({ readers: { min: 0 }, maintenanceIntervalMs: 1_000, freshness: { flushIntervalMs: 1_000, flushEveryRecords: 30 } }, holdingFlushes)
    gate.held = true
    await h.index.batchPut('t', 1, metas(0, 10)) // 30 records: a flush begins, and waits
    await h.index.batchPut('t', 1, metas(10, 1)) // beside it: a boundary batch, all that is unflushed once it ends
    release()
    await waitFor(() => flushes().done === 1)
    // The time trigger writes a batch of the sequence and a solid epoch before it flushes: that write fails.
    h.faults.failNext('write', 1, { role: 'primary' })
    const n = h.events.length
    await h.clock.advance(1_000)
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    expect(flushes()).toMatchObject({ done: 1, running: false })
  })
  it("should keep the shard's sequence rising and its epochs without a gap through the batch it writes before flushing", async () => {
    h = await openHarness({ readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 }, maintenanceIntervalMs: 1_000, freshness: { flushIntervalMs: 1_000, flushEveryRecords: 30 } }, holdingFlushes)
    gate.held = true
    await h.index.batchPut('t', 1, metas(0, 10)) // 30 records: a flush begins, and waits
    const beside = await h.index.batchPut('t', 1, metas(10, 1)) // beside it: a boundary batch, all that is unflushed once it ends
    release()
    await waitFor(() => flushes().done === 1)
    // The time trigger writes a batch of the sequence and a solid epoch, then flushes; nothing is written beside
    // that flush. The next write's sequence comes after both.
    await h.clock.advance(1_000)
    await waitFor(() => flushes().done === 2)
    const after = await h.index.batchPut('t', 1, metas(11, 1))
    expect(parseToken(after.token).sequence).toBe(parseToken(beside.token).sequence + 2)
    // A reader's view of the shard now is whole (every epoch in its slot) and holds that write.
    await untilReaderCovers(h, 't', 1, after.token, 'm11')
    expect(shardStats(h, 't', 1).integrity.tornViews).toBe(0)
    expect(await h.index.getByMsgId('t', 1, 'm11', { after: after.token, consistency: 'bounded', maxStalenessMs: 0 })).toEqual(meta(11))
  })
  it('should restart the primary whose flush fails', async () => {
    h = await openHarness({ readers: { min: 0 }, freshness: { flushEveryRecords: 30 } }, holdingFlushes)
    gate.failFlush = true
    const n = h.events.length
    await h.index.batchPut('t', 1, metas(0, 10)) // 30 records: the flush begins, and fails
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    expect(flushes().running).toBe(false)
  })
})

describe('writes beside a running flush', () => {
  it('should let a write go on that brings the memtables to exactly twice the trigger, and hold the next', async () => {
    h = await openHarness({ readers: { min: 0 }, freshness: { flushEveryRecords: 30 } }, holdingFlushes)
    gate.held = true
    await h.index.batchPut('t', 1, metas(0, 10)) // 30 records: the flush begins, and waits
    expect(flushes().running).toBe(true)
    await h.index.batchPut('t', 1, metas(10, 9)) // 27 records beside it
    // 30 + 27 + 3 records: twice the trigger, not more.
    const [at60] = await Promise.all([h.index.batchPut('t', 1, metas(19, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e), h.clock.advance(1_000)])
    expect(at60).not.toBeInstanceOf(Error)
    const [at63] = await Promise.all([h.index.batchPut('t', 1, metas(20, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e), h.clock.advance(1_000)])
    expect(at63).toBeInstanceOf(Timeout)
    expect(flushes()).toEqual({ done: 0, running: true, writesWaiting: 1 })
    // The records beside the flush reached the trigger again, but one flush runs at a time: when it ends, it is the
    // only one that ran.
    release()
    await waitFor(() => !flushes().running)
    expect(flushes()).toEqual({ done: 1, running: false, writesWaiting: 0 })
  })

  it('should never apply a write that timed out waiting for the flush, once the flush ends', async () => {
    h = await openHarness({ readers: { min: 0 }, freshness: { flushEveryRecords: 30 } }, holdingFlushes)
    gate.held = true
    await h.index.batchPut('t', 1, metas(0, 10))
    await h.index.batchPut('t', 1, metas(10, 10)) // the triggers again beside the flush
    const [late] = await Promise.all([h.index.batchPut('t', 1, metas(20, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e), h.clock.advance(1_000)])
    expect(late).toBeInstanceOf(Timeout)
    release()
    await waitFor(() => flushes().done === 1)
    // Queued behind the timed-out write.
    await h.index.batchPut('t', 1, metas(21, 1))
    expect(await h.index.getByMsgId('t', 1, 'm21', primary)).toEqual(meta(21))
    expect(await h.index.getByMsgId('t', 1, 'm20', primary)).toBeUndefined()
    expect(flushes().writesWaiting).toBe(0)
  })
})

describe('the write queue', () => {
  it('should refuse a write with Overloaded once maxPendingWrites wait, and time out a write waiting its turn, each saying so', async () => {
    h = await openHarness({ readers: { min: 0 }, queues: { maxPendingWrites: 2 }, freshness: { flushEveryRecords: 30 } }, holdingFlushes)
    gate.held = true
    await h.index.batchPut('t', 1, metas(0, 10))
    await h.index.batchPut('t', 1, metas(10, 10)) // the triggers again beside the flush: the next writes wait
    const first = h.index.batchPut('t', 1, metas(20, 1))
    const second = h.index.batchPut('t', 1, metas(21, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e)
    const refused = await h.index.batchPut('t', 1, metas(22, 1)).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(Overloaded)
    expect((refused as Overloaded).message).toBe(`shard ${h.shardId('t', 1)}: 2 writes already pending`)
    // The second waited behind the first, which waits for the flush.
    await h.clock.advance(1_000)
    expect(((await second) as Timeout).message).toBe(`request on shard ${h.shardId('t', 1)} waited 1000 ms for its turn in the write queue of shard ${h.shardId('t', 1)} (1 writes ahead); it did not run`)
    release()
    await first
    expect(await h.index.getByMsgId('t', 1, 'm21', primary)).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm22', primary)).toBeUndefined()
  })
  it('should fail a write that RocksDB refuses for good (not a full disk) at once, keeping the primary', async () => {
    h = await openHarness({ readers: { min: 0 } })
    await h.index.batchPut('t', 1, metas(0, 1))
    for (const reason of ['corruption', 'permission', 'read-only'] as const) {
      h.faults.failNext('write', 1, { role: 'primary' }, { reason })
      const error = await h.index.batchPut('t', 1, metas(1, 1)).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StorageFailure)
      expect(error).toMatchObject({ reason })
      // Not retried, and the primary was not failed: no restart, and the next write goes through on it at once.
      expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', primary: 'ready', restarts: { primary: 0 } })
      await h.index.batchPut('t', 1, metas(2, 1))
    }
    expect(h.faults.opened.primary).toBe(1)
    expect(await h.index.getByMsgId('t', 1, 'm1', primary)).toBeUndefined()
  })

  it('should finish a write whose batch reached RocksDB before its deadline passed, however long RocksDB takes', async () => {
    h = await openHarness({ readers: { min: 0 } }, holdingFlushes)
    await h.index.batchPut('t', 1, metas(0, 1)) // the primary is open
    gate.writesHeld = true
    const write = h.index.batchPut('t', 1, metas(1, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e)
    await waitFor(() => gate.waiting.length === 1)
    await h.clock.advance(5_000)
    release()
    expect(await write).not.toBeInstanceOf(Error)
    expect(await h.index.getByMsgId('t', 1, 'm1', primary)).toEqual(meta(1))
  })
})

describe('the byte trigger', () => {
  it('should begin a flush once exactly flushEveryBytes were written, and hold a write once twice that stands beside it', async () => {
    // flushEveryBytes is a quarter of the memtable: 66,000 bytes, 20 deleted metas' tombstones (60 records, under
    // the record trigger of 64).
    h = await openHarness({ readers: { min: 0 }, rocksdb: { primary: { writeBufferSize: 264_000 } }, freshness: { flushEveryRecords: 64 } }, holdingFlushes)
    await h.index.batchPut('t', 1, metas(0, 20))
    await h.index.batchPut('t', 1, metas(20, 20)) // 120 records: a flush, which leaves nothing unflushed
    await waitFor(() => flushes().done === 1)
    gate.held = true
    expect((await h.index.deleteBefore('t', 1, 1_020)).deleted).toBe(20)
    expect(flushes()).toEqual({ done: 1, running: true, writesWaiting: 0 })
    // Beside it, one deleted meta at a time: the 20th brings the bytes switched out and beside the flush to twice
    // the trigger (132,000), the records to 60 + 60 + 3 of the 128 allowed.
    for (let k = 1; k < 20; k++) expect((await h.index.deleteBefore('t', 1, 1_020 + k)).deleted).toBe(1)
    const last = h.index.deleteBefore('t', 1, 1_040)
    await waitFor(() => flushes().writesWaiting === 1)
    release()
    expect((await last).deleted).toBe(1)
    await waitFor(() => flushes().done === 2)
  })
})
