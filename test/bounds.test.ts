/**
 * The edges of the public surface (issue 8, items 6-9): reads never create anything, `recover` takes the shard id
 * its errors give, closing the index ends the scans their consumers left suspended, and misuse of the API is refused
 * with InvalidInput instead of being accepted silently. Real RocksDB in temp dirs, time from a ManualClock.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { InvalidInput, openIndex, type Index, type MessageMeta } from '../src/index.js'
import { openHarness, type Harness } from './support/harness.js'
import { listTree, removeDir, tempDir } from './support/tmp.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
/** The error a call throws or rejects with (undefined if it succeeds). */
const failure = async (call: () => unknown): Promise<unknown> => {
  try {
    await call()
    return undefined
  } catch (e) {
    return e
  }
}

let h: Harness | undefined
afterEach(async () => {
  vi.restoreAllMocks()
  await h?.dispose()
  h = undefined
})

describe('reads never create anything (item 6)', () => {
  /** Every read of (topic, partition), in each of its forms and consistencies, must answer empty. */
  const readAll = async (index: Index, topic: string, partition: number, shardId: string) => {
    for (const options of [undefined, { consistency: 'primary' as const }, { consistency: 'bounded' as const, maxStalenessMs: 0 }, { after: `${shardId}@0` }]) {
      expect(await index.getByMsgId(topic, partition, 'x', options)).toBeUndefined()
      expect(await index.getRangeByTime(topic, partition, 0, Number.MAX_SAFE_INTEGER, options)).toBeUndefined()
      expect(await index.getMsgIdBySegmentOffset(topic, partition, { segmentId: 0, offset: 0 }, options)).toBeUndefined()
      expect(await collect(index.scanByTime(topic, partition, 0, Number.MAX_SAFE_INTEGER, options))).toEqual([])
    }
  }

  it('should answer reads of a topic never written as empty in writer mode, creating no directory and no shard', async () => {
    h = await openHarness()
    const before = await listTree(h.root)
    await readAll(h.index, 'ordres', 1, h.shardId('ordres', 1))
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards).toEqual([])
    expect(h.faults.opened).toEqual({ primary: 0, reader: 0 })
  })

  it('should answer reads of a shard never written as empty beside written shards of the same topic', async () => {
    h = await openHarness()
    await h.index.batchPut('orders', 1, [meta(1)])
    const other = [...Array(64).keys()].find((p) => h!.shardId('orders', p) !== h!.shardId('orders', 1))!
    const before = await listTree(h.root)
    const shards = h.index.stats().shards.map((s) => s.id)
    await readAll(h.index, 'orders', other, h.shardId('orders', other))
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards.map((s) => s.id)).toEqual(shards)
    // The written shard still answers.
    expect(await h.index.getByMsgId('orders', 1, 'm1')).toEqual(meta(1))
  })

  it('should refuse a token of a write this root never had, naming it, and create nothing', async () => {
    h = await openHarness()
    const before = await listTree(h.root)
    const token = `${h.shardId('ordres', 1)}@5`
    const calls: (() => Promise<unknown>)[] = [
      () => h!.index.getByMsgId('ordres', 1, 'x', { after: token }),
      () => h!.index.getRangeByTime('ordres', 1, 0, 10, { after: token }),
      () => h!.index.getMsgIdBySegmentOffset('ordres', 1, { segmentId: 0, offset: 0 }, { after: token }),
      () => collect(h!.index.scanByTime('ordres', 1, 0, 10, { after: token })),
    ]
    for (const call of calls) {
      const err = await failure(call)
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).field).toBe('after')
      expect((err as InvalidInput).message).toContain(token)
    }
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards).toEqual([])
  })

  it('should still read a shard that an earlier index wrote, opening it', async () => {
    const parent = await tempDir()
    try {
      const root = join(parent, 'root')
      const first = await openIndex({ root, shards: 4, readers: { min: 0 } })
      await first.batchPut('orders', 1, [meta(1)])
      await first.close()
      const second = await openIndex({ root, readers: { min: 0 } })
      try {
        expect(await second.getByMsgId('orders', 1, 'm1')).toEqual(meta(1))
        expect(await collect(second.scanByTime('orders', 1, 0, 10_000))).toEqual([meta(1)])
        expect(second.stats().shards.map((s) => s.topic)).toEqual(['orders'])
      } finally {
        await second.close()
      }
    } finally {
      await removeDir(parent)
    }
  })
})

