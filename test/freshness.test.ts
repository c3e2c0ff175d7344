/**
 * Freshness over read-only instances: write tokens, the consistency modes, refresh, reader mode, the lock error, and
 * the flush trigger. Real RocksDB; time from a ManualClock.
 */
import { describe, expect, it } from 'vitest'
import { FaultInjector, InvalidInput, ManualClock, StorageFailure, openIndex, parseToken, type MessageMeta } from '../src/index.js'
import { recordInspection } from './support/coverage.js'
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
    // 3 + 7 metas = 30 records: the size trigger.
    expect(h.faults.calls.flushes).toBe(1)
    await h.index.batchPut('t', 1, [meta(20)])
    await h.clock.advance(4_000)
    expect(h.faults.calls.flushes).toBe(1)
    await h.clock.advance(2_000)
    await waitFor(() => h.faults.calls.flushes === 2)
    await h.clock.advance(10_000)
    expect(h.faults.calls.flushes).toBe(2)
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
