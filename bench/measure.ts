/**
 * Measurement helpers of the benchmark: a bounded-concurrency driver that times every call with
 * `process.hrtime.bigint()`, percentiles computed from the recorded samples, and number formatting.
 */

/** What one driven run measured: wall time of the whole run and the latency of every call, in nanoseconds. */
export interface Run {
  readonly calls: number
  readonly elapsedNs: number
  readonly latenciesNs: Float64Array
}

/**
 * Calls `task(0) .. task(total - 1)`, keeping at most `concurrency` calls in flight (each worker awaits its call
 * before taking the next index). Stops handing out work at the first failure, waits for the calls in flight, then
 * rethrows it (so nothing is still running against a handle the caller is about to close).
 */
export const drive = async (total: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<Run> => {
  const latencies = new Float64Array(total)
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      const i = next++
      if (i >= total) return
      const t0 = process.hrtime.bigint()
      try {
        await task(i)
      } catch (error) {
        failure ??= { error }
        return
      }
      latencies[i] = Number(process.hrtime.bigint() - t0)
    }
  }
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, total)) }, worker))
  const elapsedNs = Number(process.hrtime.bigint() - start)
  if (failure !== undefined) throw failure.error
  return { calls: total, elapsedNs, latenciesNs: latencies }
}

/** Times one async call, in nanoseconds. */
export const timeNs = async <T>(fn: () => Promise<T>): Promise<{ ns: number; value: T }> => {
  const t0 = process.hrtime.bigint()
  const value = await fn()
  return { ns: Number(process.hrtime.bigint() - t0), value }
}

/** Nearest-rank percentile (p in (0, 100]) of the samples; NaN for none. */
export const percentile = (samples: ArrayLike<number>, p: number): number => {
  const sorted = Float64Array.from(samples).sort()
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]!
}

export const median = (samples: ArrayLike<number>): number => percentile(samples, 50)

/** p50, p99, max and mean of the samples (sorted once). */
export const summarize = (samples: ArrayLike<number>): { p50: number; p99: number; max: number; mean: number } => {
  const sorted = Float64Array.from(samples).sort()
  const at = (p: number) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] ?? Number.NaN
  let sum = 0
  for (const v of sorted) sum += v
  return { p50: at(50), p99: at(99), max: at(100), mean: sorted.length === 0 ? Number.NaN : sum / sorted.length }
}

/** Integer with thousands separators. */
export const int = (n: number): string => Math.round(n).toLocaleString('en-US')

/** Fixed decimals. */
export const fixed = (n: number, digits: number): string => n.toFixed(digits)

/** Nanoseconds as milliseconds. */
export const ms = (ns: number, digits = 2): string => (ns / 1e6).toFixed(digits)

/** Nanoseconds as microseconds (no decimals past 100 µs). */
export const us = (ns: number): string => {
  const v = ns / 1e3
  return v >= 100 ? int(v) : v.toFixed(1)
}

/** Bytes as MiB or KiB. */
export const size = (bytes: number): string =>
  bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`

/** Renders a markdown table. */
export const table = (head: readonly string[], rows: readonly (readonly string[])[], align?: readonly ('l' | 'r')[]): string => {
  const sep = head.map((_, i) => ((align?.[i] ?? 'l') === 'r' ? '---:' : '---'))
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}
