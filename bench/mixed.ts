/**
 * The mixed workload: one writer and many concurrent readers on one writer-mode index, for a fixed time. The writer
 * writes batches of 100 metas back to back, round-robin over the partitions; each reader loops on `getByMsgId` of a
 * meta already acknowledged (half of them among the newest 1,000, as consumers of a queue read what was just
 * written). Measured per configuration: lookups/s, the writer's metas/s (against the same writer alone), which
 * source answered the reads (primary, readers' views, the memory of recent writes), and the peak RSS.
 */
import { openIndex, type Index, type IndexOptions, type MessageMeta } from '../src/index.js'
import { rng } from './data.js'
import { percentile } from './measure.js'

export interface MixedRow {
  readonly label: string
  readonly readers: number
  readonly seconds: number
  readonly lookups: number
  readonly lookupsPerSecond: number
  readonly metasWritten: number
  readonly metasPerSecond: number
  /** Reads answered by: the primary, readers' views, the memory of recent writes (from `stats().shards[i].served`). */
  readonly served: { primary: number; readers: number; memory: number }
  readonly misses: number
  readonly peakRssBytes: number
  /** The writer's batch latency (call to acknowledgement), ms. */
  readonly batchP50Ms: number
  readonly batchP99Ms: number
}

export interface MixedConfig {
  readonly label: string
  /** How the readers read: the default (`fresh`), or `primary`. `undefined` readers: the writer alone. */
  readonly consistency?: 'fresh' | 'primary'
  readonly readers: number
  readonly options?: Partial<IndexOptions>
}

const topic = 'mixed'
const partitions = [0, 1, 2, 3, 4, 5, 6, 7]
const batchSize = 100

const metaOf = (i: number): MessageMeta => ({ msgId: `x-${i}`, timestamp: 1_700_000_000_000 + i, segmentId: Math.floor(i / 1_000_000), offset: i % 1_000_000, msgLen: 100 })

/** Runs one configuration for `durationMs` on a fresh root under `tempDir()`, after `preload` metas and a warm-up. */
export const mixed = async (tempDir: () => Promise<string>, config: MixedConfig, durationMs: number, preload: number): Promise<MixedRow> => {
  const root = await tempDir()
  const index: Index = await openIndex({ root, shards: 4, ...config.options })
  try {
    // Preload: every partition holds metas before the run, and every shard runs its primary and a reader.
    let next = 0
    while (next < preload) {
      const p = partitions[(next / batchSize) % partitions.length]!
      await index.batchPut(topic, p, Array.from({ length: batchSize }, (_, i) => metaOf(next + i)))
      next += batchSize
    }
    const partitionOf = (i: number): number => partitions[Math.floor(i / batchSize) % partitions.length]!
    let acked = next
    let stop = false
    let metasWritten = 0
    let lookups = 0
    let misses = 0
    let peakRss = process.memoryUsage.rss()
    const before = servedOf(index)
    const batchMs: number[] = []
    const writer = async (): Promise<void> => {
      while (!stop) {
        const from = next
        next += batchSize
        const t = performance.now()
        await index.batchPut(topic, partitionOf(from), Array.from({ length: batchSize }, (_, i) => metaOf(from + i)))
        batchMs.push(performance.now() - t)
        metasWritten += batchSize
        // Batches are written one at a time: everything below `next` is acknowledged.
        acked = next
      }
    }
    const reader = async (seed: number): Promise<void> => {
      const random = rng(seed)
      while (!stop) {
        const i = random() < 0.5 ? acked - 1 - Math.floor(random() * Math.min(1_000, acked)) : Math.floor(random() * acked)
        const meta = await index.getByMsgId(topic, partitionOf(i), `x-${i}`, config.consistency === 'primary' ? { consistency: 'primary' } : undefined)
        if (meta === undefined) misses++
        lookups++
      }
    }
    const rss = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100)
    const start = performance.now()
    const runs = [writer(), ...Array.from({ length: config.readers }, (_, k) => reader(k + 1))]
    await new Promise((resolve) => setTimeout(resolve, durationMs))
    stop = true
    await Promise.all(runs)
    const seconds = (performance.now() - start) / 1000
    clearInterval(rss)
    const after = servedOf(index)
    return {
      label: config.label,
      readers: config.readers,
      seconds,
      lookups,
      lookupsPerSecond: lookups / seconds,
      metasWritten,
      metasPerSecond: metasWritten / seconds,
      served: { primary: after.primary - before.primary, readers: after.readers - before.readers, memory: after.memory - before.memory },
      misses,
      peakRssBytes: peakRss,
      batchP50Ms: percentile(batchMs, 50),
      batchP99Ms: percentile(batchMs, 99),
    }
  } finally {
    await index.close()
  }
}

const servedOf = (index: Index): { primary: number; readers: number; memory: number } => {
  const total = { primary: 0, readers: 0, memory: 0 }
  for (const s of index.stats().shards) {
    total.primary += s.served.primary
    total.readers += s.served.readers
    total.memory += s.served.memory
  }
  return total
}
