/**
 * Stress: a writer flushing after every batch while readers of both modes (the writer's own pool, and a reader-mode
 * index on the same root) open, refresh and crash continuously; every read of an acknowledged write is checked
 * against a model of what was acknowledged. Invariant: 0 wrong answers, 0 untyped errors.
 *
 * The flush race that tears a read-only view is rare (a few in 10,000 opens), so the writer's engine also makes it
 * happen on purpose (test/support/views.ts, TearingEngine): before every 4th flush it copies the shard directory, and
 * the next read-only open after that flush gets the old MANIFEST with the new WAL, exactly what the race gives. The same
 * run with the view check off (a test-only switch) serves those views (usually giving wrong answers too, when a read
 * asks for the missing memtable while one serves): the check is what keeps them out. Real RocksDB in a temp dir;
 * time from a ManualClock.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { FaultInjector, isRockvisorError, openIndex, rocksEngine, type Index, type MessageMeta, type WriteToken } from '../src/index.js'
import { viewCheck } from '../src/views.js'
import { recordInspection } from './support/coverage.js'
import { openHarness, type Harness } from './support/harness.js'
import { removeDir, tempDir } from './support/tmp.js'
import { TearingEngine } from './support/views.js'

const partitions = [0, 1, 2, 3]
const batches = 240
const perBatch = 10

interface Acked {
  readonly partition: number
  readonly meta: MessageMeta
  readonly token: WriteToken
}

interface Outcome {
  reads: number
  wrong: string[]
  untyped: unknown[]
  tornViews: number
  tornOpens: number
}

/** A tiny seeded PRNG (mulberry32), so every run makes the same choices. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  viewCheck.enabled = true
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

const run = async (seed: number): Promise<Outcome> => {
  const random = prng(seed)
  const work = await tempDir()
  cleanup.push(() => removeDir(work))
  const tearing = new TearingEngine(rocksEngine, work, 4)
  const h: Harness = await openHarness({ shards: 2, readers: { min: 2, max: 4 }, freshness: { flushEveryRecords: perBatch * 3 } }, tearing)
  cleanup.push(() => h.dispose())
  const reader: Index = await openIndex({ root: h.root, mode: 'reader', readers: { min: 2, max: 4 }, clock: h.clock, engine: new FaultInjector(tearing), inspect: recordInspection })
  cleanup.push(() => reader.close())

  const acked: Acked[] = []
  const out: Outcome = { reads: 0, wrong: [], untyped: [], tornViews: 0, tornOpens: 0 }
  let writing = true

  /** Picks an acknowledged write, half the time among the newest ones (the ones a torn view misses). */
  const pick = (): Acked => {
    const recent = random() < 0.5
    const from = recent ? Math.max(0, acked.length - perBatch * 3) : 0
    return acked[from + Math.floor(random() * (acked.length - from))]!
  }
  const check = async (what: string, read: () => Promise<unknown>, expected: unknown): Promise<void> => {
    out.reads++
    try {
      const got = await read()
      if (JSON.stringify(got) !== JSON.stringify(expected)) out.wrong.push(`${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
    } catch (e) {
      if (!isRockvisorError(e)) out.untyped.push(e)
      // A typed error is not a wrong answer, but in this run nothing should fail: record it as one.
      else out.wrong.push(`${what}: ${e._tag} ${e.message}`)
    }
  }

  const writer = (async () => {
    for (let b = 0; b < batches; b++) {
      const partition = partitions[b % partitions.length]!
      const metas = Array.from({ length: perBatch }, (_, i): MessageMeta => {
        const n = b * perBatch + i
        return { msgId: `m${n}`, timestamp: 10_000 + n, segmentId: 1, offset: n, msgLen: n % 100 }
      })
      const { token } = await h.index.batchPut('t', partition, metas)
      for (const meta of metas) acked.push({ partition, meta, token })
      // Readers crash now and then, so that opens go on all the time; the clock lets restarts and refreshes happen.
      if (b % 40 === 39) h.index.faults.crash('t', partition, 'readers')
      if (b % 40 === 19) reader.faults.crash('t', partition, 'readers')
      await h.clock.advance(20)
    }
    writing = false
  })()

  const readLoop = async (which: number): Promise<void> => {
    while (writing) {
      if (acked.length === 0) {
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      const a = pick()
      const so = { segmentId: a.meta.segmentId, offset: a.meta.offset }
      if (which % 2 === 0) {
        // Writer mode, read-your-writes: through the writer's readers when they are fresh enough.
        await check(`fresh ${a.meta.msgId}`, () => h.index.getByMsgId('t', a.partition, a.meta.msgId), a.meta)
      } else if (random() < 0.8) {
        await check(`after ${a.token} ${a.meta.msgId}`, () => reader.getByMsgId('t', a.partition, a.meta.msgId, { after: a.token }), a.meta)
      } else {
        await check(`after ${a.token} at ${a.meta.offset}`, () => reader.getMsgIdBySegmentOffset('t', a.partition, so, { after: a.token }), a.meta.msgId)
      }
    }
  }
  const reading = Promise.all([0, 1, 2, 3].map(readLoop))
  await writer
  // Reads still in flight may wait for a reader restarting under backoff: time goes on until they are answered, at
  // 20 ms of the index's clock per millisecond of real time, so that the real opens keep up with it (a clock running
  // ahead of them would time the reads out).
  let answered = false
  void reading.finally(() => (answered = true))
  while (!answered) {
    await new Promise((resolve) => setTimeout(resolve, 1))
    await h.clock.advance(20)
  }
  await reading

  for (const index of [h.index, reader]) for (const s of index.stats().shards) out.tornViews += s.integrity.tornViews
  out.tornOpens = tearing.tornOpens
  return out
}

describe('stress: a writer flushing all the time, readers of both modes opening and refreshing all the time', () => {
  it('should answer every read of an acknowledged write right, catching every torn view', async () => {
    const out = await run(1)
    expect(out.untyped).toEqual([])
    expect(out.wrong).toEqual([])
    expect(out.reads).toBeGreaterThan(500)
    // Torn views were made (a torn copy opened before the next write is only stale), and caught before serving.
    expect(out.tornOpens).toBeGreaterThan(5)
    expect(out.tornViews).toBeGreaterThan(0)
  })

  it('should serve torn views with the view check off: the check is what keeps them out', async () => {
    viewCheck.enabled = false
    const out = await run(1)
    expect(out.untyped).toEqual([])
    expect(out.tornOpens).toBeGreaterThan(5)
    // The same views were torn, and this time they served reads (counted, not discarded). Whether a read then asks
    // for a meta of the missing memtable is up to timing: test/integrity.test.ts shows that one then gets a wrong
    // answer, every time.
    expect(out.tornViews).toBeGreaterThan(0)
    console.log(`stress with the view check off: ${out.tornViews} torn views served, ${out.wrong.length} wrong answers in ${out.reads} reads`)
  })
})
