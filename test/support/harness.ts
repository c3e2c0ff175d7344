/**
 * A test index on real RocksDB in a temp dir, driven by a ManualClock, with its lifecycle events recorded.
 * Waiting is on events and conditions that real I/O completes, never on wall-clock sleeps.
 */
import type { InspectionEvent } from 'xstate'
import { FaultInjector, ManualClock, openIndex, type Index, type IndexOptions, type LifecycleEvent } from '../../src/index.js'
import { removeDir, tempDir } from './tmp.js'

export interface Harness {
  readonly index: Index
  readonly clock: ManualClock
  readonly faults: FaultInjector
  readonly root: string
  readonly events: LifecycleEvent[]
  /** Resolves with the first event (recorded from now on, or already recorded after `since`) matching `pred`. */
  event(pred: (e: LifecycleEvent) => boolean, since?: number): Promise<LifecycleEvent>
  /** The shard id of (topic, partition). */
  shardId(topic: string, partition: number): string
  /** Closes the index and removes the directory. */
  dispose(): Promise<void>
}

/** Collects XState inspection events of every harness (for the transition-coverage check). */
export const inspectors = new Set<(e: InspectionEvent) => void>()

export const openHarness = async (options: Partial<IndexOptions> = {}): Promise<Harness> => {
  const root = await tempDir()
  const clock = new ManualClock(1_000_000)
  const faults = new FaultInjector()
  const events: LifecycleEvent[] = []
  const waiters = new Set<{ pred: (e: LifecycleEvent) => boolean; resolve: (e: LifecycleEvent) => void }>()
  const index = await openIndex({
    shards: 4,
    random: () => 0,
    ...options,
    root,
    clock,
    engine: faults,
    inspect: (e) => {
      for (const i of inspectors) i(e)
    },
  })
  index.subscribe((e) => {
    events.push(e)
    for (const w of waiters) if (w.pred(e)) (waiters.delete(w), w.resolve(e))
  })
  return {
    index,
    clock,
    faults,
    root,
    events,
    event: (pred, since) => {
      const found = since === undefined ? undefined : events.slice(since).find(pred)
      if (found) return Promise.resolve(found)
      return new Promise((resolve) => waiters.add({ pred, resolve }))
    },
    shardId: (topic, partition) => index.locate(topic, partition).id,
    dispose: async () => {
      await index.close()
      await removeDir(root)
    },
  }
}

/** Polls a condition that real I/O will make true (fails if it never does); not a timing assertion. */
export const waitFor = async (cond: () => boolean, limitMs = 10_000): Promise<void> => {
  const start = Date.now()
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error('condition never held')
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}
