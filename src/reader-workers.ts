/**
 * Readers off the main thread (`readers.placement: 'worker'`): an {@link Engine} whose handles live in worker threads
 * (src/reader-worker.mjs, rocksdb-native there) and implement {@link StorageHandle} on the main thread. The runtime
 * opens every reader through it (under its FaultInjector, so injected faults apply as they do in process); the
 * primaries stay in process.
 *
 * - A call is one message: `getMany`/`getManySettled` send every key in one transferred buffer and get every value
 *   back in one; `iterate` reads chunks of entries (the worker reads a chunk ahead per request, 64 entries first, then
 *   twice as many each time up to 1,024) and destroys its iterator on `return()`; `withSnapshot` on a read-only handle
 *   is the handle itself (its view never changes), as in process.
 * - Errors are the binding's, carried as data and classified here by `storageFailure`: the same `reason`, `message`
 *   and `path` as the in-process handle gives.
 * - A worker that crashes or exits fails every pending and later call on its handles with a transient
 *   `StorageFailure` (reason `io`): their readers fault and are restarted by their supervisor, and the reopened
 *   readers go to a new worker. Closing a handle of a dead worker resolves (its instance died with the thread).
 * - `close()` (the index closing, after its handles were released) ends the threads. An idle thread does not keep the
 *   process alive (it is referenced only while calls are pending).
 */
import { Worker } from 'node:worker_threads'
import { bindingOptions, iteratorOptions, releasedDuringIteration, type Engine, type Entry, type KeyRange, type OpenOptions, type ReadView, type SettledValues, type StorageHandle, type WriteOp } from './engine.js'
import { StorageFailure, storageFailure } from './errors.js'

/** The worker's entry: next to this module, in src/ under tsx and vitest, in dist/src/ once built. */
const entry = new URL('./reader-worker.mjs', import.meta.url)

/**
 * The worker's Node flags: the process's, without `--input-type` (it applies to `-e` and stdin input only, and a
 * worker started from a file refuses it: `node --input-type=module -e "..."` would otherwise crash every worker).
 */
const workerExecArgv = (): string[] => {
  const flags: string[] = []
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    if (flag === '--input-type') i++
    else if (!flag.startsWith('--input-type=')) flags.push(flag)
  }
  return flags
}

/** Entries the worker reads for the first chunk of an iteration, and at most per chunk later on. */
const firstChunk = 64
const maxChunk = 1_024

/** The binding's own words for a call on a closed instance (what the in-process handle reports then). */
const sessionClosed = 'RocksDB session is closed'

/** An error as it crosses from the worker: plain data. */
interface CrossedError {
  readonly name?: string
  readonly message?: string
  readonly code?: unknown
  readonly cause?: CrossedError
  readonly errors?: readonly CrossedError[]
  readonly value?: string
}

/** A worker's answer to one request. */
interface Reply {
  readonly id: number
  readonly error?: CrossedError
  readonly h?: number
  readonly it?: number
  readonly buf?: ArrayBuffer
  readonly count?: number
  readonly done?: boolean
  readonly errors?: readonly (readonly [number, CrossedError])[]
  readonly value?: string
}

/** The binding's error back from its data: same class (Error or AggregateError), name, message, code and cause. */
const revive = (e: CrossedError): unknown => {
  if (e.value !== undefined) return e.value
  const error =
    e.errors !== undefined
      ? new AggregateError(e.errors.map(revive), e.message)
      : new Error(e.message, e.cause === undefined ? undefined : { cause: revive(e.cause) })
  if (e.name !== undefined) error.name = e.name
  if (e.code !== undefined) (error as Error & { code?: unknown }).code = e.code
  return error
}

/** One worker thread and the calls waiting for its answers. */
class Thread {
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: StorageFailure) => void; path: string }>()
  #next = 1
  /** Why it is gone (set once, when it exits or crashes); every call fails with it from then on. */
  #gone: string | undefined
  /** Handles open on it, each with what to call if the thread goes (see {@link ReaderWorkers.open}). */
  readonly handles = new Map<WorkerHandle, ((failure: StorageFailure) => void) | undefined>()

  constructor(
    readonly label: string,
    onGone: (thread: Thread) => void,
  ) {
    this.#worker = new Worker(entry, { name: `rockvisor reader worker (${label})`, execArgv: workerExecArgv() })
    this.#worker.unref()
    this.#worker.on('message', (reply: Reply) => {
      const call = this.#pending.get(reply.id)
      if (call === undefined) return
      this.#pending.delete(reply.id)
      if (this.#pending.size === 0) this.#worker.unref()
      call.resolve(reply)
    })
    this.#worker.on('error', (e: Error) => this.#end(`crashed: ${e.message}`, e, onGone))
    this.#worker.on('exit', (code: number) => this.#end(`exited with code ${code}`, undefined, onGone))
  }

  get alive(): boolean {
    return this.#gone === undefined
  }

  /** Calls waiting for an answer. */
  get pending(): number {
    return this.#pending.size
  }

  /** The failure of a call on `path` once the thread is gone. */
  failure(path: string, cause?: unknown): StorageFailure {
    return new StorageFailure({
      reason: 'io',
      path,
      ...(cause === undefined ? {} : { cause }),
      message: `the reader worker thread of ${this.label} ${this.#gone ?? 'is gone'}: the read on ${path} did not complete; its reader restarts on a new worker thread`,
    })
  }

  #end(why: string, cause: unknown, onGone: (thread: Thread) => void): void {
    if (this.#gone !== undefined) return
    this.#gone = why
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    for (const call of pending) call.reject(this.failure(call.path, cause))
    // Every handle still open hears of it now, before any failed call is answered (those settle later).
    for (const [handle, gone] of this.handles) {
      try {
        gone?.(this.failure(handle.path, cause))
      } catch {
        // A listener's failure must not keep the others from hearing of it.
      }
    }
    onGone(this)
  }

  /** Sends one request (its buffers transferred); resolves with the answer, or rejects with a StorageFailure. */
  call(path: string, request: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.#gone !== undefined) return Promise.reject(this.failure(path))
    const id = this.#next++
    return new Promise<Reply>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref()
      this.#pending.set(id, { resolve, reject, path })
      this.#worker.postMessage({ ...request, id }, transfer)
    }).then((reply) => {
      if (reply.error !== undefined) throw storageFailure(path, revive(reply.error))
      return reply
    })
  }

  /** Sends a request that gets no answer (ignored once the thread is gone). */
  post(request: Record<string, unknown>): void {
    if (this.#gone === undefined) this.#worker.postMessage(request)
  }

  /** Ends the thread (as a crash would, when the handles are not closed first): resolves once it exited. */
  async terminate(): Promise<void> {
    await this.#worker.terminate()
  }
}

/** Every key in one buffer: n uint32 lengths, then the bytes. */
const packKeys = (keys: readonly Uint8Array[]): ArrayBuffer => {
  const n = keys.length
  let bytes = 0
  for (let i = 0; i < n; i++) bytes += keys[i]!.length
  const buf = new ArrayBuffer(4 * n + bytes)
  const lengths = new Uint32Array(buf, 0, n)
  const out = new Uint8Array(buf)
  let at = 4 * n
  for (let i = 0; i < n; i++) {
    const key = keys[i]!
    lengths[i] = key.length
    out.set(key, at)
    at += key.length
  }
  return buf
}

/** The values of a `get` answer: views of its buffer (no copy), `undefined` where absent or failed. */
const unpackValues = (buf: ArrayBuffer, n: number): (Uint8Array | undefined)[] => {
  const lengths = new Int32Array(buf, 0, n)
  const values: (Uint8Array | undefined)[] = new Array(n)
  let at = 4 * n
  for (let i = 0; i < n; i++) {
    const length = lengths[i]!
    if (length < 0) continue
    values[i] = Buffer.from(buf, at, length)
    at += length
  }
  return values
}

/** The entries of an iteration chunk: views of its buffer. */
const unpackEntries = (buf: ArrayBuffer, count: number): Entry[] => {
  const lengths = new Uint32Array(buf, 0, 2 * count)
  const entries: Entry[] = new Array(count)
  let at = 8 * count
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(buf, at, lengths[2 * i]!)
    at += key.length
    const value = Buffer.from(buf, at, lengths[2 * i + 1]!)
    at += value.length
    entries[i] = { key, value }
  }
  return entries
}

/** A handle whose RocksDB instance lives in a worker thread. */
class WorkerHandle implements StorageHandle {
  #closing: Promise<void> | undefined
  constructor(
    private readonly thread: Thread,
    private readonly id: number,
    readonly path: string,
  ) {}

  readonly readOnly = true

  /** A call after close, failed here as the binding fails it in process. */
  #closed(): StorageFailure {
    return storageFailure(this.path, new Error(sessionClosed))
  }

  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    const { values, errors } = await this.getManySettled(keys)
    // As in process: the first key that failed fails the call.
    const failed = errors?.find((e) => e !== undefined)
    if (failed !== undefined) throw failed
    return values
  }

  async getManySettled(keys: readonly Uint8Array[]): Promise<SettledValues> {
    const n = keys.length
    if (n === 0) return { values: [] }
    if (this.#closing !== undefined) throw this.#closed()
    const buf = packKeys(keys)
    const reply = await this.thread.call(this.path, { op: 'get', h: this.id, n, buf }, [buf])
    const values = unpackValues(reply.buf!, n)
    if (reply.errors === undefined) return { values }
    const errors: (StorageFailure | undefined)[] = new Array(n)
    for (const [i, e] of reply.errors) errors[i] = storageFailure(this.path, revive(e))
    return { values, errors }
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return
    if (this.#closing !== undefined) throw this.#closed()
    await this.thread.call(this.path, { op: 'write', h: this.id, ops })
  }

  async *iterate(range: KeyRange): AsyncIterable<Entry> {
    if (this.#closing !== undefined) throw this.#closed()
    // The worker's iterator reads natively as the in-process one does; `chunk` is what it sends per message.
    const native = iteratorOptions(range)
    let chunk = Math.min(firstChunk, Math.max(1, range.limit ?? firstChunk))
    let it: number | undefined
    let done = false
    try {
      let reply = await this.thread.call(this.path, { op: 'iter', h: this.id, range: native, chunk })
      it = reply.it
      for (;;) {
        done = reply.done === true
        for (const entry of unpackEntries(reply.buf!, reply.count!)) yield entry
        if (done || this.#closing !== undefined) break
        chunk = Math.min(maxChunk, chunk * 2)
        reply = await this.thread.call(this.path, { op: 'next', it, chunk })
      }
      if (this.#closing !== undefined) throw new Error('the handle was closed during the iteration')
    } catch (e) {
      // A gone thread's failure stays what it is; otherwise as in process (see RocksHandle.iterate).
      if (this.#closing === undefined || (e instanceof StorageFailure && !this.thread.alive)) throw storageFailure(this.path, e)
      throw releasedDuringIteration(this.path, e)
    } finally {
      // Ended early (`break`, `return()`, a failure): the worker destroys the iterator.
      if (it !== undefined && !done) this.thread.post({ op: 'endIter', it })
    }
  }

  async withSnapshot<T>(fn: (view: ReadView) => Promise<T>): Promise<T> {
    // A read-only instance never changes: it is its own snapshot, as in process (only read-only opens are placed here).
    return fn(this)
  }

  async flush(): Promise<void> {
    if (this.#closing !== undefined) throw this.#closed()
    await this.thread.call(this.path, { op: 'flush', h: this.id })
  }

  async property(name: string): Promise<string> {
    if (this.#closing !== undefined) throw this.#closed()
    return (await this.thread.call(this.path, { op: 'property', h: this.id, name })).value!
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        // A thread that is gone took its instance with it: nothing is left to close.
        if (this.thread.alive) await this.thread.call(this.path, { op: 'close', h: this.id }).catch((e: unknown) => {
          if (this.thread.alive) throw e
        })
      } finally {
        this.thread.handles.delete(this)
      }
    })()
    return this.#closing
  }
}

/** Reader worker pools alive in this process (a test hook: find an index's pool by its label, the root). */
export const readerWorkerPools = new Set<ReaderWorkers>()

/**
 * An {@link Engine} that opens every handle in one of `size` worker threads (the one with the fewest open handles),
 * starting a thread on the first open after it died. One per index (`label`: its root). `close()` ends the threads.
 */
export class ReaderWorkers implements Engine {
  /** Instances opened in reader worker threads by this process so far (every pool). */
  static opened = 0
  readonly #threads: (Thread | undefined)[]
  #closed = false

  constructor(
    readonly label: string,
    size = 1,
  ) {
    this.#threads = new Array<Thread | undefined>(Math.max(1, size)).fill(undefined)
    readerWorkerPools.add(this)
  }

  /** Worker threads running now. */
  get threads(): number {
    return this.#threads.filter((t) => t?.alive === true).length
  }

  /** Calls waiting for a running thread's answer. */
  get pending(): number {
    return this.#threads.reduce((sum, t) => sum + (t?.alive === true ? t.pending : 0), 0)
  }

  /** Handles open on running threads. */
  get handles(): number {
    return this.#threads.reduce((sum, t) => sum + (t?.alive === true ? t.handles.size : 0), 0)
  }

  /**
   * Opens `path` read-only in a worker thread. A read-write open is refused (`io`): primaries stay in process.
   * `onGone` is called (once, synchronously) if the thread exits or crashes while the handle is open, with the
   * failure its calls get from then on: the runtime faults the handle's reader at once, so that a retry does not go
   * to another handle of the same dead thread.
   */
  async open(path: string, options: OpenOptions, onGone?: (failure: StorageFailure) => void): Promise<StorageHandle> {
    if (!options.readOnly) throw new StorageFailure({ reason: 'io', path, message: `a reader worker thread opens read-only instances only, not ${path} read-write: primaries stay in process` })
    if (this.#closed) throw new StorageFailure({ reason: 'io', path, message: `the reader worker threads of ${this.label} are closed: ${path} was not opened` })
    const thread = this.#pick()
    const reply = await thread.call(path, { op: 'open', path, options: bindingOptions(options) })
    ReaderWorkers.opened++
    const handle = new WorkerHandle(thread, reply.h!, path)
    thread.handles.set(handle, onGone)
    return handle
  }

  /** The running thread with the fewest handles, or a new one in a free or dead slot. */
  #pick(): Thread {
    let best: Thread | undefined
    for (let i = 0; i < this.#threads.length; i++) {
      let t = this.#threads[i]
      if (t === undefined || !t.alive) {
        t = new Thread(this.label, (gone) => {
          if (this.#threads[i] === gone) this.#threads[i] = undefined
        })
        this.#threads[i] = t
      }
      if (best === undefined || t.handles.size < best.handles.size) best = t
    }
    return best!
  }

  /** What the running threads hold open, by their own count: RocksDB instances and iterators (a test hook). */
  async census(): Promise<{ handles: number; iterators: number }> {
    const counts = await Promise.all(this.#threads.map((t) => (t?.alive === true ? t.call(this.label, { op: 'census' }) : undefined)))
    return counts.reduce((sum, c) => ({ handles: sum.handles + (c?.h ?? 0), iterators: sum.iterators + (c?.it ?? 0) }), { handles: 0, iterators: 0 })
  }

  /** Test hook: terminates every running thread, as a crash would (their handles' calls fail from now on). */
  async terminate(): Promise<void> {
    await Promise.all(this.#threads.map((t) => t?.terminate()))
  }

  /** Ends the threads: closes what is still open there, then terminates them. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true
    readerWorkerPools.delete(this)
    await Promise.all(
      this.#threads.map(async (t) => {
        if (t === undefined) return
        await t.call(this.label, { op: 'shutdown' }).catch(() => undefined)
        await t.terminate()
      }),
    )
  }
}
