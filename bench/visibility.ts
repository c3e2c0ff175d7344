/**
 * Write-acknowledged -> visible-at-a-reader latency under a steady write load. A writer-mode index writes batches back
 * to back to one partition; a reader-mode index on the same root (what another process would run) reads a sample of
 * the acknowledged metas with `after: token`, which waits until one of its readers has refreshed past the token.
 * Measured once with the default flush policy and once with flushing effectively off, so the WAL a refresh replays
 * grows.
 */
import { openIndex, type MessageMeta } from '../src/index.js'
import { percentile } from './measure.js'

export interface VisibilityRow {
  readonly label: string
  readonly flushEveryRecords: number
  readonly batches: number
  readonly metasPerSecond: number
  readonly samples: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

const metaOf = (i: number): MessageMeta => ({ msgId: `v-${i}`, timestamp: 1_700_000_000_000 + i, segmentId: Math.floor(i / 100_000), offset: i % 100_000, msgLen: 100 })

/** Runs the writer for `durationMs`, sampling one acknowledged batch in `sampleEvery`. */
export const visibility = async (
  tempDir: () => Promise<string>,
  durationMs: number,
  progress: (line: string) => void,
): Promise<VisibilityRow[]> => {
  const rows: VisibilityRow[] = []
  for (const [label, flushEveryRecords] of [
    ['default flush policy (30,000 records or 5 s)', 30_000],
    ['flushing effectively off', 1_000_000_000],
  ] as const) {
    const root = await tempDir()
    const writer = await openIndex({ root, shards: 4, freshness: { flushEveryRecords } })
    await writer.batchPut('bench', 1, [{ ...metaOf(0), msgId: 'v-first', segmentId: 999_999 }])
    const reader = await openIndex({ root, mode: 'reader', readers: { min: 1, max: 1 } })
    const latencies: number[] = []
    const pending: Promise<void>[] = []
    let batch = 0
    let metas = 0
    const start = performance.now()
    try {
      while (performance.now() - start < durationMs) {
        const batchMetas = Array.from({ length: 100 }, (_, i) => metaOf(batch * 100 + i))
        const { token } = await writer.batchPut('bench', 1, batchMetas)
        const acked = performance.now()
        metas += batchMetas.length
        // Sample every 10th batch: one read at a time per sample, in flight beside the writes.
        if (batch % 10 === 0) {
          const probe = batchMetas[50]!.msgId
          pending.push(
            reader.getByMsgId('bench', 1, probe, { after: token }).then((m) => {
              if (m?.msgId !== probe) throw new Error(`reader missed ${probe}`)
              latencies.push(performance.now() - acked)
            }),
          )
        }
        batch++
      }
      await Promise.all(pending)
    } finally {
      await reader.close()
      await writer.close()
    }
    const elapsed = (performance.now() - start) / 1000
    const sorted = Float64Array.from(latencies).sort()
    rows.push({
      label,
      flushEveryRecords,
      batches: batch,
      metasPerSecond: metas / elapsed,
      samples: latencies.length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? 0,
    })
    progress(`visibility (${label}): ${latencies.length} samples`)
  }
  return rows
}
