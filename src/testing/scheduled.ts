/**
 * Real engine calls whose completion a fast-check scheduler releases: the interleavings of a model-based run are the
 * scheduler's to choose (and to replay from a seed), while every call still runs on real RocksDB.
 */
import type fc from 'fast-check'
import { rocksEngine, type Engine, type KeyRange } from '../engine.js'

/**
 * Lets the scheduler `s` decide when the caller sees the outcome of `call`, a real engine call already running.
 *
 * `s.schedule(call)` alone leaves a rejection of `call` unhandled: fast-check subscribes to a scheduled promise only
 * when it releases it, and a real call may reject long before that (a write on a handle that was closed meanwhile
 * rejects at once with "RocksDB session is closed") or never be released at all (the run ended first). Node reports
 * such a rejection as soon as the microtask queue drains, and a test runner then fails the whole run. So the outcome
 * is taken here, as a value, the moment the call settles, and becomes a rejection again only for the caller, once
 * the scheduler releases it. An outcome never released is dropped together with the caller still waiting for it.
 */
export const released = <T>(s: fc.Scheduler, call: Promise<T>, label: string): Promise<T> =>
  s
    .schedule(
      call.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
      label,
    )
    .then((outcome) => (outcome.ok ? outcome.value : Promise.reject(outcome.error)))

/** An engine whose calls' completions a scheduler releases (see {@link scheduledEngine}). */
export interface ScheduledEngine extends Engine {
  /**
   * Resolves once no real call of this engine is running (their outcomes may still wait for the scheduler), after
   * at least `turns` (default 3) event-loop turns in a row without a real call running or starting: real I/O that
   * leads to an engine call (a directory check before an open) gets its turn. Never rejects. Await it in a command
   * to let the real I/O the command started finish, so that the scheduler, not the speed of the disk, chooses
   * what is released first.
   */
  idle(turns?: number): Promise<void>
  /** How many calls' outcomes the scheduler holds now (not released yet). Optional: a wrapper may leave it out. */
  unreleased?(): number
}

/**
 * `inner` (rocksdb-native by default) with the completion of every open, write, MultiGet and flush released by the
 * scheduler `s` (labelled `open primary`, `write`, `getMany on reader`, `flush`, ...): writes and flushes end in
 * every order. Iteration, snapshots and closes run unscheduled. Wrap it in a `FaultInjector` to inject faults too (as `withTempIndex` does).
 */
export const scheduledEngine = (s: fc.Scheduler, inner: Engine = rocksEngine): ScheduledEngine => {
  const running = new Set<Promise<unknown>>()
  let started = 0
  let unreleased = 0
  /** Starts `call` (a real call), counts it as running until it settles, and lets `s` release its outcome. */
  const run = <T>(call: () => Promise<T>, label: string): Promise<T> => {
    const p = call()
    started++
    const tracked = p.then(
      () => undefined,
      () => undefined,
    )
    running.add(tracked)
    void tracked.finally(() => running.delete(tracked))
    unreleased++
    const out = released(s, p, label)
    void out.then(
      () => unreleased--,
      () => unreleased--,
    )
    return out
  }
  return {
    unreleased: () => unreleased,
    idle: async (turns = 3) => {
      for (let quiet = 0; quiet < turns; ) {
        const before = started
        await Promise.all(running)
        await new Promise<void>((resolve) => setImmediate(resolve))
        quiet = running.size === 0 && started === before ? quiet + 1 : 0
      }
    },
    open: async (path, opts) => {
      const role = opts.readOnly ? 'reader' : 'primary'
      const handle = await run(() => inner.open(path, opts), `open ${role}`)
      return {
        path: handle.path,
        readOnly: handle.readOnly,
        getMany: (keys) => run(() => handle.getMany(keys), `getMany on ${role}`),
        ...(handle.getManySettled === undefined ? {} : { getManySettled: (keys: readonly Uint8Array[]) => run(() => handle.getManySettled!(keys), `getManySettled on ${role}`) }),
        write: (ops) => run(() => handle.write(ops), 'write'),
        iterate: (range) => handle.iterate(range),
        ...(handle.iterateChunks === undefined ? {} : { iterateChunks: (range: KeyRange) => handle.iterateChunks!(range) }),
        withSnapshot: (fn) => handle.withSnapshot(fn),
        flush: () => run(() => handle.flush(), 'flush'),
        property: (name) => handle.property(name),
        close: () => handle.close(),
      }
    },
  }
}
