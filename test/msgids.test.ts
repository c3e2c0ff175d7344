/**
 * The msgId filter that spares a write the lookups of msgIds its partition cannot hold (src/msgids.ts), on real
 * RocksDB in temp dirs: the filter never forgets a key; a partition's filter answers only once a scan of its by-id
 * view reached the end, a chunk per write, with the keys written between chunks included; a failed scan never
 * answers; retention makes it learn again; and through the index, writes of new msgIds look none up while a msgId
 * written again (also after a primary restart, and in a partition larger than a chunk) still replaces its meta.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { getManySettled, overriding } from '../src/engine.js'
import type { MessageMeta } from '../src/index.js'
import { decodeKey, idKeyOf } from '../src/keys.js'
import { FilterBudget, MsgIdFilter, PartitionMsgIds, scanChunk } from '../src/msgids.js'
import * as store from '../src/store.js'
import { overridingHandles } from './support/engines.js'
import { openHarness, shardStats, type Harness } from './support/harness.js'
import { handlesPerTest } from './support/handles.js'

const fresh = handlesPerTest()
let h: Harness | undefined
afterEach(async () => {
  await h?.dispose()
  h = undefined
})

const key = (partition: number, msgId: string): Buffer => idKeyOf(partition, msgId, Buffer.byteLength(msgId))
const meta = (msgId: string, n: number): MessageMeta => ({ msgId, timestamp: 1_000 + n, segmentId: 0, offset: n, msgLen: 10 })
const metas = (prefix: string, from: number, to: number, segmentId = 0): MessageMeta[] =>
  Array.from({ length: to - from }, (_, i) => ({ ...meta(`${prefix}${from + i}`, from + i), segmentId }))

describe('MsgIdFilter', () => {
  it('should hold every key it was given, through its stages, and few it was not', () => {
    const f = new MsgIdFilter()
    const n = 100_000
    for (let i = 0; i < n; i++) f.add(key(1, `held-${i}`))
    // Those the filter already said it may hold were not added again.
    expect(f.count).toBeLessThanOrEqual(n)
    expect(f.count).toBeGreaterThan(n * 0.97)
    for (let i = 0; i < n; i++) if (!f.mayHold(key(1, `held-${i}`))) expect.fail(`forgot held-${i}`)
    let wrong = 0
    for (let i = 0; i < n; i++) if (f.mayHold(key(1, `other-${i}`))) wrong++
    // Stages of 1k, 4k, 16k, 64k and 256k keys, each about 1% wrong when full; the last not full.
    expect(wrong).toBeLessThan(n * 0.05)
    // The same msgId in another partition is another key.
    let elsewhere = 0
    for (let i = 0; i < 1_000; i++) if (f.mayHold(key(2, `held-${i}`))) elsewhere++
    expect(elsewhere).toBeLessThan(50)
    // 10 bits per key, in power-of-two tables: 1k + 4k + 16k + 64k + 256k keys' worth.
    expect(f.bytes).toBeLessThanOrEqual((2 ** 14 + 2 ** 16 + 2 ** 18 + 2 ** 20 + 2 ** 22) / 8)
  })

  it('should not grow with keys added again (rewrites of the same msgIds)', () => {
    const f = new MsgIdFilter()
    for (let round = 0; round < 100; round++) for (let i = 0; i < 1_000; i++) f.add(key(1, `again-${i}`))
    // At most the 1,000 distinct keys (fewer where the filter already said "may hold" of a new one): one stage.
    expect(f.count).toBeLessThanOrEqual(1_000)
    expect(f.count).toBeGreaterThan(950)
    expect(f.bytes).toBe(2 ** 14 / 8)
    for (let i = 0; i < 1_000; i++) expect(f.mayHold(key(1, `again-${i}`))).toBe(true)
  })

  it('should size its first stage for the keys it expects', () => {
    expect(new MsgIdFilter(100_000).bytes).toBe(2 ** 20 / 8)
    expect(new MsgIdFilter(0).bytes).toBe(2 ** 14 / 8)
  })
})

describe('PartitionMsgIds', () => {
  it('should answer only once its scan reached the end of the view, a chunk per step, with the keys written between steps', async () => {
    const handle = await fresh()
    await store.putMetas(handle, 3, metas('a', 0, 250), 1)
    // Another partition's keys are not this partition's.
    await store.putMetas(handle, 4, metas('b', 0, 10), 2)
    const ids = new PartitionMsgIds(3, undefined, 100)
    expect(ids.mayHold(key(3, 'never'))).toBe(true)
    await ids.step(handle)
    await ids.step(handle)
    expect(ids.complete).toBe(false)
    expect(ids.mayHold(key(3, 'never'))).toBe(true)
    // Written between steps, before the scan's cursor (a0..a199 were read): the write adds it.
    const early = key(3, 'a0-again')
    ids.add(early)
    await store.putMetas(handle, 3, [meta('a0-again', 900)], 3)
    await ids.step(handle)
    expect(ids.complete).toBe(true)
    // a0-again sorts right after a0, behind the cursor: the scan never read it, the write added it.
    expect(ids.size.scanned).toBe(250)
    for (let i = 0; i < 250; i++) expect(ids.mayHold(key(3, `a${i}`))).toBe(true)
    expect(ids.mayHold(early)).toBe(true)
    let wrong = 0
    for (let i = 0; i < 1_000; i++) if (ids.mayHold(key(3, `z${i}`))) wrong++
    expect(wrong).toBeLessThan(50)
  })

  it('should end complete at once on an empty partition, and never answer after a failed step', async () => {
    const handle = await fresh()
    const empty = new PartitionMsgIds(9)
    await empty.step(handle)
    expect(empty.complete).toBe(true)
    expect(empty.mayHold(key(9, 'x'))).toBe(false)

    await store.putMetas(handle, 3, metas('a', 0, 10), 1)
    const broken = overriding(handle, {
      iterate: () => ({
        [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('corrupted block')) }),
      }),
    })
    const ids = new PartitionMsgIds(3)
    await ids.step(broken)
    // No further step reads: the scan gave up, and the filter never answers.
    await ids.step(handle)
    expect(ids.complete).toBe(false)
    expect(ids.mayHold(key(3, 'never'))).toBe(true)
  })

  it('should learn the view again once retention removed half of what it holds', async () => {
    const handle = await fresh()
    const ids = new PartitionMsgIds(3)
    await ids.step(handle)
    for (let i = 0; i < 100_000; i++) ids.add(key(3, `gone-${i}`))
    await store.putMetas(handle, 3, metas('kept', 0, 5), 1)
    ids.removed(40_000)
    expect(ids.complete).toBe(true)
    ids.removed(25_000)
    // 65,000 removed: not yet the 65,536 that are worth a scan.
    expect(ids.complete).toBe(true)
    ids.removed(536)
    expect(ids.complete).toBe(false)
    expect(ids.mayHold(key(3, 'gone-1'))).toBe(true)
    await ids.step(handle)
    expect(ids.complete).toBe(true)
    expect(ids.size).toMatchObject({ scanned: 5, held: 5 })
    expect(ids.mayHold(key(3, 'kept0'))).toBe(true)
  })
})

describe('FilterBudget', () => {
  it('should give a partition a filter only while the filters of its shard fit, and drop one that outgrows them', async () => {
    const handle = await fresh()
    // Room for two first stages (2 KiB each), not for a second stage (8 KiB).
    const budget = new FilterBudget(5 * 1024)
    const a = new PartitionMsgIds(1, budget)
    const b = new PartitionMsgIds(2, budget)
    const c = new PartitionMsgIds(3, budget)
    expect([a.filtered, b.filtered, c.filtered]).toEqual([true, true, false])
    expect(budget.used).toBe(4 * 1024)
    // Without a filter: never complete, every msgId may be held, and nothing to learn.
    await c.step(handle)
    expect(c.complete).toBe(false)
    expect(c.mayHold(key(3, 'x'))).toBe(true)
    await a.step(handle)
    expect(a.complete).toBe(true)
    expect(a.mayHold(key(1, 'x'))).toBe(false)
    // The 1,025th msgId needs a second stage, which does not fit: the filter goes, and its memory comes back.
    for (let i = 0; i < 1_025; i++) a.add(key(1, `k${i}`))
    expect(a.filtered).toBe(false)
    expect(a.complete).toBe(false)
    expect(a.mayHold(key(1, 'x'))).toBe(true)
    expect(budget.used).toBe(2 * 1024)
    // Given back, it fits another partition.
    expect(new PartitionMsgIds(4, budget).filtered).toBe(true)
  })
})

describe('writes through the index', () => {
  /** The by-id keys each MultiGet of a primary looked up, per call. */
  const lookedUp: string[][] = []
  const counting = overridingHandles({
    primary: (handle) => ({
      getMany: (keys) => {
        lookedUp.push(keys.flatMap((k) => { const d = decodeKey(k); return d.view === 'byId' ? [d.msgId] : [] }))
        return handle.getMany(keys)
      },
      getManySettled: (keys) => {
        lookedUp.push(keys.flatMap((k) => { const d = decodeKey(k); return d.view === 'byId' ? [d.msgId] : [] }))
        return getManySettled(handle, keys)
      },
    }),
  })
  /** Writes `batch`, and returns the msgIds the write looked up (reads before it are not counted). */
  const lookupsOf = async (batch: MessageMeta[]): Promise<string[]> => {
    lookedUp.length = 0
    await h!.index.batchPut('t', 1, batch)
    return lookedUp.splice(0).flat()
  }
  const primary = { consistency: 'primary' } as const

  it('should look up no new msgId, and still replace a msgId written again, also after a primary restart', async () => {
    h = await openHarness({}, counting)
    expect(await lookupsOf(metas('m', 0, 500))).toEqual([])
    // One partition's filter, learned at its first write (it was empty): the first stage, 1,024 msgIds' worth.
    expect(shardStats(h, 't', 1).msgIdFilters).toEqual({ partitions: 1, learning: 0, bytes: 2 ** 14 / 8, refused: 0 })
    expect(await lookupsOf(metas('m', 500, 1_000))).toEqual([])
    // m7 again at a new place: looked up (with at most a few new msgIds the filter cannot tell), and replaced.
    const looked = await lookupsOf([{ ...meta('m7', 7), segmentId: 1, offset: 7 }, ...metas('n', 0, 100, 9)])
    expect(looked).toContain('m7')
    expect(looked.length).toBeLessThan(10)
    expect(await h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 7 }, primary)).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm7', primary)).toMatchObject({ segmentId: 1, offset: 7 })

    // A new primary learns the partition again (another writer may have written while the directory was unlocked).
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    await h.clock.advance(60_000)
    expect(await lookupsOf([{ ...meta('m8', 8), segmentId: 2, offset: 8 }])).toEqual(['m8'])
    expect(await h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 8 }, primary)).toBeUndefined()
    expect(await h.index.getByMsgId('t', 1, 'm8', primary)).toMatchObject({ segmentId: 2, offset: 8 })
    expect(await lookupsOf(metas('o', 0, 100, 10))).toEqual([])
  })

  it('should look up every msgId with writes.msgIdFilterBytes 0, and count the partition as refused', async () => {
    h = await openHarness({ writes: { msgIdFilterBytes: 0 } }, counting)
    expect(await lookupsOf(metas('m', 0, 10))).toHaveLength(10)
    expect(await lookupsOf(metas('m', 10, 20))).toHaveLength(10)
    expect(shardStats(h, 't', 1).msgIdFilters).toEqual({ partitions: 0, learning: 0, bytes: 0, refused: 1 })
  })

  it('should look up every msgId of a partition larger than a chunk until its scan ends, and replace throughout', async () => {
    h = await openHarness({}, counting)
    expect(await lookupsOf(metas('m', 0, 2.5 * scanChunk))).toEqual([])
    const n = h.events.length
    expect(h.index.faults.crash('t', 1, 'primary')).toBe(1)
    await h.event((e) => e.type === 'restarted' && e.actor === 'primary', n)
    await h.clock.advance(60_000)
    // 10,240 msgIds are 2.5 chunks of 4,096: the first two writes after the restart look up all their msgIds, each
    // replacing one from the end of the partition in key order (not scanned yet); the third's scan ends, and it
    // looks up only its msgId written before (and the few new ones the filter cannot tell).
    expect(scanChunk).toBe(4_096)
    for (const [k, id] of [[0, 'm9999'], [1, 'm9998'], [2, 'm9997']] as const) {
      const looked = await lookupsOf([{ ...meta(id, 0), segmentId: 5, offset: k }, ...metas(`new${k}-`, 0, 50, 20 + k)])
      expect(looked).toContain(id)
      if (k < 2) expect(looked).toHaveLength(51)
      else expect(looked.length).toBeLessThan(6)
      expect(shardStats(h, 't', 1).msgIdFilters).toMatchObject({ partitions: 1, learning: k < 2 ? 1 : 0 })
      expect(await h.index.getByMsgId('t', 1, id, primary)).toMatchObject({ segmentId: 5, offset: k })
      expect(await h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: Number(id.slice(1)) }, primary)).toBeUndefined()
    }
  }, 60_000)
})
