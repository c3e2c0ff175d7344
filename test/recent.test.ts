/**
 * Fresh point reads off the primary: a writer-mode shard keeps the writes its readers' views do not hold yet in
 * memory (src/recent.ts), and a fresh point read that no view satisfies is answered by a stale reader merged with
 * that memory instead of by the primary. Real RocksDB; the readers' refreshes are held back with injected open
 * failures (the old view keeps serving), so the views stay stale for as long as a test needs.
 */
import { describe, expect, it } from 'vitest'
import type { MessageMeta } from '../src/index.js'
import { spanBound } from '../src/recent.js'
import { harnessPerTest, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'

const meta = (n: number, over: Partial<MessageMeta> = {}): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10, ...over })
const harness = harnessPerTest()

/** A harness whose one reader of partition 1's shard serves a view holding m1..m4, and will not refresh. */
const staleReader = async (options: Parameters<typeof harness>[0] = {}): Promise<Harness> => {
  const h = await harness({ readers: { min: 1, max: 1 }, ...options })
  const { token } = await h.index.batchPut('t', 1, [1, 2, 3, 4].map((n) => meta(n)))
  await untilReaderCovers(h, 't', 1, token, 'm1')
  // Every reader open from now on fails: a refresh keeps the old view serving.
  h.faults.failNext('open', 1_000_000, { role: 'reader' })
  return h
}

const served = (h: Harness) => shardStats(h, 't', 1).served

describe('fresh point reads at a stale reader, merged with the recent writes', () => {
  it('should answer every fresh point read as the primary would, without the primary', async () => {
    const h = await staleReader()
    const viewSeq = shardStats(h, 't', 1).views[0]!.sequence
    // New metas; m2 moved to another place (its old place freed); m9 takes m3's place (m3 displaced).
    await h.index.batchPut('t', 1, [meta(5), meta(6)])
    await h.index.batchPut('t', 1, [meta(2, { segmentId: 1, offset: 20 }), meta(9, { offset: 3 })])
    expect(shardStats(h, 't', 1).views[0]!.sequence).toBe(viewSeq)
    const primaryReads = h.faults.calls.primaryReads
    const before = served(h)
    const byId = await Promise.all(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm9', 'm7'].map((id) => h.index.getByMsgId('t', 1, id)))
    expect(byId).toEqual([meta(1), meta(2, { segmentId: 1, offset: 20 }), undefined, meta(4), meta(5), meta(6), meta(9, { offset: 3 }), undefined])
    const byPlace = await Promise.all(
      [[0, 1], [0, 2], [0, 3], [1, 20], [0, 5], [0, 7]].map(([segmentId, offset]) => h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: segmentId!, offset: offset! })),
    )
    expect(byPlace).toEqual(['m1', undefined, 'm9', 'm2', 'm5', undefined])
    expect(h.faults.calls.primaryReads).toBe(primaryReads)
    const after = served(h)
    expect(after.primary).toBe(before.primary)
    // m2, m3, m5, m6, m9 by id and (0,2), (0,3), (1,20), (0,5) by place were written after the view: from memory.
    expect(after.memory - before.memory).toBe(9)
    expect(after.readers - before.readers).toBe(5)
  })

  it('should answer the metas retention removed after the view as absent', async () => {
    const h = await staleReader()
    const { deleted } = await h.index.deleteBefore('t', 1, 1003)
    expect(deleted).toBe(2)
    const primaryReads = h.faults.calls.primaryReads
    expect(await Promise.all(['m1', 'm2', 'm3'].map((id) => h.index.getByMsgId('t', 1, id)))).toEqual([undefined, undefined, meta(3)])
    expect(await h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 1 })).toBeUndefined()
    expect(h.faults.calls.primaryReads).toBe(primaryReads)
  })

  it('should leave a read no view satisfies to the primary once the memory dropped what the view lacks', async () => {
    // A memory of 1 byte holds no batch: each write raises its floor past the reader's view.
    const h = await staleReader({ freshness: { recentWritesBytes: 1 } })
    await h.index.batchPut('t', 1, [meta(5)])
    const before = served(h)
    expect(await h.index.getByMsgId('t', 1, 'm5')).toEqual(meta(5))
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    const after = served(h)
    expect(after.primary - before.primary).toBe(2)
    expect(after.memory).toBe(before.memory)
  })

  it('should keep no memory with recentWritesBytes 0: fresh reads no view satisfies go to the primary', async () => {
    const h = await staleReader({ freshness: { recentWritesBytes: 0 } })
    await h.index.batchPut('t', 1, [meta(5)])
    const before = served(h)
    expect(await h.index.getByMsgId('t', 1, 'm5')).toEqual(meta(5))
    expect(served(h).primary - before.primary).toBe(1)
  })

  it('should not merge views older than a new primary: another writer may have written while none held the lock', async () => {
    const h = await staleReader()
    await h.index.batchPut('t', 1, [meta(5)])
    h.index.faults.crash('t', 1, 'primary')
    await waitFor(() => shardStats(h, 't', 1).restarts.primary === 1)
    await h.clock.advance(10_000) // past the primary's backoff
    await waitFor(() => shardStats(h, 't', 1).primary === 'ready' && shardStats(h, 't', 1).restarts.primary === 1)
    const before = served(h)
    // The reader's view predates the new primary's floor: the primary answers, not the memory.
    expect(await h.index.getByMsgId('t', 1, 'm5')).toEqual(meta(5))
    const after = served(h)
    expect(after.primary - before.primary).toBe(1)
    expect(after.memory).toBe(before.memory)
  })

  it('should answer a bounded read its view satisfies from the view alone, never fresher by the memory', async () => {
    const h = await staleReader()
    await h.index.batchPut('t', 1, [meta(5)])
    expect(await h.index.getByMsgId('t', 1, 'm5', { consistency: 'bounded', maxStalenessMs: 60_000 })).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm5')).toEqual(meta(5))
  })
})

describe('range reads and scans at a stale reader', () => {
  const range = (h: Harness, from: number, to: number) => h.index.getRangeByTime('t', 1, from, to)
  const scan = async (h: Harness, from: number, to: number): Promise<MessageMeta[]> => {
    const metas: MessageMeta[] = []
    for await (const m of h.index.scanByTime('t', 1, from, to)) metas.push(m)
    return metas
  }

  it('should read a time window no write after the view touched from the view alone, and any other from the primary', async () => {
    const h = await staleReader()
    // After the view: m5, m6 appended (1005, 1006); m2 moved to another place (its old by-time key at 1002 deleted,
    // a new one put); m1 removed by retention (its by-time key at 1001 deleted).
    await h.index.batchPut('t', 1, [meta(5), meta(6)])
    await h.index.batchPut('t', 1, [meta(2, { segmentId: 1, offset: 20 })])
    await h.index.deleteBefore('t', 1, 1002)
    let before = served(h)
    // Windows no write after the view touched: the stale reader answers, as the primary would.
    expect(await range(h, 1003, 1004)).toEqual({ first: { segmentId: 0, offset: 3 }, last: { segmentId: 0, offset: 4 } })
    expect(await scan(h, 1003, 1004)).toEqual([meta(3), meta(4)])
    expect(await range(h, 1007, 5000)).toBeUndefined()
    expect(await range(h, 0, 1000)).toBeUndefined()
    expect(served(h)).toEqual({ ...before, readers: before.readers + 4 })
    // Windows a later write touched (appended, moved, removed): the primary answers.
    before = served(h)
    expect(await range(h, 1003, 1006)).toEqual({ first: { segmentId: 0, offset: 3 }, last: { segmentId: 0, offset: 6 } })
    expect(await range(h, 1002, 1002)).toEqual({ first: { segmentId: 1, offset: 20 }, last: { segmentId: 1, offset: 20 } })
    expect(await scan(h, 0, 1003)).toEqual([meta(2, { segmentId: 1, offset: 20 }), meta(3)])
    expect(served(h)).toEqual({ ...before, primary: before.primary + 3 })
  })

  it('should read a window from a view whose writes the byte bound dropped, by their spans of time, as any other', async () => {
    // A memory of 1 byte holds no batch: each write raises the keys' floor past the reader's view, but the batch's
    // span of timestamps stays (src/recent.ts): the view still serves a window no later write touched.
    const h = await staleReader({ freshness: { recentWritesBytes: 1 } })
    await h.index.batchPut('t', 1, [meta(5)])
    let before = served(h)
    expect(await range(h, 1001, 1002)).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } })
    expect(await scan(h, 1003, 1004)).toEqual([meta(3), meta(4)])
    expect(served(h)).toEqual({ ...before, readers: before.readers + 2 })
    // A window the dropped batch touched: the primary.
    before = served(h)
    expect(await range(h, 1004, 1005)).toEqual({ first: { segmentId: 0, offset: 4 }, last: { segmentId: 0, offset: 5 } })
    expect(served(h)).toEqual({ ...before, primary: before.primary + 1 })
  })

  it('should read a window from the primary once the span of a write after the view is no longer kept', async () => {
    // As above, but past the bound of the spans kept (spanBound): the span of m5's batch goes, and with it the means
    // to tell whether a write after the view touched 1004-1005. The view is then below the spans' floor: not asked.
    const h = await staleReader({ freshness: { recentWritesBytes: 1 } })
    await h.index.batchPut('t', 1, [meta(5)])
    for (let n = 0; n < spanBound; n += 256) {
      await Promise.all(Array.from({ length: 256 }, (_, k) => h.index.batchPut('t', 1, [meta(1_000_000 + n + k)])))
    }
    const before = served(h)
    expect(await range(h, 1004, 1005)).toEqual({ first: { segmentId: 0, offset: 4 }, last: { segmentId: 0, offset: 5 } })
    expect(await scan(h, 1004, 1005)).toEqual([meta(4), meta(5)])
    expect(served(h)).toEqual({ ...before, primary: before.primary + 2 })
  }, 60_000)

  it('should read a window only from the primary for a primary-only read', async () => {
    const h = await staleReader()
    await h.index.batchPut('t', 1, [meta(5)])
    const before = served(h)
    expect(await h.index.getRangeByTime('t', 1, 1001, 1002, { consistency: 'primary' })).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } })
    expect(served(h).primary - before.primary).toBe(1)
  })
})

describe('refreshes with a memory of recent writes', () => {
  /** A harness whose one reader of partition 1's shard serves a view holding m1, nothing failing. */
  const current = async (options: Parameters<typeof harness>[0] = {}): Promise<Harness> => {
    const h = await harness({ readers: { min: 1, max: 1 }, ...options })
    const { token } = await h.index.batchPut('t', 1, [meta(1)])
    await untilReaderCovers(h, 't', 1, token, 'm1')
    return h
  }

  it('should answer fresh point reads at a stale reader without asking it to refresh, and refresh it for a range read', async () => {
    const h = await current()
    const opens = h.faults.opened.reader
    await h.index.batchPut('t', 1, [meta(2)])
    const before = served(h)
    expect(await Promise.all(['m1', 'm2'].map((id) => h.index.getByMsgId('t', 1, id)))).toEqual([meta(1), meta(2)])
    expect(served(h)).toEqual({ primary: before.primary, readers: before.readers + 1, memory: before.memory + 1 })
    // Reopening the reader would only cost: the memory completes its view for point reads.
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
    expect(h.faults.opened.reader).toBe(opens)
    // A range read needs a view that holds the write itself (the primary answers it meanwhile): it asks the refresh.
    expect(await h.index.getRangeByTime('t', 1, 0, 10_000)).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } })
    await waitFor(() => h.faults.opened.reader === opens + 1 && shardStats(h, 't', 1).views[0]?.sequence === 2)
  })

  it('should ask a refresh for a fresh point read once the memory holds a quarter of its bound', async () => {
    // 4 KiB: a batch of one meta stays under a quarter of it, one of four metas goes past it (well below the bound,
    // so the reader's view is still merged).
    const h = await current({ freshness: { recentWritesBytes: 4096 } })
    const opens = h.faults.opened.reader
    await h.index.batchPut('t', 1, [meta(2)])
    await h.index.getByMsgId('t', 1, 'm2')
    expect(h.faults.opened.reader).toBe(opens)
    expect(shardStats(h, 't', 1).readers).toEqual({ serving: 1 })
    await h.index.batchPut('t', 1, [3, 4, 5, 6].map((n) => meta(n)))
    const before = served(h)
    expect(await h.index.getByMsgId('t', 1, 'm6')).toEqual(meta(6))
    expect(served(h).memory).toBe(before.memory + 1)
    await waitFor(() => h.faults.opened.reader === opens + 1 && shardStats(h, 't', 1).views[0]?.sequence === 3)
  })
})
