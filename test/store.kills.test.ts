/**
 * The edges of src/store.ts that the model-based test does not pin down, found by mutation testing (TESTING.md,
 * "Mutation testing"), on a real RocksDB in a temp dir: the place bound that spares lookups, the byte count of a batch,
 * an empty batch, the last place of a partition, retention chunks, the bounds of range queries, what a write reads
 * before it writes (nothing the msgIds and the place bound rule out; a MultiGet key that fails fails the write), and
 * stored msgIds that are not UTF-8 (a damaged entry fails its read).
 */
import { describe, expect, it } from 'vitest'
import { getManySettled, overriding, type StorageHandle } from '../src/engine.js'
import { StorageFailure } from '../src/errors.js'
import { idKeyOf, segmentOffsetKey } from '../src/keys.js'
import type { MessageMeta } from '../src/meta.js'
import * as store from '../src/store.js'
import { handlesPerTest } from './support/handles.js'

const fresh = handlesPerTest()

const meta = (msgId: string, timestamp: number, segmentId: number, offset: number, msgLen = 10): MessageMeta => ({ msgId, timestamp, segmentId, offset, msgLen })
const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

describe('placeAfter', () => {
  it('should order places by segment, then offset, strictly', () => {
    expect(store.placeAfter({ segmentId: 2, offset: 0 }, { segmentId: 1, offset: 9 })).toBe(true)
    expect(store.placeAfter({ segmentId: 1, offset: 9 }, { segmentId: 2, offset: 0 })).toBe(false)
    expect(store.placeAfter({ segmentId: 1, offset: 5 }, { segmentId: 1, offset: 4 })).toBe(true)
    expect(store.placeAfter({ segmentId: 1, offset: 4 }, { segmentId: 1, offset: 4 })).toBe(false)
    expect(store.placeAfter({ segmentId: 1, offset: 3 }, { segmentId: 1, offset: 4 })).toBe(false)
  })
})

describe('putMetas', () => {
  it('should count the bytes of every key and value it puts, and write nothing (not even a sequence) for no metas', async () => {
    const h = await fresh()
    expect(await store.putMetas(h, 1, [], 1)).toEqual({ bytes: 0 })
    expect(await store.readSequence(h)).toBe(0)
    // by id 5 + 2 and 24; by time 25 and 4 + 2; by place 17 and 12 + 2.
    expect(await store.putMetas(h, 1, [meta('é', 1, 1, 1)], 1)).toEqual({ bytes: 7 + 24 + 25 + 6 + 17 + 14 })
    expect(await store.putMetas(h, 1, [meta('a', 1, 1, 2), meta('bc', 1, 1, 3)], 2)).toEqual({ bytes: 6 + 24 + 25 + 5 + 17 + 13 + (7 + 24 + 25 + 6 + 17 + 14) })
    expect(await store.readSequence(h)).toBe(2)
  })

  it('should displace by place only the places the bound does not rule out', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [meta('old', 1, 5, 5)], 1)
    // The caller says the partition holds no place (null): the old meta's place is not looked up, so it stays.
    await store.putMetas(h, 1, [meta('new1', 2, 5, 5)], 2, { placeBound: null })
    expect(await store.getByMsgId(h, 1, 'old')).toEqual(meta('old', 1, 5, 5))
    // A bound below the place: not looked up either.
    await store.putMetas(h, 1, [meta('new2', 3, 5, 5)], 3, { placeBound: { segmentId: 5, offset: 4 } })
    expect(await store.getByMsgId(h, 1, 'new1')).toEqual(meta('new1', 2, 5, 5))
    // A bound at the place: looked up, and whatever holds the place now (new2) is displaced from all three views.
    await store.putMetas(h, 1, [meta('new3', 4, 5, 5)], 4, { placeBound: { segmentId: 5, offset: 5 } })
    expect(await store.getByMsgId(h, 1, 'new2')).toBeUndefined()
    expect(await store.getMsgIdBySegmentOffset(h, 1, { segmentId: 5, offset: 5 })).toBe('new3')
    expect((await collect(store.allMetas(h, 1, 'byTime'))).map((m) => m.msgId)).toEqual(['old', 'new1', 'new3'])
    // No bound: every place is looked up.
    await store.putMetas(h, 1, [meta('new4', 5, 5, 5)], 5)
    expect(await store.getByMsgId(h, 1, 'new3')).toBeUndefined()
    expect((await collect(store.allMetasById(h, 1))).map((m) => m.msgId)).toEqual(['new1', 'new4', 'old'])
  })

  it('should displace a meta by msgId, from all three views, and keep a batch that rewrites the same place', async () => {
    const h = await fresh()
    await store.putMetas(h, 2, [meta('m', 10, 1, 1), meta('n', 11, 1, 2)], 1)
    await store.putMetas(h, 2, [meta('m', 20, 3, 3)], 2, { placeBound: null })
    expect(await collect(store.allMetas(h, 2, 'bySegmentOffset'))).toEqual([meta('n', 11, 1, 2), meta('m', 20, 3, 3)])
    expect(await collect(store.allMetas(h, 2, 'byTime'))).toEqual([meta('n', 11, 1, 2), meta('m', 20, 3, 3)])
    await store.putMetas(h, 2, [meta('n', 11, 1, 2, 99)], 3)
    expect(await collect(store.allMetasById(h, 2))).toEqual([meta('m', 20, 3, 3), meta('n', 11, 1, 2, 99)])
  })
})

describe('range queries', () => {
  it('should find the last place of a partition, not of its neighbours', async () => {
    const h = await fresh()
    expect(await store.lastPlace(h, 3)).toBeUndefined()
    await store.putMetas(h, 2, [meta('a', 1, 9, 9)], 1)
    await store.putMetas(h, 4, [meta('b', 1, 9, 9)], 2)
    expect(await store.lastPlace(h, 3)).toBeUndefined()
    await store.putMetas(h, 3, [meta('c', 1, 1, 7), meta('d', 1, 2, 1), meta('e', 1, 1, 9)], 3)
    expect(await store.lastPlace(h, 3)).toEqual({ segmentId: 2, offset: 1 })
  })

  it('should answer a time range by its first and last meta, inclusive at both ends, and nothing for an empty or inverted range', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [meta('a', 10, 1, 1), meta('b', 20, 1, 2), meta('c', 20, 0, 9), meta('d', 30, 1, 4)], 1)
    expect(await store.getRangeByTime(h, 1, 10, 20)).toEqual({ first: { segmentId: 1, offset: 1 }, last: { segmentId: 1, offset: 2 } })
    expect(await store.getRangeByTime(h, 1, 20, 20)).toEqual({ first: { segmentId: 0, offset: 9 }, last: { segmentId: 1, offset: 2 } })
    expect(await store.getRangeByTime(h, 1, 30, 30)).toEqual({ first: { segmentId: 1, offset: 4 }, last: { segmentId: 1, offset: 4 } })
    expect(await store.getRangeByTime(h, 1, 11, 19)).toBeUndefined()
    expect(await store.getRangeByTime(h, 1, 20, 10)).toBeUndefined()
    expect(await store.getRangeByTime(h, 2, 0, 100)).toBeUndefined()
  })

  it('should scan a time range in order, up to a limit, and nothing for limit 0 or an inverted range', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [meta('a', 10, 1, 1), meta('b', 20, 1, 2), meta('c', 20, 0, 9), meta('d', 30, 1, 4)], 1)
    const ids = async (start: number, end: number, limit?: number) => (await collect(store.scanByTime(h, 1, start, end, limit))).flat().map((m) => m.msgId)
    expect(await ids(10, 30)).toEqual(['a', 'c', 'b', 'd'])
    expect(await ids(20, 20)).toEqual(['c', 'b'])
    expect(await ids(10, 30, 2)).toEqual(['a', 'c'])
    expect(await ids(10, 30, 0)).toEqual([])
    expect(await ids(30, 10)).toEqual([])
    expect(await ids(31, 40)).toEqual([])
  })
})

describe('deleteBefore', () => {
  it('should remove in chunks of store.retentionChunk metas, each its own stamped batch, reporting each chunk', async () => {
    expect(store.retentionChunk).toBe(1024)
    const h = await fresh()
    const n = store.retentionChunk + 3
    const metas = Array.from({ length: n }, (_, i) => meta(`m${i}`, i, 1, i))
    await store.putMetas(h, 1, metas, 1)
    await store.putMetas(h, 2, [meta('other', 0, 1, 1)], 2)
    let stamp = 2
    const chunks: number[] = []
    const stamps: number[] = []
    const result = await store.deleteBefore(h, 1, n - 1, () => (stamps.push(++stamp), stamp), (d) => void chunks.push(d))
    expect(result).toEqual({ deleted: n - 1 })
    expect(chunks).toEqual([store.retentionChunk, 2])
    expect(stamps).toEqual([3, 4])
    expect(await store.readSequence(h)).toBe(4)
    expect(await collect(store.allMetasById(h, 1))).toEqual([meta(`m${n - 1}`, n - 1, 1, n - 1)])
    expect(await collect(store.allMetas(h, 1, 'bySegmentOffset'))).toEqual([meta(`m${n - 1}`, n - 1, 1, n - 1)])
    expect(await store.getByMsgId(h, 2, 'other')).toEqual(meta('other', 0, 1, 1))
    // Nothing older left: no batch, no stamp drawn.
    expect(await store.deleteBefore(h, 1, n - 1, () => ++stamp)).toEqual({ deleted: 0 })
    expect(stamp).toBe(4)
  })
})

describe('what putMetas reads before it writes', () => {
  /** `h`, counting the keys of each MultiGet; `fail` makes the next MultiGet fail its last key. */
  const counting = (h: StorageHandle) => {
    const multiGets: number[] = []
    const next = { fail: undefined as StorageFailure | undefined }
    const counted = overriding(h, {
      getMany: (keys) => {
        multiGets.push(keys.length)
        return h.getMany(keys)
      },
      getManySettled: async (keys) => {
        multiGets.push(keys.length)
        const settled = await getManySettled(h, keys)
        const failure = next.fail
        if (failure === undefined) return settled
        next.fail = undefined
        return { values: settled.values, errors: keys.map((_, i) => (i === keys.length - 1 ? failure : undefined)) }
      },
    })
    return { counted, multiGets, next }
  }

  it('should read nothing for new msgIds at new places, when the msgIds and the place bound rule them out', async () => {
    const h = await fresh()
    const { counted, multiGets } = counting(h)
    const never = { mayHold: () => false, add: () => {} }
    await store.putMetas(counted, 1, [meta('a', 1, 1, 1), meta('b', 2, 1, 2)], 1, { placeBound: null, msgIds: never })
    expect(multiGets).toEqual([])
    // A msgId that may be held is looked up (and only it: the places are above the bound).
    const onlyA = { mayHold: (key: Uint8Array) => Buffer.from(key).subarray(5).toString() === 'a', add: () => {} }
    await store.putMetas(counted, 1, [meta('a', 3, 1, 3), meta('c', 4, 1, 4)], 2, { placeBound: { segmentId: 1, offset: 2 }, msgIds: onlyA })
    expect(multiGets).toEqual([1])
    expect(await collect(store.allMetasById(h, 1))).toEqual([meta('a', 3, 1, 3), meta('b', 2, 1, 2), meta('c', 4, 1, 4)])
  })

  it('should fail with the error of a key its MultiGet could not read, writing nothing', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [meta('a', 1, 1, 1)], 1)
    const { counted, next } = counting(h)
    const failure = new StorageFailure({ reason: 'corruption', path: 'test', message: 'a damaged block' })
    next.fail = failure
    await expect(store.putMetas(counted, 1, [meta('a', 2, 1, 2)], 2)).rejects.toBe(failure)
    expect(await store.readSequence(h)).toBe(1)
    expect(await collect(store.allMetasById(h, 1))).toEqual([meta('a', 1, 1, 1)])
  })
})

describe('entries that do not decode (damaged)', () => {
  it('should fail the read with StorageFailure corruption rather than answer a msgId with replacement characters', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [meta('a', 1, 1, 1)], 1)
    const place = { segmentId: 1, offset: 1 }
    const [value] = await h.getMany([segmentOffsetKey(1, place)])
    const damaged = Buffer.concat([Buffer.from(value!).subarray(0, 12), Buffer.of(0xff)])
    await h.write([{ type: 'put', key: segmentOffsetKey(1, place), value: damaged }])
    const failure = await store.getMsgIdBySegmentOffset(h, 1, place).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(StorageFailure)
    expect(failure).toMatchObject({ reason: 'corruption', path: h.path })
    expect((failure as StorageFailure).message).toBe(`an entry stored in ${h.path} does not decode (The encoded data was not valid for encoding utf-8): it is damaged`)
    expect((failure as StorageFailure).cause).toBeInstanceOf(TypeError)
    // The same place written again displaces the damaged entry: its msgId cannot be read, so the write fails first.
    await expect(store.putMetas(h, 1, [meta('b', 2, 1, 1)], 2)).rejects.toMatchObject({ reason: 'corruption' })
    await h.write([{ type: 'put', key: Buffer.concat([idKeyOf(1, 'a', 1).subarray(0, 5), Buffer.of(0xff)]), value: Buffer.from(value!) }])
    await expect(collect(store.allMetasById(h, 1))).rejects.toMatchObject({ reason: 'corruption' })
  })

  it('should fail a by-id entry too short for a meta, and a by-time entry, with StorageFailure corruption', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [meta('a', 5, 1, 1)], 1)
    await h.write([{ type: 'put', key: idKeyOf(1, 'a', 1), value: Buffer.alloc(3) }])
    await expect(store.getByMsgId(h, 1, 'a')).rejects.toMatchObject({ reason: 'corruption' })
    const [timeEntry] = await collect(h.iterate({ gte: Buffer.of(2), lt: Buffer.of(3) }))
    await h.write([{ type: 'put', key: timeEntry!.key, value: Buffer.alloc(2) }])
    await expect(collect(store.scanByTime(h, 1, 0, 10))).rejects.toMatchObject({ reason: 'corruption' })
    await expect(store.deleteBefore(h, 1, 10, () => 2)).rejects.toMatchObject({ reason: 'corruption' })
  })

  it('should yield the metas of a chunk before a damaged by-time entry, then fail the scan with corruption', async () => {
    const h = await fresh()
    await store.putMetas(h, 1, [1, 2, 3, 4, 5].map((n) => meta(`m${n}`, n, 0, n)), 1)
    const entries = await collect(h.iterate({ gte: Buffer.of(2), lt: Buffer.of(3) }))
    expect(entries).toHaveLength(5)
    await h.write([{ type: 'put', key: entries[2]!.key, value: Buffer.alloc(2) }])
    const seen: string[] = []
    const outcome = await (async () => {
      for await (const chunk of store.scanByTime(h, 1, 0, 10)) seen.push(...chunk.map((m) => m.msgId))
    })().then(
      () => 'ended',
      (e: unknown) => e,
    )
    // The five entries are one read of the engine: the two before the damaged one are still handed over.
    expect(seen).toEqual(['m1', 'm2'])
    expect(outcome).toMatchObject({ reason: 'corruption' })
    // Damaged first: no chunk at all (never an empty one), then the failure.
    await h.write([{ type: 'put', key: entries[0]!.key, value: Buffer.alloc(2) }])
    const chunks: number[] = []
    const first = await (async () => {
      for await (const chunk of store.scanByTime(h, 1, 0, 10)) chunks.push(chunk.length)
    })().then(
      () => 'ended',
      (e: unknown) => e,
    )
    expect(chunks).toEqual([])
    expect(first).toMatchObject({ reason: 'corruption' })
  })
})
