/**
 * Write-acknowledged -> visible latency under a steady write load. A writer-mode index writes batches back to back to
 * one partition; a sample of the acknowledged metas is read either by a reader-mode index on the same root (what
 * another process would run) with `after: token`, or by the writing index itself (`fresh`: served at once, by a stale
 * reader merged with the memory of recent writes or by the primary, while a reader refreshes). The reader-mode index
 * follows the logs by default (its stale view merged with what one read of the logs found); without
 * (`freshness.followLogs: false`) it waits until its reader has refreshed past the token, measured with the default
 * flush policy and with flushing effectively off, so the WAL a refresh replays grows.
 */
import { defaults, openIndex, type MessageMeta } from '../src/index.js'
import { percentile } from './measure.js'
import { flushingOff } from './write.js'

export interface VisibilityRow {
  readonly label: string
  /** How the read is served (reader mode following the logs or waiting for a refresh; writer mode, fresh). */
  readonly path: string
  readonly flushEveryRecords: number
  readonly batches: number
  readonly metasPerSecond: number
  readonly samples: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

const metaOf = (i: number): MessageMeta => ({ msgId: `v-${i}`, timestamp: 1_700_000_000_000 + i, segmentId: Math.floor(i / 100_000), offset: i % 100_000, msgLen: 100 })

/**
 * Runs the writer for `warmupMs` then `durationMs`, sampling one acknowledged batch in 10 throughout; only the samples
 * of batches begun after the warm-up count (and only those batches are in the metas/s). The warm-up's samples are read and checked the same way: they
 * exist so that the latencies measured are those of the steady state, not of the first reads of a reader-mode index
 * just opened and of code run for the first time (a scratch run in a fresh process: the event loop delayed by up to
 * 42 ms in its first half second of writes, the sample of the 10th batch answered in 33 to 36 ms, against 3 to 7 ms
 * once warm).
 */
export const visibility = async (
  tempDir: () => Promise<string>,
  warmupMs: number,
  durationMs: number,
  progress: (line: string) => void,
): Promise<VisibilityRow[]> => {
  const rows: VisibilityRow[] = []
  // Flushing "off" is the most the options allow: the largest flush threshold, in the largest memtable, or an hour.
  const off = flushingOff
  const refreshing = 'reader-mode index, `after: token`, `followLogs: false`: waits for a refresh'
  for (const [label, options, path] of [
    ['default flush policy (16,384 records or 5 s)', {}, 'reader-mode index, `after: token` (default: follows the logs): a stale view merged with one read of the logs'],
    ['default flush policy (16,384 records or 5 s)', {}, refreshing],
    ['flushing effectively off', off, refreshing],
    ['default flush policy (16,384 records or 5 s)', {}, 'the writing index, `fresh`: served at once by a stale reader merged with the recent writes, or the primary'],
  ] as const) {
    const root = await tempDir()
    const writer = await openIndex({ root, shards: 4, ...options })
    const flushEveryRecords = ('freshness' in options ? options.freshness.flushEveryRecords : undefined) ?? defaults.freshness.flushEveryRecords
    await writer.batchPut('bench', 1, [{ ...metaOf(0), msgId: 'v-first', segmentId: 999_999 }])
    const reader = await openIndex({ root, mode: 'reader', readers: { min: 1, max: 1 }, ...(path === refreshing ? { freshness: { followLogs: false } } : {}) })
    const latencies: number[] = []
    /** One per sample, settled with its failure (undefined if none): created beside the writes, awaited after them. */
    const pending: Promise<unknown>[] = []
    let batch = 0
    let batches = 0
    let metas = 0
    const warmupEnd = performance.now() + warmupMs
    // The measured window: from the first write begun after the warm-up to the last write's acknowledgement.
    let start = Infinity
    let end = 0
    try {
      while (start === Infinity || end - start < durationMs) {
        const batchMetas = Array.from({ length: 100 }, (_, i) => metaOf(batch * 100 + i))
        const begun = performance.now()
        if (start === Infinity && begun >= warmupEnd) start = begun
        const measured = begun >= start
        const { token } = await writer.batchPut('bench', 1, batchMetas)
        const acked = performance.now()
        end = acked
        if (measured) {
          metas += batchMetas.length
          batches++
        }
        // Sample every 10th batch: one read at a time per sample, in flight beside the writes.
        if (batch % 10 === 0) {
          const probe = batchMetas[50]!.msgId
          const answer = path.startsWith('reader') ? reader.getByMsgId('bench', 1, probe, { after: token }) : writer.getByMsgId('bench', 1, probe)
          // The failure is kept as a value at once: a sample failing while the loop still writes (or a write failing
          // first, so that nobody awaits the samples) would otherwise be an unhandled rejection.
          pending.push(
            answer.then(
              (m) => {
                if (m?.msgId !== probe) return new Error(`reader missed ${probe}`)
                if (measured) latencies.push(performance.now() - acked)
                return undefined
              },
              (e: unknown) => e,
            ),
          )
        }
        batch++
      }
      const failed = (await Promise.all(pending)).find((e) => e !== undefined)
      if (failed !== undefined) throw failed
    } finally {
      await reader.close()
      await writer.close()
    }
    if (latencies.length === 0) throw new Error(`visibility (${path}): no sample after a warm-up of ${warmupMs} ms and ${durationMs} ms`)
    const elapsed = (end - start) / 1000
    const sorted = Float64Array.from(latencies).sort()
    rows.push({
      label,
      path,
      flushEveryRecords,
      batches,
      metasPerSecond: metas / elapsed,
      samples: latencies.length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? 0,
    })
    progress(`visibility (${path}, ${label}): ${latencies.length} samples`)
  }
  return rows
}
