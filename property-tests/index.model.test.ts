/**
 * Invariant: a live index on real RocksDB, under any sequence of writes, retention, reads, crashes of readers and
 * primaries, injected open/read/write failures, load bursts (the pool scales up), clock advances (backoffs, idle
 * retirement, recycling), recovery, and closing and reopening the writer while requests are in flight, in any
 * interleaving of its engine calls the fast-check scheduler chooses, answers every read as the reference model allows
 * under the read's freshness contract, and keeps every supervision invariant:
 * - every request answered correctly, or failed with one of rockvisor's typed errors: `fresh` (and `primary`) reads
 *   of the writer reflect every write it acknowledged before the read; reads of a reader-mode index on the same root
 *   `after` a write's token reflect that write; `bounded` reads (on either index) issued at clock T reflect every
 *   write acknowledged before T - maxStalenessMs; no read reflects a write issued after it completed;
 * - every acknowledged retention deleted exactly what the model held below its bound;
 * - never two read-write handles on one directory;
 * - restarts never exceed the declared intensity (per shard and child kind, counted from the last recovery);
 * - after close: zero native handles open, and a fresh index on the same root holds every acknowledged write.
 *
 * The run, the model and the checks are the kit's (`rockvisor/testing`: `commands.indexModelProperty`), the same a
 * user runs; see src/testing/commands.ts. Replay a failure with MODEL_SEED=<seed>, MODEL_PATH=<path> and, for the
 * shrunk counterexample, MODEL_REPLAY_PATH=<the replayPath printed with it>.
 */
import { fc } from '@fast-check/vitest'
import { expect, it } from 'vitest'
import { commands } from '../src/testing/index.js'

const runs = Number(process.env.MODEL_RUNS ?? 30)
const replay: { seed?: number; path?: string; endOnFailure?: boolean } = process.env.MODEL_SEED === undefined ? {} : { seed: Number(process.env.MODEL_SEED), ...(process.env.MODEL_PATH ? { path: process.env.MODEL_PATH } : {}), endOnFailure: true }

it('should answer like the model and keep every supervision invariant under faults and interleavings', { timeout: 600_000 }, async () => {
  const total = { runs: 0, writes: 0, answered: 0, restarts: 0, injected: 0 }
  const onRun = (r: commands.RunSummary) => {
    total.runs++
    total.writes += r.writes.ok
    total.answered += r.reads.answered
    total.restarts += r.restarts
    total.injected += r.injected
  }
  const replayPath = process.env.MODEL_REPLAY_PATH
  await fc.assert(commands.indexModelProperty({ maxCommands: 40, onRun, ...(replayPath ? { replayPath } : {}) }), { numRuns: runs, ...replay })
  // The runs exercised the system: acknowledged writes, answered reads, restarts and injected faults (over all runs).
  if (replay.seed === undefined) {
    expect(total.runs).toBe(runs)
    expect(Math.min(total.writes, total.answered, total.restarts, total.injected), JSON.stringify(total)).toBeGreaterThan(0)
  }
})

// The same with room for one msgId filter per shard (a filter takes 2 KiB, of 3 KiB): the first partition of a shard
// written (since its primary opened) looks up only the msgIds its filter may hold, the others look up every msgId,
// so both write paths meet the same faults and interleavings.
it('should answer the same when only some partitions have a msgId filter', { timeout: 600_000 }, async () => {
  let writes = 0
  const options = { ...commands.modelRunOptions, writes: { msgIdFilterBytes: 3 * 1024 } }
  await fc.assert(commands.indexModelProperty({ maxCommands: 40, options, onRun: (r) => void (writes += r.writes.ok) }), { numRuns: Math.ceil(runs / 3), ...replay })
  if (replay.seed === undefined) expect(writes).toBeGreaterThan(0)
})
