/**
 * A test index on real RocksDB in a temp dir, driven by a ManualClock, with its lifecycle events recorded.
 * Waiting is on events and conditions that real I/O completes, never on wall-clock sleeps.
 */
import { afterEach } from 'vitest'
import type { InspectionEvent } from 'xstate'
import { FaultInjector, ManualClock, openIndex, parseToken, type Engine, type Index, type IndexOptions, type LifecycleEvent } from '../../src/index.js'
import { testPlacement } from './placement.js'
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

/** Opens a harness; `engine` is the engine under the harness's FaultInjector (rocksdb-native by default). */
export const openHarness = async (options: Partial<IndexOptions> = {}, engine?: Engine): Promise<Harness> => {
  const root = await tempDir()
  const clock = new ManualClock(1_000_000)
  const faults = new FaultInjector(engine)
  const events: LifecycleEvent[] = []
  const waiters = new Set<{ pred: (e: LifecycleEvent) => boolean; resolve: (e: LifecycleEvent) => void }>()
  const index = await openIndex({
    shards: 4,
    random: () => 0,
    ...options,
    // Readers in worker threads or child processes for a whole suite (see ./placement.ts), unless the test chose a placement itself.
    ...(testPlacement.readers === undefined || options.readers?.placement !== undefined ? {} : { readers: { ...options.readers, placement: testPlacement.readers } }),
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

/** What a request came to once it settled: `{ value }` or `{ error }`. */
export interface Outcome<T = unknown> {
  readonly value?: T
  readonly error?: unknown
}

/** Requests tracked by name: `outcomes[name]` is set as each settles (absent while it is pending). */
export const tracker = (): { outcomes: Record<string, Outcome>; track(name: string, p: Promise<unknown>): void } => {
  const outcomes: Record<string, Outcome> = {}
  const track = (name: string, p: Promise<unknown>): void =>
    void p.then(
      (value) => (outcomes[name] = { value }),
      (error: unknown) => (outcomes[name] = { error }),
    )
  return { outcomes, track }
}

/**
 * `p`, or 'still waiting after 5 s': a real-time bound that only turns a request that would wait forever into a clear
 * failure (the expected answer never is that string); it measures nothing.
 */
export const orStillWaiting = <T>(p: Promise<T>): Promise<T | string> =>
  Promise.race([p, new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5_000).unref())])

/** Polls a condition that real I/O will make true (fails if it never does); not a timing assertion. */
export const waitFor = async (cond: () => boolean, limitMs = 10_000): Promise<void> => {
  const start = Date.now()
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error('condition never held')
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/**
 * Settles `p` while moving `clock` in steps of `stepMs` (one step per millisecond of real time, so that real I/O
 * keeps up); returns the outcome and how far the clock moved.
 */
export const drive = async <T>(clock: ManualClock, p: Promise<T>, stepMs = 10): Promise<{ value?: T; error?: unknown; advancedMs: number }> => {
  const start = clock.now()
  let done = false
  const outcome = p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  void outcome.finally(() => (done = true))
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1))
    if (done) break
    await clock.advance(stepMs)
  }
  return { ...(await outcome), advancedMs: clock.now() - start }
}

/** The stats of the shard holding (topic, partition); throws if it does not exist yet. */
export const shardStats = (h: Harness, topic: string, partition: number) => {
  const s = h.index.stats().shards.find((x) => x.id === h.shardId(topic, partition))
  if (!s) throw new Error(`no stats for ${h.shardId(topic, partition)}`)
  return s
}

/**
 * Reads (topic, partition) until `readers` of its readers' views (one by default) reflect the write of `token`: a
 * stale reader refreshes only when a read needs it, and the reader may still be opening at the first read. The read
 * is a (fresh) time range over all time, which every write touches: a point read that a reader's view merged with
 * the memory of recent writes answers asks no refresh, nor does a range read of a window no write touched. `msgId`, a meta of that write, is looked up too. Fails if that never happens.
 */
export const untilReaderCovers = async (h: Harness, topic: string, partition: number, token: string, msgId: string, readers = 1): Promise<void> => {
  const sequence = parseToken(token).sequence
  const views = () => h.index.stats().shards.find((x) => x.id === h.shardId(topic, partition))?.views ?? []
  const covered = () => views().filter((v) => v.sequence >= sequence).length >= readers
  for (let i = 0; i < 1_000 && !covered(); i++) {
    await Promise.all([h.index.getRangeByTime(topic, partition, 0, Number.MAX_SAFE_INTEGER), h.index.getByMsgId(topic, partition, msgId)])
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  if (!covered()) throw new Error(`${readers === 1 ? 'no reader' : `fewer than ${readers} readers`} of ${h.shardId(topic, partition)} ever reached sequence ${sequence}`)
}

/**
 * `openHarness` for the tests of one file: every harness it opens is disposed of after the test that opened it
 * (the last opened first).
 */
export const harnessPerTest = (): ((...args: Parameters<typeof openHarness>) => Promise<Harness>) => {
  let open: Harness[] = []
  afterEach(async () => {
    for (const h of open.reverse()) await h.dispose()
    open = []
  })
  return async (...args) => {
    const h = await openHarness(...args)
    open.push(h)
    return h
  }
}

/**
 * A gate the test holds calls at: `pass()` waits while the gate is held (each waiting call is let go by `open()`,
 * which also stops holding); `waiting` counts the calls held now.
 */
export const gate = (held = true) => {
  const waiters: (() => void)[] = []
  let holding = held
  return {
    get waiting(): number {
      return waiters.length
    },
    hold(): void {
      holding = true
    },
    open(): void {
      holding = false
      waiters.splice(0).forEach((go) => go())
    },
    pass: (): Promise<void> => (holding ? new Promise<void>((go) => waiters.push(go)) : Promise.resolve()),
  }
}
