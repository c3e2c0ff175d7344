/**
 * Freshness over read-only instances: write tokens, the consistency modes, refresh, reader mode, the lock error, and
 * the flush trigger. Real RocksDB; time from a ManualClock.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { FaultInjector, InvalidInput, ManualClock, StorageFailure, Timeout, openIndex, parseToken, type MessageMeta } from '../src/index.js'
import { decodeKey, decodeSequence } from '../src/keys.js'
import { recordInspection } from './support/coverage.js'
import { overridingHandles } from './support/engines.js'
import { harnessPerTest, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'
import { removeDir, tempDir } from './support/tmp.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const harness = harnessPerTest()
const serving = (h: Harness, topic: string, p: number) => shardStats(h, topic, p).readers.serving ?? 0

describe('the seed scenario its original fails: write, read, write again, read again', () => {
  type Mode = 'token' | { consistency?: 'primary' | 'bounded'; maxStalenessMs?: number }
  it.each<[string, Mode]>([
    ['fresh (the default)', {}],
    ['after the write token', 'token'],
    ['primary', { consistency: 'primary' }],
    ['bounded with a bound the reader exceeds', { consistency: 'bounded', maxStalenessMs: 0 }],
  ])('should see the second write with consistency %s', async (_name, mode) => {
    const h = await harness({ readers: { min: 1 } })
    const first = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, first.token, 'm1')
    // So the first read is served by that reader.
    const readerReads = h.faults.calls.readerReads
    expect(await h.index.getByMsgId('t', 1, 'm1', mode === 'token' ? { after: first.token } : mode)).toEqual(meta(1))
    if (mode !== 'token' && mode.consistency === 'primary') expect(h.faults.calls.readerReads).toBe(readerReads)
    else expect(h.faults.calls.readerReads).toBe(readerReads + 1)
    await h.clock.advance(1)
    const second = await h.index.batchPut('t', 1, [meta(2)])
    expect(parseToken(second.token).sequence).toBe(parseToken(first.token).sequence + 1)
    expect(await h.index.getByMsgId('t', 1, 'm2', mode === 'token' ? { after: second.token } : mode)).toEqual(meta(2))
  })

  it('should serve an explicitly stale bounded read from the old view, within its bound', async () => {
    const h = await harness({ readers: { min: 1 } })
    await h.index.batchPut('t', 1, [meta(1)])
    await waitFor(() => serving(h, 't', 1) === 1)
    await h.index.batchPut('t', 1, [meta(2)])
    await h.clock.advance(500)
    // The reader's view is 500 ms old: within a 1 s bound, it may (and here does) answer without the second write.
    expect(await h.index.getByMsgId('t', 1, 'm2', { consistency: 'bounded', maxStalenessMs: 1_000 })).toBeUndefined()
    await h.clock.advance(600)
    // Now the view is 1.1 s old: past the bound, the read waits for a refresh or uses the primary.
    expect(await h.index.getByMsgId('t', 1, 'm2', { consistency: 'bounded', maxStalenessMs: 1_000 })).toEqual(meta(2))
  })

  it('should refuse a token of another shard and a malformed token', async () => {
    const h = await harness()
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    const other = [...Array(64).keys()].find((p) => h.shardId('t', p) !== h.shardId('t', 1))!
    await expect(h.index.getByMsgId('t', other, 'm1', { after: token })).rejects.toBeInstanceOf(InvalidInput)
    await expect(h.index.getByMsgId('t', 1, 'm1', { after: 'nonsense' })).rejects.toBeInstanceOf(InvalidInput)
    await expect(h.index.getByMsgId('t', 1, 'm1', { consistency: 'sometimes' as never })).rejects.toBeInstanceOf(InvalidInput)
  })
})

describe('flushing keeps refreshes cheap', () => {
  it('should flush the primary after flushEveryRecords records and after flushIntervalMs', async () => {
    const h = await harness({ freshness: { flushEveryRecords: 30, flushIntervalMs: 5_000 }, maintenanceIntervalMs: 1_000 })
    await h.index.batchPut('t', 1, [meta(1), meta(2), meta(3)])
    expect(h.faults.calls.flushes).toBe(0)
    await h.index.batchPut('t', 1, Array.from({ length: 7 }, (_, i) => meta(10 + i)))
    // 3 + 7 metas = 30 records: the size trigger (the flush runs beside the writes; counted once done).
    await waitFor(() => h.faults.calls.flushes === 1)
    await h.index.batchPut('t', 1, [meta(20)])
    await h.clock.advance(4_000)
    expect(h.faults.calls.flushes).toBe(1)
    await h.clock.advance(2_000)
    await waitFor(() => h.faults.calls.flushes === 2)
    await h.clock.advance(10_000)
    expect(h.faults.calls.flushes).toBe(2)
  })
})

describe('flushes beside the writes', () => {
  let unhold = (): void => {}
  afterEach(() => unhold())
  /**
   * A harness whose primaries' flushes wait for the test while it holds them, and which records the flush epoch each
   * batch of the primary stamps (in write order).
   */
  const heldFlushes = async (options: Parameters<typeof harness>[0] = {}) => {
    const stamped: number[] = []
    /** The primary's writes and flushes, in order: `write`, `flush` (begun), `flushed`. */
    const log: string[] = []
    const held: (() => void)[] = []
    const heldWrites: (() => void)[] = []
    let holding = false
    let holdingWrites = false
    const engine = overridingHandles({
      primary: (handle) => ({
        write: async (ops) => {
          const epoch = ops.find((op) => op.type === 'put' && decodeKey(op.key).view === 'epoch')
          if (epoch?.type === 'put') stamped.push(decodeSequence(epoch.value))
          if (holdingWrites) await new Promise<void>((resolve) => heldWrites.push(resolve))
          log.push('write')
          return handle.write(ops)
        },
        flush: async () => {
          log.push('flush')
          if (holding) await new Promise<void>((resolve) => held.push(resolve))
          await handle.flush()
          log.push('flushed')
        },
      }),
    })
    const h = await harness({ readers: { min: 0 }, freshness: { flushEveryRecords: 30 }, ...options }, engine)
    // Before the harness closes (it would wait for a held flush).
    unhold = () => {
      holding = holdingWrites = false
      for (const release of [...held.splice(0), ...heldWrites.splice(0)]) release()
    }
    return {
      h,
      stamped,
      log,
      hold: () => (holding = true),
      /** Lets the held flush run; resolves once it is done. */
      release: async () => {
        const done = h.faults.calls.flushes + 1
        holding = false
        for (const r of held.splice(0)) r()
        await waitFor(() => h.faults.calls.flushes === done)
      },
      untilFlushWaits: () => waitFor(() => held.length > 0),
      heldFlushCount: () => held.length,
      holdWrites: () => (holdingWrites = true),
      releaseWrites: () => {
        holdingWrites = false
        for (const r of heldWrites.splice(0)) r()
      },
    }
  }
  const metas = (from: number, n: number) => Array.from({ length: n }, (_, i) => meta(from + i))

  it('should acknowledge writes while a flush runs, stamped with a boundary epoch, and the writes after it with a new one', async () => {
    const { h, stamped, hold, release, untilFlushWaits } = await heldFlushes()
    hold()
    await h.index.batchPut('t', 1, metas(0, 10)) // 30 records: the flush begins, and waits for the test
    await untilFlushWaits()
    // Acknowledged, readable and stamped while the flush still waits.
    await h.index.batchPut('t', 1, metas(10, 2))
    await h.index.batchPut('t', 1, metas(12, 2))
    expect(await h.index.getByMsgId('t', 1, 'm13', { consistency: 'primary' })).toEqual(meta(13))
    expect(h.faults.calls.flushes).toBe(0)
    await release()
    await h.index.batchPut('t', 1, metas(14, 1))
    const [first, ...rest] = stamped.slice(-4)
    // Before the flush, during it (boundary), after it (solid): each memtable holds an epoch no other holds.
    expect(rest).toEqual([first! + 1, first! + 1, first! + 2])
  })

  it('should keep the epoch of a flush no batch wrote beside, for the batches after it', async () => {
    const { h, stamped, hold, release, untilFlushWaits } = await heldFlushes()
    hold()
    await h.index.batchPut('t', 1, metas(0, 10))
    await untilFlushWaits()
    await release()
    await h.index.batchPut('t', 1, metas(10, 1))
    const [before, after] = stamped.slice(-2)
    // No gap: every epoch up to the greatest must be on disk for a view to pass the check.
    expect(after).toBe(before! + 1)
  })

  it('should begin no flush before a batch written outside a flush, so that every memtable holds a solid epoch', async () => {
    const { h, stamped, hold, release, untilFlushWaits, holdWrites, releaseWrites, heldFlushCount } = await heldFlushes({
      freshness: { flushEveryRecords: 30, flushIntervalMs: 1_000 },
      maintenanceIntervalMs: 100,
    })
    hold()
    await h.index.batchPut('t', 1, metas(0, 10))
    await untilFlushWaits()
    await h.index.batchPut('t', 1, metas(10, 5)) // 15 records beside the flush
    holdWrites()
    const late = h.index.batchPut('t', 1, metas(15, 5)) // stamped beside the flush, written after it
    await waitFor(() => stamped.length === 3)
    await release()
    hold()
    releaseWrites()
    await late
    // 30 records since the flush began, but all of them boundary batches: no flush begins yet.
    expect(heldFlushCount()).toBe(0)
    const [first] = stamped
    // The time trigger writes a batch of the sequence and a solid epoch first, then begins the flush.
    await h.clock.advance(1_500)
    await untilFlushWaits()
    expect(stamped).toEqual([first, first! + 1, first! + 1, first! + 2])
  })

  it('should hold a write, saying so, while the memtable the running flush left behind is at the triggers again', async () => {
    const { h, hold, release, untilFlushWaits } = await heldFlushes()
    hold()
    await h.index.batchPut('t', 1, metas(0, 10))
    await untilFlushWaits()
    await h.index.batchPut('t', 1, metas(10, 10)) // 30 records beside the flush: the triggers again
    const waiting = h.index.batchPut('t', 1, metas(20, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e)
    await h.clock.advance(1_000)
    const error = await waiting
    expect(error).toBeInstanceOf(Timeout)
    expect(String((error as Error).message)).toMatch(/flush of shard .* primary to end/)
    expect(await h.index.getByMsgId('t', 1, 'm20', { consistency: 'primary' })).toBeUndefined()
    await release()
    await h.index.batchPut('t', 1, metas(20, 1))
    expect(await h.index.getByMsgId('t', 1, 'm20', { consistency: 'primary' })).toEqual(meta(20))
  })

  it('should hold every write while a flush runs after a batch larger than twice the trigger', async () => {
    const { h, hold, release, untilFlushWaits } = await heldFlushes()
    hold()
    await h.index.batchPut('t', 1, metas(0, 25)) // 75 records: the flush begins
    await untilFlushWaits()
    const error = await Promise.all([h.index.batchPut('t', 1, metas(25, 1), { timeoutMs: 1_000 }).catch((e: unknown) => e), h.clock.advance(1_000)])
    expect(error[0]).toBeInstanceOf(Timeout)
    await release()
    await h.index.batchPut('t', 1, metas(25, 1))
  })

  it('should flush between the chunks of a long retention, as between writes', async () => {
    const { h, log, hold, release, untilFlushWaits } = await heldFlushes({ freshness: { flushEveryRecords: 3_000 } })
    await h.index.batchPut('t', 1, metas(0, 3_000))
    await waitFor(() => h.faults.calls.flushes === 1)
    log.length = 0
    hold()
    // 3 chunks of up to 1,024 metas (3,072 tombstones each): each reaches the trigger, and the next chunk would
    // overflow the memtable beside the flush it began.
    const retention = h.index.deleteBefore('t', 1, 1_000_000)
    await untilFlushWaits()
    // The retention waits for the flush between its first and second chunk.
    await waitFor(() => shardStats(h, 't', 1).flushes.writesWaiting === 1)
    expect(shardStats(h, 't', 1).flushes).toEqual({ done: 1, running: true, writesWaiting: 1 })
    await release()
    expect((await retention).deleted).toBe(3_000)
    expect(log.slice(0, 5)).toEqual(['write', 'flush', 'flushed', 'write', 'flush'])
  })
})

describe('reader mode', () => {
  it('should serve another index`s writes after their tokens, refuse writes, and never open a primary', async () => {
    const writer = await harness({ readers: { min: 0 } })
    const faults = new FaultInjector()
    const index = await openIndex({ root: writer.root, mode: 'reader', engine: faults, clock: new ManualClock(), inspect: recordInspection })
    try {
      expect(index.mode).toBe('reader')
      // Nothing written yet: answered as empty, without opening anything.
      expect(await index.getByMsgId('t', 1, 'm1')).toBeUndefined()
      expect(faults.opened.reader).toBe(0)
      const first = await writer.index.batchPut('t', 1, [meta(1)])
      expect(await index.getByMsgId('t', 1, 'm1', { after: first.token })).toEqual(meta(1))
      const second = await writer.index.batchPut('t', 1, [meta(2)])
      expect(await index.getByMsgId('t', 1, 'm2', { after: second.token })).toEqual(meta(2))
      expect(await index.getRangeByTime('t', 1, 0, 5_000, { after: second.token })).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } })
      await expect(index.batchPut('t', 1, [meta(3)])).rejects.toBeInstanceOf(InvalidInput)
      await expect(index.deleteBefore('t', 1, 5)).rejects.toBeInstanceOf(InvalidInput)
      await expect(index.getByMsgId('t', 1, 'm1', { consistency: 'primary' })).rejects.toBeInstanceOf(InvalidInput)
      await expect(index.getByMsgId('t', 1, 'm1', { consistency: 'fresh' })).rejects.toBeInstanceOf(InvalidInput)
      expect(faults.opened.primary).toBe(0)
      expect(index.stats().shards[0]).toMatchObject({ primary: 'none', state: 'running' })
    } finally {
      await index.close()
    }
    expect(faults.liveHandles).toBe(0)
  })

  it('should fail a read whose token is ahead of the data instead of refreshing forever', async () => {
    const writer = await harness({ readers: { min: 0 } })
    const { token } = await writer.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    const index = await openIndex({ root: writer.root, mode: 'reader', engine: faults, clock: new ManualClock(), inspect: recordInspection })
    try {
      const [shard, seq] = [token.slice(0, token.lastIndexOf('@')), parseToken(token).sequence]
      const err = await index.getByMsgId('t', 1, 'm1', { after: `${shard}@${seq + 5}` }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).message).toContain('the token is not from this root, or its write was lost')
      // A few refreshes (one short view is no proof: an open racing a flush may take an older view), not a loop.
      expect(faults.opened.reader).toBeLessThanOrEqual(4)
      expect(await index.getByMsgId('t', 1, 'm1', { after: token })).toEqual(meta(1))
      await expect(openIndex({ root: writer.root, mode: 'reader', readers: { min: 0 } })).rejects.toBeInstanceOf(InvalidInput)
    } finally {
      await index.close()
    }
  })

  it('should refuse to open a root that does not exist, creating nothing', async () => {
    const dir = await tempDir()
    try {
      const err = await openIndex({ root: `${dir}/nothing`, mode: 'reader' }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(StorageFailure)
      expect((err as StorageFailure).reason).toBe('missing')
    } finally {
      await removeDir(dir)
    }
  })

  it('should give a second writer of the same root the lock error, naming the directory', async () => {
    const h = await harness()
    await h.index.batchPut('t', 1, [meta(1)])
    const second = await openIndex({
      root: h.root,
      supervision: { primary: { intensity: { maxRestarts: 1, withinMs: 600_000 }, backoff: { minMs: 60_000, maxMs: 60_000 } } },
    })
    try {
      // Every write fails at once with the lock error, not one per backoff cycle (the backoff here is a minute).
      const errs = await Promise.all([2, 3, 4].map((n) => second.batchPut('t', 1, [meta(n)]).catch((e: unknown) => e)))
      for (const err of errs) {
        expect(err).toBeInstanceOf(StorageFailure)
        expect((err as StorageFailure).reason).toBe('locked')
        expect((err as StorageFailure).message).toContain(h.index.locate('t', 1).dir)
      }
    } finally {
      await second.close()
    }
    expect(await h.index.getByMsgId('t', 1, 'm2')).toBeUndefined()
  })
})
