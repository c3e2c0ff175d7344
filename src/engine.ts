/**
 * The storage engine as rockvisor sees it: open a directory read-write or read-only, get many keys at once (one
 * MultiGet), write one atomic batch, iterate a key range, flush, close. `rocksEngine` is the real one (rocksdb-native,
 * RocksDB 10.5); fault injection (src/faults.ts) wraps it; src/reader-workers.ts implements it in a worker thread or
 * a child process (the `readers.placement: 'worker'` and `'process'` options).
 *
 * Every method rejects with {@link StorageFailure} (never a raw binding error).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import RocksDB from 'rocksdb-native'
import { StorageFailure, storageFailure } from './errors.js'
import { nativeSeeker } from './native.js'

/** One entry of a key range. */
export interface Entry {
  readonly key: Uint8Array
  readonly value: Uint8Array
}

/** One operation of an atomic write batch. `delRange` deletes [start, end). */
export type WriteOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array }
  | { readonly type: 'delRange'; readonly start: Uint8Array; readonly end: Uint8Array }

/** A key range; bounds are optional, `limit` caps the entries yielded. */
export interface KeyRange {
  readonly gte?: Uint8Array
  readonly lt?: Uint8Array
  readonly lte?: Uint8Array
  readonly reverse?: boolean
  readonly limit?: number
}

/** What a MultiGet that answers key by key found: a value per key, and the failure of each key that failed. */
export interface SettledValues {
  /** Per key: its value, `undefined` where absent or where the key's read failed. */
  readonly values: (Uint8Array | undefined)[]
  /** Per key: the failure of that key's read, `undefined` where it succeeded. Absent when no key failed. */
  readonly errors?: (StorageFailure | undefined)[]
}

/** An open RocksDB instance. Not usable after `close()`; `close()` is idempotent. */
export interface StorageHandle {
  readonly path: string
  readonly readOnly: boolean
  /** Looks up every key in one MultiGet; `undefined` where absent. Rejects as a whole when any key failed. */
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>
  /**
   * Looks up every key in one MultiGet and answers key by key: a key whose read failed (a corrupted block) fails
   * alone, with its own StorageFailure, and every other key still gets its value. Rejects only when the call as a
   * whole failed (the handle is closed, say). Optional: {@link getManySettled} falls back to `getMany`, where a
   * failed key fails the whole call.
   */
  getManySettled?(keys: readonly Uint8Array[]): Promise<SettledValues>
  /** Applies every op atomically (all or nothing). Rejects on a read-only handle. */
  write(ops: readonly WriteOp[]): Promise<void>
  /** Streams a key range in key order (reverse order with `reverse`), reading ahead in small chunks. */
  iterate(range: KeyRange): AsyncIterable<Entry>
  /**
   * The entries `iterate(range)` yields, in the same order, a chunk at a time: each chunk what one read of the engine
   * returned (never empty). A consumer of many entries pays one step of the iteration per chunk instead of one per
   * entry. Rejects as `iterate` does. Optional: {@link chunksOf} falls back to `iterate`, one entry per chunk.
   */
  iterateChunks?(range: KeyRange): AsyncIterable<readonly Entry[]>
  /**
   * The first key of `range` (its last with `reverse`; `limit` is ignored), or `undefined` when the range is empty:
   * the key `iterate` would yield first, for less (one seek, no stream). Optional: {@link firstKey} falls back to
   * `iterate`. Rejects as `iterate` does.
   */
  firstKey?(range: KeyRange): Promise<Uint8Array | undefined>
  /**
   * Runs `fn` on one consistent view of the data (a RocksDB snapshot), released when `fn` settles: reads made by
   * `fn` see no write that lands meanwhile. Each single `getMany` or `iterate` is consistent on its own already.
   */
  withSnapshot<T>(fn: (view: ReadView) => Promise<T>): Promise<T>
  /** Writes the memtable to a table file (so the WAL a read-only open replays stays short). */
  flush(): Promise<void>
  /** A RocksDB property such as `rocksdb.options-statistics`. */
  property(name: string): Promise<string>
  close(): Promise<void>
}

/**
 * `handle.getManySettled(keys)`, or, for a handle without it, `getMany(keys)`: then a failed key fails the whole call
 * (the promise rejects), as it would for every key.
 */
export const getManySettled = (handle: StorageHandle, keys: readonly Uint8Array[]): Promise<SettledValues> =>
  handle.getManySettled !== undefined ? handle.getManySettled(keys) : handle.getMany(keys).then((values) => ({ values }))

/**
 * `handle.firstKey(range)`, or, for a handle without it, the first key its `iterate(range)` yields (what `firstKey`
 * answers, at the cost of a stream).
 */
export const firstKey = (handle: ReadView, range: KeyRange): Promise<Uint8Array | undefined> =>
  handle.firstKey !== undefined ? handle.firstKey(range) : firstKeyIterating(handle, range)

/** The first key `handle.iterate(range)` yields (what `firstKey` answers, through a stream). */
const firstKeyIterating = async (handle: ReadView, range: KeyRange): Promise<Uint8Array | undefined> => {
  for await (const { key } of handle.iterate({ ...range, limit: 1 })) return key
  return undefined
}

/**
 * `handle.iterateChunks(range)`, or, for a handle without it, the entries of its `iterate(range)` one per chunk.
 */
export const chunksOf = (handle: ReadView, range: KeyRange): AsyncIterable<readonly Entry[]> =>
  handle.iterateChunks !== undefined ? handle.iterateChunks(range) : oneByOne(handle.iterate(range))

async function* oneByOne(entries: AsyncIterable<Entry>): AsyncGenerator<readonly Entry[]> {
  for await (const entry of entries) yield [entry]
}

/** The entries of `chunks`, one at a time (an `iterate` made of an `iterateChunks`). */
export async function* entriesOf(chunks: AsyncIterable<readonly Entry[]>): AsyncGenerator<Entry> {
  for await (const chunk of chunks) for (const entry of chunk) yield entry
}

/**
 * `inner` with some of its calls replaced by `overrides`; every other call goes to `inner` (bound to it). For wrappers
 * that change one or two calls of a handle (recording its writes, holding its reads in a test). A wrapper that
 * replaces `iterate` but not `firstKey` (or `iterateChunks`) gets no `firstKey` (no `iterateChunks`): seeks and
 * scans then go through its `iterate` too.
 */
export const overriding = (
  inner: StorageHandle,
  overrides: Partial<Omit<StorageHandle, 'path' | 'readOnly'>>,
): StorageHandle => ({
  path: inner.path,
  readOnly: inner.readOnly,
  getMany: (keys) => inner.getMany(keys),
  ...(inner.getManySettled === undefined ? {} : { getManySettled: (keys: readonly Uint8Array[]) => inner.getManySettled!(keys) }),
  write: (ops) => inner.write(ops),
  iterate: (range) => inner.iterate(range),
  ...(inner.firstKey === undefined || overrides.iterate !== undefined ? {} : { firstKey: (range: KeyRange) => inner.firstKey!(range) }),
  ...(inner.iterateChunks === undefined || overrides.iterate !== undefined ? {} : { iterateChunks: (range: KeyRange) => inner.iterateChunks!(range) }),
  withSnapshot: (fn) => inner.withSnapshot(fn),
  flush: () => inner.flush(),
  property: (name) => inner.property(name),
  close: () => inner.close(),
  ...overrides,
})

/** The reads of a handle. */
export type ReadView = Pick<StorageHandle, 'getMany' | 'iterate' | 'iterateChunks' | 'firstKey'>

/** How to open a directory. The defaults are in `src/defaults.ts`. */
export interface OpenOptions {
  readonly readOnly: boolean
  /**
   * Whether RocksDB may create a new, empty database when the directory holds none (no `CURRENT` file). Default:
   * false for a read-only open, true otherwise (the behaviour before this option existed). Pass false to open an
   * existing shard: on a directory whose `CURRENT` is gone, `true` makes RocksDB write a fresh `CURRENT` and then
   * delete every table file as obsolete (see README, Repairing a damaged shard), while `false` fails the open
   * (`StorageFailure`) and deletes nothing. Either way a read-write open creates the directory, `LOCK` and the
   * info `LOG` if they are missing: check the directory first (`prepareShardDir`) to create nothing.
   */
  readonly createIfMissing?: boolean
  /** -1 opens every table file up front (required for readers beside a live primary). */
  readonly maxOpenFiles: number
  readonly maxBackgroundJobs: number
  readonly writeBufferSize: number
  readonly maxWriteBufferNumber: number
  readonly enableStatistics: boolean
}

/** Opens storage handles. */
export interface Engine {
  open(path: string, options: OpenOptions): Promise<StorageHandle>
}

/**
 * The options rocksdb-native's constructor gets for `options` (plain data: the reader worker thread, src/reader-workers.ts,
 * opens with the same ones). `createIfMissing` defaults to false for a read-only open, true otherwise.
 */
export const bindingOptions = (options: OpenOptions): Record<string, number | boolean> => ({
  readOnly: options.readOnly,
  createIfMissing: options.createIfMissing ?? !options.readOnly,
  maxOpenFiles: options.maxOpenFiles,
  maxBackgroundJobs: options.maxBackgroundJobs,
  writeBufferSize: options.writeBufferSize,
  maxWriteBufferNumber: options.maxWriteBufferNumber,
  enableStatistics: options.enableStatistics,
})

/**
 * The options of the binding's iterator for `range` (plain data, as the reader worker uses them too): its bounds,
 * direction and limit, reading ahead in chunks of up to 64 entries (bounded memory, few native round trips).
 */
export const iteratorOptions = (range: KeyRange): Record<string, Uint8Array | number | boolean> => ({
  ...(range.gte ? { gte: range.gte } : {}),
  ...(range.lt ? { lt: range.lt } : {}),
  ...(range.lte ? { lte: range.lte } : {}),
  reverse: range.reverse ?? false,
  capacity: Math.max(1, Math.min(64, range.limit ?? 64)),
  ...(range.limit !== undefined ? { limit: range.limit } : {}),
})

/**
 * The failure of an iteration whose handle was closed under it (its reader or primary failed, was retired, or the index
 * closed): not a disk error, reason `io`, `cause` what the cut-short iteration met.
 */
export const releasedDuringIteration = (path: string, cause: unknown): StorageFailure =>
  new StorageFailure({
    reason: 'io',
    path,
    cause,
    message: `the handle of ${path} was released during the iteration (its reader or primary failed, was retired or closed): the scan ended early; the data on disk is not at fault`,
  })

/** Where {@link rocksEngine} opens read-only instances for the opens run inside {@link placingReaders}. */
const readerPlacement = new AsyncLocalStorage<Engine>()

/**
 * Runs `open` (an open through any chain of engines: a FaultInjector, a test's wrapper) so that the read-only
 * instance {@link rocksEngine} opens for it comes from `placement` instead (the reader worker threads or child
 * processes of `readers.placement: 'worker'` or `'process'`); every engine above keeps wrapping the handle.
 * `undefined`: in process.
 */
export const placingReaders = <A>(placement: Engine | undefined, open: () => Promise<A>): Promise<A> =>
  placement === undefined ? open() : readerPlacement.run(placement, open)

/**
 * The real engine: rocksdb-native. A read-only open of a directory that holds no database fails (`missing`), and so
 * does a read-write open with `createIfMissing: false`; a read-write open creates one by default.
 */
export const rocksEngine: Engine = {
  async open(path, options) {
    // A reader placed elsewhere (see placingReaders) opens there.
    const placement = options.readOnly ? readerPlacement.getStore() : undefined
    if (placement !== undefined) return placement.open(path, options)
    const db = new RocksDB(path, bindingOptions(options))
    try {
      await db.ready()
    } catch (e) {
      await db.close().catch(() => undefined)
      throw storageFailure(path, e)
    }
    return new RocksHandle(db, path, options.readOnly)
  },
}

/** Destroys a read batch that was not sent (its keys' promises reject, and are handled by whoever made them). */
const destroy = (batch: { destroy(): void }): void => {
  try {
    batch.destroy()
  } catch {
    // already destroyed
  }
}

class RocksHandle implements StorageHandle {
  #closing: Promise<void> | undefined
  /** Iterators still open: RocksDB's close waits for them, so close() destroys them first. */
  readonly #iterators = new Set<{ destroy(): void }>()
  constructor(
    private readonly db: RocksDB,
    readonly path: string,
    readonly readOnly: boolean,
  ) {}

  async withSnapshot<T>(fn: (view: ReadView) => Promise<T>): Promise<T> {
    // A read-only instance never changes: it is its own snapshot.
    if (this.readOnly) return fn(this)
    let session: RocksDB
    try {
      session = this.db.snapshot()
    } catch (e) {
      throw storageFailure(this.path, e)
    }
    try {
      return await fn(new RocksHandle(session, this.path, true))
    } finally {
      await session.close().catch(() => undefined)
    }
  }

  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    if (keys.length === 0) return []
    let batch: ReturnType<RocksDB['read']> | undefined
    // Every per-key promise gets its handler at once: a key that fails (a corrupted block) rejects its promise, and
    // one left unhandled would end the process.
    let settled: Promise<PromiseSettledResult<Uint8Array | null>[]> | undefined
    try {
      // Even creating the batch throws (a plain Error) once the handle started closing: keep it inside the try.
      batch = this.db.read({ capacity: keys.length })
      settled = Promise.allSettled(keys.map((k) => batch!.get(k)))
      // The batch rejects as a whole when any key failed, after settling every key: report the key's own error.
      const failure = await batch.flush().then(
        () => undefined,
        (e: unknown) => e ?? new Error('read batch failed'),
      )
      const results = await settled
      const values: (Uint8Array | undefined)[] = new Array(results.length)
      for (let i = 0; i < results.length; i++) {
        const r = results[i]!
        if (r.status === 'rejected') throw r.reason
        values[i] = r.value ?? undefined
      }
      if (failure !== undefined) throw failure
      return values
    } catch (e) {
      throw storageFailure(this.path, e)
    } finally {
      batch?.destroy()
    }
  }

  getManySettled(keys: readonly Uint8Array[]): Promise<SettledValues> {
    const n = keys.length
    if (n === 0) return Promise.resolve({ values: [] })
    let batch: ReturnType<RocksDB['read']>
    try {
      // Even creating the batch throws (a plain Error) once the handle started closing. An auto-destroying batch,
      // flushed without a promise of its own (as the binding's own `get` does): it is destroyed once it answered.
      batch = this.db.read({ capacity: n, autoDestroy: true })
    } catch (e) {
      return Promise.reject(storageFailure(this.path, e))
    }
    const path = this.path
    if (n === 1) {
      // One key (a lone read): its own promise's outcome is the answer (handled at once, as below).
      const answer = batch.get(keys[0]!).then(
        (value): SettledValues => ({ values: [value ?? undefined] }),
        (e: unknown): SettledValues => ({ values: [undefined], errors: [storageFailure(path, e)] }),
      )
      try {
        batch.tryFlush()
      } catch (e) {
        destroy(batch)
        return Promise.reject(storageFailure(path, e))
      }
      return answer
    }
    const values: (Uint8Array | undefined)[] = new Array(n)
    let errors: (StorageFailure | undefined)[] | undefined
    return new Promise((resolve, reject) => {
      // The batch settles its keys' promises one after the other, in key order, and each has one reaction (these
      // handlers), so the reactions run in key order too: `next` is the index of the key being answered. One pair
      // of handlers serves every key.
      let next = 0
      const handlers = {
        onValue(value: Buffer | null): void {
          values[next++] = value ?? undefined
          if (next === n) resolve(errors === undefined ? { values } : { values, errors })
        },
        onError(e: unknown): void {
          ;(errors ??= new Array<StorageFailure | undefined>(n))[next++] = storageFailure(path, e)
          if (next === n) resolve({ values, errors })
        },
      }
      // Every key's promise gets its handlers at once: a key that fails (a corrupted block) rejects its own promise,
      // and one left unhandled would end the process.
      for (let i = 0; i < n; i++) batch.get(keys[i]!).then(handlers.onValue, handlers.onError)
      try {
        batch.tryFlush()
      } catch (e) {
        // Not sent: every key's promise is still pending. Fail the call as a whole (destroying the batch rejects
        // the keys' promises, which are handled above).
        reject(storageFailure(path, e))
        destroy(batch)
      }
    })
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return
    let batch: ReturnType<RocksDB['write']> | undefined
    try {
      batch = this.db.write({ capacity: ops.length })
      for (const op of ops) {
        if (op.type === 'put') batch.tryPut(op.key, op.value)
        else if (op.type === 'del') batch.tryDelete(op.key)
        else batch.tryDeleteRange(op.start, op.end)
      }
      await batch.flush()
    } catch (e) {
      throw storageFailure(this.path, e)
    } finally {
      batch?.destroy()
    }
  }

  iterate(range: KeyRange): AsyncIterable<Entry> {
    return entriesOf(this.iterateChunks(range))
  }

  /**
   * Drains the binding's stream a chunk at a time: every entry it holds now, read synchronously, then a wait for its
   * next read (one native read of up to 64 entries). Its async iterator would cost a promise and a turn of microtasks
   * per entry instead: a scan's entries/s rose by half without it (BENCHMARKS.md, section 5).
   */
  async *iterateChunks(range: KeyRange): AsyncIterable<readonly Entry[]> {
    let it: ReturnType<RocksDB['iterator']>
    try {
      it = this.db.iterator(iteratorOptions(range))
    } catch (e) {
      throw storageFailure(this.path, e)
    }
    this.#iterators.add(it)
    // What the stream said since the last look: its error (kept: with no listener an 'error' event would throw, and
    // its destroy below may emit one), its end, its close; `wake` resumes a wait for any of them or for more entries.
    let failure: unknown
    let ended = false
    let closed = false
    let wake: (() => void) | undefined
    const resume = (): void => {
      const w = wake
      wake = undefined
      w?.()
    }
    it.on('error', (e: unknown) => {
      failure ??= e ?? new Error('the iterator failed')
      resume()
    })
    it.on('readable', resume)
    it.on('end', () => {
      ended = true
      resume()
    })
    it.on('close', () => {
      closed = true
      resume()
    })
    // Ended early (the consumer stopped, a failure) or not, the generator's end destroys the stream without waiting
    // for its native close: a range read that wants one entry gets it at once. The handle's close waits for it.
    try {
      for (;;) {
        if (failure !== undefined) throw failure
        const chunk: Entry[] = []
        for (let e = it.read(); e !== null; e = it.read()) chunk.push(e.value === null ? { key: e.key, value: new Uint8Array(0) } : (e as Entry))
        if (chunk.length > 0) {
          yield chunk
          continue
        }
        // At its end the iteration waits for the native iterator's close (as the stream's async iterator does), so
        // that what the iterator counted is in the database's statistics once the consumer has the end.
        if (ended) {
          if (closed) break
          // (The stream destroys itself at its end: this only makes sure.)
          it.destroy()
        } else if (closed) throw failure ?? new Error('the iterator was destroyed before its end')
        await new Promise<void>((resolve) => (wake = resolve))
      }
      if (this.#closing !== undefined) throw new Error('the handle was closed during the iteration')
    } catch (e) {
      if (this.#closing === undefined) throw storageFailure(this.path, e)
      // Not a disk error: the handle was released under the iteration (its reader or primary failed, was retired,
      // or the index closed) and its iterators were ended so that the close would not wait for them.
      throw releasedDuringIteration(this.path, e)
    } finally {
      this.#iterators.delete(it)
      it.destroy()
    }
  }

  firstKey(range: KeyRange): Promise<Uint8Array | undefined> {
    const seek = this.#closing === undefined ? nativeSeeker?.(this.db, range) : undefined
    if (seek === undefined) return firstKeyIterating(this, range)
    return seek.catch((e: unknown) => {
      // As for `iterate`: a handle released under the seek is not a disk error.
      throw this.#closing === undefined ? storageFailure(this.path, e) : releasedDuringIteration(this.path, e)
    })
  }

  async flush(): Promise<void> {
    try {
      await this.db.flush()
    } catch (e) {
      throw storageFailure(this.path, e)
    }
  }

  async property(name: string): Promise<string> {
    try {
      return String(await this.db.getProperty(name))
    } catch (e) {
      throw storageFailure(this.path, e)
    }
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      // An iteration still open (a scan its consumer left unfinished) would keep RocksDB's close waiting: end it.
      for (const it of this.#iterators) it.destroy()
      this.#closing = this.db.close().catch((e: unknown) => {
        throw storageFailure(this.path, e)
      })
    }
    return this.#closing
  }
}
