/**
 * A real index in a fresh temporary directory, with a fault injector and a manual clock, that is always closed and
 * removed afterwards: {@link withTempIndex}.
 */
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LifecycleEvent } from '../../actors/events.js'
import { ManualClock } from '../clock.js'
import { FaultInjector } from '../faults.js'
import { InvalidInput, openIndex, type Index } from '../index.js'
import type { IndexOptions } from '../options.js'

/** Options of {@link withTempIndex}: an index's options, without `root` (the helper makes one). */
export type TempIndexOptions = Omit<Partial<IndexOptions>, 'root' | 'mode' | 'clock'> & {
  /** The clock of every index opened. Default: a new ManualClock starting at `startAt`. */
  readonly clock?: ManualClock
  /** Where the new manual clock starts, ms. Default 0. Ignored when `clock` is given. */
  readonly startAt?: number
  /**
   * Wraps every open and close the helper performs (the scheduler's `waitFor` in a scheduled run, so that the
   * scheduler releases the engine calls those wait on). Default: none.
   */
  readonly waitFor?: <T>(p: Promise<T>) => Promise<T>
}

/** A lifecycle event of an index opened by {@link withTempIndex}. */
export interface TempIndexEvent {
  readonly at: number
  readonly index: 'writer' | 'reader'
  readonly indexNumber: number
  readonly event: LifecycleEvent
}

/** What a suite run by {@link withTempIndex} gets besides the writer-mode index. */
export interface TempIndex {
  /** The temporary root (removed afterwards). */
  readonly root: string
  /** The index's clock: time moves only with `clock.advance(ms)`. */
  readonly clock: ManualClock
  /** The engine under every index opened here: the real engine (or `options.engine`) wrapped in a FaultInjector. */
  readonly faults: FaultInjector
  /** The writer-mode index now (changes after {@link TempIndex.reopen}). */
  readonly index: Index
  /**
   * Every lifecycle event of every index opened here, in order: the clock time it happened at, the mode of the index
   * that emitted it and that index's number (0 for the first opened here, then 1, ...: a reopened writer is a new
   * index, with supervisors of its own).
   */
  readonly events: readonly TempIndexEvent[]
  /**
   * Opens a reader-mode index on the same root (another process's view, in this process), with the same options,
   * clock and engine. Closed afterwards with the rest.
   */
  openReader(options?: Omit<Partial<IndexOptions>, 'root' | 'mode' | 'clock' | 'engine'>): Promise<Index>
  /**
   * Resolves (or rejects) as `p` does, advancing the clock by `stepMs` (default 20) every millisecond of wall time
   * while `p` is pending, so that backoffs and restarts elapse while real I/O (a reopen) runs, and clock time does not
   * race ahead of it (a request's deadline is clock time too). Rejects with an Error if `p` is still pending after
   * `maxSteps` (default 10,000) steps. Use it for a request that may wait for a restart (after an injected fault, a
   * crash): the clock moves only when told to.
   */
  whileAdvancing<T>(p: Promise<T>, stepMs?: number, maxSteps?: number): Promise<T>
  /**
   * Closes the writer-mode index and opens a new one on the same root; resolves with the new one. Not wrapped in
   * `waitFor`: in a scheduled run, call it from a command (the run's scheduler releases its engine calls).
   */
  reopen(): Promise<Index>
}

/** Liveness guard for the cleanup (wall time, not a timing assertion). */
const closeGuardMs = 10_000

const withinWallTime = <T>(p: Promise<T>, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${closeGuardMs} ms`)), closeGuardMs)))
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

/**
 * Roots of calls still running. A process that exits before they end (an uncaught exception, `process.exit`, a test
 * runner's worker that ends itself) removes them as it exits; one killed by a signal (SIGINT without a handler,
 * SIGTERM, SIGKILL: a test runner stopping a worker after a timeout) cannot, and leaves them in the temp directory
 * as `rockvisor-kit-*`.
 */
const liveRoots = new Set<string>()
process.on('exit', () => {
  for (const root of liveRoots) {
    try {
      rmSync(root, { recursive: true, force: true })
    } catch {
      // Nothing more can be done while exiting.
    }
  }
})

/**
 * Opens a writer-mode index on a fresh temporary root, with a {@link ManualClock} (starting at `options.startAt`,
 * default 0), a {@link FaultInjector} over `options.engine` (rocksdb-native by default) and `random: () => 0.5` unless
 * given; runs `suite(index, ctx)`; then, whatever the suite did (resolved, threw, left requests in flight), closes
 * every index opened through it and removes the root. Resolves with what the suite resolved with. Rejects with what
 * the suite threw (even if a close failed too); if only closing failed (or hung for 10 s of wall time), with an
 * AggregateError of those failures. An open that fails (bad options: InvalidInput) rejects after the root is removed.
 * Each call has its own root, clock and injector: calls may run concurrently.
 */
export const withTempIndex = async <T>(options: TempIndexOptions, suite: (index: Index, ctx: TempIndex) => Promise<T>): Promise<T> => {
  // Checked before anything is made: a misuse is InvalidInput, as openIndex's own.
  if (typeof options !== 'object' || options === null) throw new InvalidInput({ field: 'options', message: `options: withTempIndex takes an options object (possibly {}), got ${options === null ? 'null' : typeof options}` })
  if (typeof suite !== 'function') throw new InvalidInput({ field: 'suite', message: `suite: withTempIndex takes a function (index, ctx) => Promise, got ${typeof suite}` })
  const { startAt, waitFor = (p) => p, ...indexOptions } = options
  // (Made before the root: a bad startAt is InvalidInput, with nothing to remove.)
  const clock = indexOptions.clock ?? new ManualClock(startAt ?? 0)
  const root = await mkdtemp(join(tmpdir(), 'rockvisor-kit-'))
  liveRoots.add(root)
  const faults = indexOptions.engine instanceof FaultInjector ? indexOptions.engine : new FaultInjector(indexOptions.engine)
  const events: TempIndexEvent[] = []
  const opened: Index[] = []
  const open = async (extra: Partial<IndexOptions>, kind: 'writer' | 'reader', wait = waitFor): Promise<Index> => {
    const index = await wait(openIndex({ random: () => 0.5, ...indexOptions, ...extra, root, clock, engine: faults, mode: kind }))
    const indexNumber = opened.push(index) - 1
    index.subscribe((event) => void events.push({ at: clock.now(), index: kind, indexNumber, event }))
    return index
  }
  const closeAll = async (): Promise<void> => {
    const results = await Promise.allSettled(opened.map((i) => withinWallTime(waitFor(i.close()), `closing the index at ${root}`)))
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed.length > 0) throw new AggregateError(failed.map((f) => f.reason), `withTempIndex: ${failed.length} index(es) failed to close`)
  }
  let result: { ok: true; value: T } | { ok: false; error: unknown } | undefined
  try {
    let writer = await open({}, 'writer')
    const ctx: TempIndex = {
      root,
      clock,
      faults,
      events,
      get index() {
        return writer
      },
      openReader: (extra = {}) => open(extra, 'reader'),
      whileAdvancing: async (p, stepMs = 20, maxSteps = 10_000) => {
        if (typeof (p as { then?: unknown } | null)?.then !== 'function') {
          throw new InvalidInput({
            field: 'request',
            message: `request: whileAdvancing takes a promise, got ${p === null ? 'null' : typeof p} (a scan is an async iterable: pass an async function's promise that consumes it)`,
          })
        }
        let settled = false
        const watched = Promise.resolve(p).finally(() => (settled = true))
        watched.catch(() => undefined)
        await clock.advance(0)
        for (let step = 0; !settled; step++) {
          if (step >= maxSteps) throw new Error(`whileAdvancing: still pending after ${maxSteps} steps of ${stepMs} ms of clock time`)
          await new Promise((resolve) => setTimeout(resolve, 1))
          if (!settled) await clock.advance(stepMs)
        }
        return watched
      },
      reopen: async () => {
        await writer.close()
        writer = await open({}, 'writer', (p) => p)
        return writer
      },
    }
    result = { ok: true, value: await suite(writer, ctx) }
  } catch (error) {
    result = { ok: false, error }
  }
  let cleanupError: unknown
  try {
    await closeAll()
  } catch (e) {
    cleanupError = e
  } finally {
    await rm(root, { recursive: true, force: true })
    liveRoots.delete(root)
  }
  if (!result.ok) throw result.error
  if (cleanupError !== undefined) throw cleanupError
  return result.value
}
