/**
 * The seed design's two tests, rewritten against openIndex. The seed's own read-after-write test passed only because
 * its reader was created after the write; here the readers exist before the writes and must still see them.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { openIndex, type Index, type MessageMeta } from '../src/index.js'
import { removeDir, tempDir } from './support/tmp.js'
import { waitFor } from './support/harness.js'

let root: string | undefined
let index: Index | undefined
afterEach(async () => {
  await index?.close()
  if (root) await removeDir(root)
  index = root = undefined
})

describe('seed scenarios', () => {
  it('should read after write, through readers opened before the write', async () => {
    root = await tempDir()
    index = await openIndex({ root, shards: 4, readers: { min: 2 } })
    // First write opens the shard; its readers open right after and are then older than the second write.
    await index.batchPut('topic', 1, [{ msgId: 'msg_0', timestamp: 999, segmentId: 1, offset: 0, msgLen: 50 }])
    const shardId = index.locate('topic', 1).id
    await waitFor(() => index!.stats().shards.find((s) => s.id === shardId)?.readers.serving === 2)

    const meta: MessageMeta = { msgId: 'msg_1', timestamp: 1000, segmentId: 1, offset: 100, msgLen: 50 }
    const { bytes } = await index.batchPut('topic', 1, [meta])
    expect(bytes).toBeGreaterThan(0)
    expect(await index.getByMsgId('topic', 1, 'msg_1')).toEqual(meta)
    expect(await index.getMsgIdBySegmentOffset('topic', 1, { segmentId: 1, offset: 100 })).toBe('msg_1')
    expect(await index.getRangeByTime('topic', 1, 1000, 1000)).toEqual({ first: { segmentId: 1, offset: 100 }, last: { segmentId: 1, offset: 100 } })
    expect(await index.getByMsgId('topic', 1, 'nope')).toBeUndefined()
  })

  it('should answer every read correctly with 10 concurrent writers and 20 concurrent readers across partitions', async () => {
    root = await tempDir()
    index = await openIndex({ root, shards: 4, readers: { min: 1, max: 3, growAt: 2 } })
    const ix = index
    const writers = 10
    const batches = 20
    const perBatch = 25
    const written = new Map<string, MessageMeta & { partition: number }>()
    const metaOf = (w: number, b: number, i: number): MessageMeta & { partition: number } => ({
      partition: w % 8,
      msgId: `w${w}-b${b}-i${i}`,
      timestamp: 1_000 + b * 100 + i,
      segmentId: w,
      offset: b * perBatch + i,
      msgLen: 10 + i,
    })
    const acknowledged: (MessageMeta & { partition: number })[] = []
    let wrong = 0
    let answered = 0

    const writer = async (w: number) => {
      for (let b = 0; b < batches; b++) {
        const metas = Array.from({ length: perBatch }, (_, i) => metaOf(w, b, i))
        await ix.batchPut('topic', w % 8, metas.map(({ partition: _p, ...m }) => m))
        for (const m of metas) {
          written.set(m.msgId, m)
          acknowledged.push(m)
        }
      }
    }
    let writing = true
    const reader = async (r: number) => {
      let n = 0
      while (writing || n < 20) {
        n++
        const pick = acknowledged[(r * 7919 + n * 104_729) % Math.max(1, acknowledged.length)]
        if (pick === undefined) {
          await new Promise((resolve) => setImmediate(resolve))
          continue
        }
        const { partition, ...expected } = pick
        const [byId, bySo] = await Promise.all([
          ix.getByMsgId('topic', partition, pick.msgId),
          ix.getMsgIdBySegmentOffset('topic', partition, pick),
        ])
        answered++
        if (JSON.stringify(byId) !== JSON.stringify(expected) || bySo !== pick.msgId) wrong++
      }
    }
    const writes = Promise.all(Array.from({ length: writers }, (_, w) => writer(w))).finally(() => (writing = false))
    await Promise.all([writes, ...Array.from({ length: 20 }, (_, r) => reader(r))])

    expect(wrong).toBe(0)
    expect(answered).toBeGreaterThan(400)
    // Afterwards every acknowledged meta is there, in all three views.
    for (const m of written.values()) {
      const { partition, ...expected } = m
      expect(await ix.getByMsgId('topic', partition, m.msgId)).toEqual(expected)
    }
    for (let p = 0; p < 8; p++) {
      let count = 0
      for await (const _ of ix.scanByTime('topic', p, 0, Number.MAX_SAFE_INTEGER)) count++
      expect(count).toBe([...written.values()].filter((m) => m.partition === p).length)
    }
    const stats = ix.stats()
    expect(stats.totals.primaries).toBe(new Set(Array.from({ length: 8 }, (_, p) => ix.locate('topic', p).id)).size)
    expect(stats.shards.every((s) => s.restarts.primary === 0)).toBe(true)
  })
})
