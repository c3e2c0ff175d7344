/**
 * Creation exactly once: any number of concurrent first requests to a shard, in any interleaving with the engine's
 * I/O, produce one primary open, and every caller gets the same answer.
 */
import { fc, test } from '@fast-check/vitest'
import { expect } from 'vitest'
import { FaultInjector, ManualClock, openIndex, rocksEngine, type Engine } from '../src/index.js'
import { released } from '../src/testing/index.js'
import { removeDir, tempDir } from '../test/support/tmp.js'

/**
 * The real engine, with every open's completion released by the fast-check scheduler (`released` keeps a failed
 * open's rejection until then), and its opens counted.
 */
const scheduledEngine = (s: fc.Scheduler, opens: { primary: number; reader: number }): Engine => ({
  open: (path, options) => {
    const role = options.readOnly ? 'reader' : 'primary'
    opens[role]++
    return released(s, rocksEngine.open(path, options), `open ${role}`)
  },
})

test.prop(
  [
    fc.scheduler(),
    fc.integer({ min: 2, max: 50 }),
    fc.array(fc.constantFrom('getByMsgId', 'getRangeByTime', 'getMsgIdBySegmentOffset', 'batchPut'), { minLength: 50, maxLength: 50 }),
  ],
  { numRuns: 25 },
)('should open exactly one primary for any interleaving of 2..50 concurrent first requests', async (s, n, kinds) => {
  const root = await tempDir()
  // The shard's database exists already (an earlier index wrote it), so that reads, which never create a shard
  // nobody wrote, open it too. The meta is far from everything read below.
  const earlier = await openIndex({ root, shards: 2 })
  await earlier.batchPut('topic', 5, [{ msgId: 'earlier', timestamp: 10_000, segmentId: 8, offset: 0, msgLen: 1 }])
  await earlier.close()
  const opens = { primary: 0, reader: 0 }
  const faults = new FaultInjector(scheduledEngine(s, opens))
  const index = await openIndex({ root, shards: 2, clock: new ManualClock(), engine: faults })
  try {
    // Every caller's request starts at a point the scheduler picks, interleaved with the opens it releases.
    const calls = Array.from({ length: n }, (_, i) =>
      s.schedule(Promise.resolve(i), `request ${i} (${kinds[i]})`).then(async () => {
        switch (kinds[i]) {
          case 'getByMsgId':
            return { answer: await index.getByMsgId('topic', 5, 'absent') }
          case 'getRangeByTime':
            return { answer: await index.getRangeByTime('topic', 5, 0, 100) }
          case 'getMsgIdBySegmentOffset':
            return { answer: await index.getMsgIdBySegmentOffset('topic', 5, { segmentId: 1, offset: 1 }) }
          default:
            // Writes of metas far from the ranges read above: the readers' answers stay "nothing".
            await index.batchPut('topic', 5, [{ msgId: `w${i}`, timestamp: 1_000 + i, segmentId: 9, offset: i, msgLen: 1 }])
            return { answer: undefined }
        }
      }),
    )
    const results = await s.waitFor(Promise.all(calls))
    expect(opens.primary).toBe(1)
    expect(faults.opened.primary).toBe(1)
    expect(faults.maxWritersPerDir).toBe(1)
    expect(new Set(results.map((r) => JSON.stringify(r)))).toEqual(new Set([JSON.stringify({ answer: undefined })]))
    const stats = index.stats()
    expect(stats.shards).toHaveLength(1)
    expect(stats.totals.primaries).toBe(1)
    expect(stats.shards[0]!.restarts.primary).toBe(0)
  } finally {
    await s.waitFor(index.close())
    await removeDir(root)
  }
  expect(faults.liveHandles).toBe(0)
})
