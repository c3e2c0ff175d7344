/**
 * The edges of src/msgids.ts that test/msgids.test.ts reaches only loosely, found by mutation testing (TESTING.md,
 * "Mutation testing"): how often a first stage wrongly says "may hold" (its probes), the key at which the next stage
 * begins, a filter whose next stage was refused its memory (it says "may hold" of every key from then on, and takes
 * no more), the budget's exact edge, a partition whose filter is gone (its scan reads nothing more), that a
 * learned filter reads no more, and exactly when retention makes a partition's filter learn its view
 * again (half of what it holds, not while it still learns), sized for what is left, its counts starting over. Real
 * RocksDB in temp dirs.
 */
import { describe, expect, it } from 'vitest'
import type { MessageMeta } from '../src/index.js'
import { idKeyOf } from '../src/keys.js'
import { overriding, type StorageHandle } from '../src/engine.js'
import { FilterBudget, MsgIdFilter, PartitionMsgIds, scanChunk } from '../src/msgids.js'
import * as store from '../src/store.js'
import { handlesPerTest } from './support/handles.js'

const fresh = handlesPerTest()
const key = (msgId: string): Buffer => idKeyOf(3, msgId, Buffer.byteLength(msgId))
const metas = (n: number): MessageMeta[] => Array.from({ length: n }, (_, i) => ({ msgId: `kept${i}`, timestamp: 1_000 + i, segmentId: 0, offset: i, msgLen: 10 }))

/**
 * Adds keys `prefix0`, `prefix1`, ... of partition 3 until `held()` reaches `count`. A filter that stops taking keys
 * (one that says "may hold" of every key, say) fails here at once rather than looping forever.
 */
const fill = (add: (key: Uint8Array) => void, held: () => number, count: number, prefix: string): void => {
  for (let i = 0; held() < count; i++) {
    if (i >= 2 * count) throw new Error(`the filter took ${held()} of ${i} new keys`)
    add(key(`${prefix}${i}`))
  }
}

describe('MsgIdFilter at its edges', () => {
  it('should wrongly say "may hold" of under 0.1% of new keys with 1,000 keys in its first stage (7 probes in 16,384 bits)', () => {
    const f = new MsgIdFilter()
    fill((k) => f.add(k), () => f.count, 1_000, 'held-')
    let wrong = 0
    for (let i = 0; i < 200_000; i++) if (f.mayHold(key(`never-${i}`))) wrong++
    // In theory 0.06% (153 of these 200,000); an 8th bit set per key doubles it.
    expect(wrong).toBeLessThan(200_000 * 0.001)
  })

  it('should begin its next stage, four times larger, with the key after its first stage holds 1,024', () => {
    const f = new MsgIdFilter()
    fill((k) => f.add(k), () => f.count, 1_024, 'a-')
    expect(f.bytes).toBe(2 ** 14 / 8)
    fill((k) => f.add(k), () => f.count, 1_025, 'b-')
    expect(f.bytes).toBe((2 ** 14 + 2 ** 16) / 8)
  })
  it('should say "may hold" of every key once a stage was refused its memory, also of keys never added', () => {
    let stages = 0
    const f = new MsgIdFilter(1_024, () => ++stages <= 1)
    fill((k) => f.add(k), () => f.count, 1_024, 'held-')
    expect(f.full).toBe(false)
    expect(f.mayHold(key('never-0'))).toBe(false)
    // The key after the first stage asks for the next one, and is refused: from then on the filter misses keys.
    f.add(key('refused'))
    expect(f.full).toBe(true)
    expect(stages).toBe(2)
    expect(f.mayHold(key('refused'))).toBe(true)
    for (let i = 0; i < 100; i++) expect(f.mayHold(key(`never-${i}`))).toBe(true)
    // A full filter takes no more keys, and asks for no more memory.
    for (let i = 0; i < 100; i++) f.add(key(`later-${i}`))
    expect(stages).toBe(2)
    expect(f.count).toBe(1_024)
  })
})

describe('FilterBudget at its edge', () => {
  it('should give a filter exactly the bytes left, and refuse one byte more', () => {
    const budget = new FilterBudget(2 * 1_024)
    expect(budget.take(2 * 1_024 + 1)).toBe(false)
    expect(budget.used).toBe(0)
    expect(budget.take(2 * 1_024)).toBe(true)
    expect(budget.used).toBe(2 * 1_024)
    expect(budget.take(1)).toBe(false)
  })
})

describe('a partition whose filter is gone', () => {
  /** `handle`, counting the keys its iterations yielded. */
  const counting = (handle: StorageHandle) => {
    const seen = { iterations: 0, keys: 0 }
    const counted = overriding(handle, {
      iterate: (range) =>
        (async function* () {
          seen.iterations++
          for await (const entry of handle.iterate(range)) {
            seen.keys++
            yield entry
          }
        })(),
    })
    return { counted, seen }
  }

  it('should read nothing when its filter did not fit the budget from the start', async () => {
    const handle = await fresh()
    await store.putMetas(handle, 3, metas(10), 1)
    const { counted, seen } = counting(handle)
    const ids = new PartitionMsgIds(3, new FilterBudget(0))
    expect(ids.filtered).toBe(false)
    await ids.step(counted)
    await ids.step(counted)
    expect(seen).toEqual({ iterations: 0, keys: 0 })
  })

  it('should stop its scan at the key whose stage did not fit, reading no further', async () => {
    const handle = await fresh()
    await store.putMetas(handle, 3, metas(2_000), 1)
    const { counted, seen } = counting(handle)
    // Room for the first stage (1,024 keys), not for the second.
    const ids = new PartitionMsgIds(3, new FilterBudget(4 * 1_024))
    await ids.step(counted)
    expect(ids.filtered).toBe(false)
    expect(seen).toEqual({ iterations: 1, keys: 1_025 })
    await ids.step(counted)
    expect(seen).toEqual({ iterations: 1, keys: 1_025 })
  })
})

describe('PartitionMsgIds and retention', () => {
  it('should learn again once exactly half of what it holds was removed (at least 65,536), and not while it still learns', async () => {
    const handle = await fresh()
    const kept = scanChunk + 3_616
    await store.putMetas(handle, 3, metas(kept), 1)
    const ids = new PartitionMsgIds(3)
    await ids.step(handle)
    expect(ids.complete).toBe(false)
    // Still learning: retention never restarts the scan under way (what it removed counts all the same).
    ids.removed(70_000)
    expect(ids.size.scanned).toBe(scanChunk)
    await ids.step(handle)
    expect(ids.complete).toBe(true)
    expect(ids.size.scanned).toBe(kept)
    // Complete: a further step (every write takes one) reads nothing.
    await ids.step(handle)
    expect(ids.complete).toBe(true)
    expect(ids.size.scanned).toBe(kept)
    // An even number held, at least 200,000: one key short of half of it removed, then half of it.
    for (let i = 0; ids.size.held < 200_000 || ids.size.held % 2 === 1; i++) ids.add(key(`gone-${i}`))
    const held = ids.size.held
    ids.removed(held / 2 - 70_000 - 1)
    expect(ids.complete).toBe(true)
    ids.removed(1)
    expect(ids.complete).toBe(false)
    // Sized for what is left (half of it, about 100,000 keys: 2^20 bits), its scan starting over.
    expect(ids.size).toEqual({ scanned: 0, held: 0, bytes: 2 ** 20 / 8 })
    await ids.step(handle)
    await ids.step(handle)
    expect(ids.complete).toBe(true)
    expect(ids.size.scanned).toBe(kept)
    // What was removed before counts no more.
    ids.removed(1)
    expect(ids.complete).toBe(true)
  })
})
