/**
 * Readers off the main thread (`readers.placement: 'worker'` or `'process'`): an {@link Engine} whose handles live in
 * worker threads or in child processes (both run src/reader-worker.mjs, rocksdb-native there) and implement
 * {@link StorageHandle} on the main thread. The runtime opens every reader through it (under its FaultInjector, so
 * injected faults apply as they do in process); the primaries stay in process.
 *
 * - A call is one message, the same protocol over either channel (a {@link Channel}: a worker's port, or a forked
 *   child's IPC with `serialization: 'advanced'`, where buffers are copied instead of transferred):
 *   `getMany`/`getManySettled` send every key in one buffer and get every value back in one; `iterate` reads chunks
 *   of entries (a chunk ahead per request, 64 entries first, then twice as many each time up to 1,024) and destroys
 *   its iterator on `return()`; `withSnapshot` on a read-only handle is the handle itself (its view never changes),
 *   as in process.
 * - Errors are the binding's, carried as data and classified here by `storageFailure`: the same `reason`, `message`
 *   and `path` as the in-process handle gives.
 * - A worker or child that crashes or exits (a child killed by a signal included) fails every pending and later call
 *   on its handles with a transient `StorageFailure` (reason `io`) naming it: their readers fault and are restarted by
 *   their supervisor, and the reopened readers go to a new one. Closing a handle of a dead one resolves (its instance
 *   died with it).
 * - `close()` (the index closing, after its handles were released) ends them: a `shutdown` request closes what is
 *   still open there, then a thread is terminated and a child disconnected (it exits; killed if it has not within
 *   {@link endGraceMs}). An idle one does not keep the process alive (it, and a child's IPC channel, are referenced
 *   only while calls are pending). A child exits when its IPC channel closes: when its parent goes away.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { bindingOptions, entriesOf, iteratorOptions, releasedDuringIteration, type Engine, type Entry, type KeyRange, type OpenOptions, type ReadView, type SettledValues, type StorageHandle, type WriteOp } from './engine.js'
import { StorageFailure, storageFailure } from './errors.js'

/** The entry of threads and children: next to this module, in src/ under tsx and vitest, in dist/src/ once built. */
const entry = new URL('./reader-worker.mjs', import.meta.url)

/** Flags about the process's own input (`-e`/`-p` code, and its `--input-type`): no worker or child inherits them. */
const inputFlags = new Set(['--input-type', '-e', '--eval', '-p', '--print', '-pe', '-ep'])

/**
 * The inspector's flags, which a child does not inherit either: a second inspector on the parent's port fails, and
 * `--inspect-brk` would stop every child until a debugger attached (its reads would never be answered).
 */
const inspectorFlags = new Set(['--inspect', '--inspect-brk', '--inspect-wait', '--inspect-port', '--debug-port'])

/** Flags whose value may come as the next argument instead of after `=`. */
const valueNext = new Set([...inputFlags, '--inspect-port', '--debug-port'])

/**
 * The Node flags of a worker or child: the process's, without those in `drop` (with their values). `--input-type`
 * applies to `-e` and stdin input only, and a worker or child started from a file refuses it (`node
 * --input-type=module -e "..."` would otherwise crash every one of them); `-e`/`-p` code would run again in every
 * child (before the entry: a script that starts readers would start them again in each child, without end).
 */
const execArgv = (drop: ReadonlySet<string>): string[] => {
  const flags: string[] = []
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    const name = flag.split('=', 1)[0]!
    if (!drop.has(name)) flags.push(flag)
    else if (flag === name && valueNext.has(name)) i++
  }
  return flags
}

/** Where a {@link ReaderWorkers} pool runs its readers: worker threads, or child processes. */
export type ReaderHost = 'worker' | 'process'

/** How failures and refusals name a pool's threads or children. */
const words = {
  worker: { one: 'reader worker thread', many: 'reader worker threads', kind: 'worker thread' },
  process: { one: 'reader child process', many: 'reader child processes', kind: 'child process' },
} as const

/** How long a child may take to exit once disconnected by `close()` before it is killed, ms. */
export const endGraceMs = 5_000

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

/** What a {@link Channel} tells its {@link Host}: an answer, or that the thread or child is gone (once). */
interface ChannelEvents {
  readonly message: (reply: Reply) => void
  readonly gone: (why: string, cause?: unknown) => void
}

/** The link to one worker thread or child process running the entry: the protocol does not depend on which. */
interface Channel {
  /** How failures name it: `reader worker thread`, `reader child process 1234`. */
  readonly name: string
  /** The child's process id (undefined for a thread, or a child that did not start). */
  readonly pid: number | undefined
  /** Sends one request; a thread takes `transfer`'s buffers, a child gets a copy. */
  send(message: object, transfer: ArrayBuffer[]): void
  /** Keeps the process alive (calls are pending), or lets it exit (none is). */
  ref(): void
  unref(): void
  /** Ends it at once, as a crash would: resolves once it exited. */
  kill(): Promise<void>
  /** Ends it after a `shutdown` (nothing is left open there): resolves once it exited. */
  end(): Promise<void>
}

/** A worker thread running the entry. */
const threadChannel = (label: string, events: ChannelEvents): Channel => {
  const worker = new Worker(entry, { name: `rockvisor reader worker (${label})`, execArgv: execArgv(inputFlags) })
  worker.on('message', events.message)
  worker.on('error', (e: Error) => events.gone(`crashed: ${e.message}`, e))
  worker.on('exit', (code: number) => events.gone(`exited with code ${code}`))
  const terminate = async (): Promise<void> => {
    await worker.terminate()
  }
  return {
    name: words.worker.one,
    pid: undefined,
    send: (message, transfer) => worker.postMessage(message, transfer),
    ref: () => worker.ref(),
    unref: () => worker.unref(),
    kill: terminate,
    end: terminate,
  }
}

/**
 * A child process running the entry (`fork`, IPC with `serialization: 'advanced'`: buffers cross, copied). It is
 * gone when it exits: pending calls wait for its exit (which follows a broken channel: the child exits on
 * `disconnect`, and is killed if a send fails), so that their failure says how it ended (a code or a signal).
 */
const processChannel = (label: string, events: ChannelEvents): Channel => {
  // The index's root as its argument: what `ps` shows of it.
  const child: ChildProcess = fork(fileURLToPath(entry), [label], { execArgv: execArgv(new Set([...inputFlags, ...inspectorFlags])), serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const name = `${words.process.one} ${child.pid ?? '(not started)'}`
  let exited = false
  let ending = false
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true
      events.gone(signal === null ? `exited with code ${code}` : `was killed by ${signal}`)
      resolve()
    }),
  )
  child.on('message', events.message)
  child.on('error', (e: Error) => {
    // Not started (no exit will follow); a failed send or kill is handled where it happens.
    if (child.pid === undefined) {
      exited = true
      events.gone(`did not start: ${e.message}`, e)
    }
  })
  // Its channel lost (it died, or closed it) other than by `end`: it exits, or is made to.
  child.on('disconnect', () => ending || void kill())
  const kill = async (): Promise<void> => {
    if (exited) return
    child.ref()
    child.kill('SIGKILL')
    await exit
  }
  return {
    name,
    pid: child.pid,
    send: (message) => {
      // A send that fails (the channel broke) leaves its call pending until the exit that follows.
      child.send(message, (e: Error | null) => {
        if (e) void kill()
      })
    },
    ref: () => {
      child.ref()
      child.channel?.ref()
    },
    unref: () => {
      child.unref()
      child.channel?.unref()
    },
    kill,
    end: async () => {
      if (exited) return
      ending = true
      child.ref()
      // It exits when its channel closes; killed if it has not within the grace.
      const timer = setTimeout(() => void kill(), endGraceMs)
      if (child.connected) child.disconnect()
      await exit
      clearTimeout(timer)
    },
  }
}

/** One worker thread or child process and the calls waiting for its answers. */
class Host {
  readonly #channel: Channel
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: StorageFailure) => void; path: string }>()
  #next = 1
  /** Why it is gone (set once, when it exits or crashes); every call fails with it from then on. */
  #gone: string | undefined
  /** Handles open on it, each with what to call if it goes (see {@link ReaderWorkers.open}). */
  readonly handles = new Map<WorkerHandle, ((failure: StorageFailure) => void) | undefined>()

  constructor(
    readonly label: string,
    readonly host: ReaderHost,
    onGone: (host: Host) => void,
  ) {
    const events: ChannelEvents = {
      message: (reply) => {
        const call = this.#pending.get(reply.id)
        if (call === undefined) return
        this.#pending.delete(reply.id)
        if (this.#pending.size === 0) this.#channel.unref()
        call.resolve(reply)
      },
      gone: (why, cause) => this.#end(why, cause, onGone),
    }
    this.#channel = host === 'worker' ? threadChannel(label, events) : processChannel(label, events)
    this.#channel.unref()
  }

  get alive(): boolean {
    return this.#gone === undefined
  }

  /** The child's process id (undefined for a thread). */
  get pid(): number | undefined {
    return this.#channel.pid
  }

  /** Calls waiting for an answer. */
  get pending(): number {
    return this.#pending.size
  }

  /** The failure of a call on `path` once it is gone. */
  failure(path: string, cause?: unknown): StorageFailure {
    return new StorageFailure({
      reason: 'io',
      path,
      ...(cause === undefined ? {} : { cause }),
      message: `the ${this.#channel.name} of ${this.label} ${this.#gone ?? 'is gone'}: the read on ${path} did not complete; its reader restarts on a new ${words[this.host].kind}`,
    })
  }

  #end(why: string, cause: unknown, onGone: (host: Host) => void): void {
    if (this.#gone !== undefined) return
    this.#gone = why
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    this.#channel.unref()
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

  /** Sends one request (its buffers transferred to a thread); resolves with the answer, or rejects with a StorageFailure. */
  call(path: string, request: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.#gone !== undefined) return Promise.reject(this.failure(path))
    const id = this.#next++
    return new Promise<Reply>((resolve, reject) => {
      this.#channel.send({ ...request, id }, transfer)
      if (this.#pending.size === 0) this.#channel.ref()
      this.#pending.set(id, { resolve, reject, path })
    }).then((reply) => {
      if (reply.error !== undefined) throw storageFailure(path, revive(reply.error))
      return reply
    })
  }

  /** Sends a request that gets no answer (ignored once it is gone). */
  post(request: Record<string, unknown>): void {
    if (this.#gone === undefined) this.#channel.send(request, [])
  }

  /** Ends it at once (as a crash would, when the handles are not closed first): resolves once it exited. */
  kill(): Promise<void> {
    return this.#channel.kill()
  }

  /** Ends it after a `shutdown` request: resolves once it exited. */
  end(): Promise<void> {
    return this.#channel.end()
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

/** A handle whose RocksDB instance lives in a worker thread or a child process. */
class WorkerHandle implements StorageHandle {
  #closing: Promise<void> | undefined
  constructor(
    private readonly host: Host,
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
    const reply = await this.host.call(this.path, { op: 'get', h: this.id, n, buf }, [buf])
    const values = unpackValues(reply.buf!, n)
    if (reply.errors === undefined) return { values }
    const errors: (StorageFailure | undefined)[] = new Array(n)
    for (const [i, e] of reply.errors) errors[i] = storageFailure(this.path, revive(e))
    return { values, errors }
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return
    if (this.#closing !== undefined) throw this.#closed()
    await this.host.call(this.path, { op: 'write', h: this.id, ops })
  }

  iterate(range: KeyRange): AsyncIterable<Entry> {
    return entriesOf(this.iterateChunks(range))
  }

  /** The entries of each message of the worker's iterator, a chunk at a time. */
  async *iterateChunks(range: KeyRange): AsyncIterable<readonly Entry[]> {
    if (this.#closing !== undefined) throw this.#closed()
    // The worker's iterator reads natively as the in-process one does; `chunk` is what it sends per message.
    const native = iteratorOptions(range)
    let chunk = Math.min(firstChunk, Math.max(1, range.limit ?? firstChunk))
    let it: number | undefined
    let done = false
    try {
      let reply = await this.host.call(this.path, { op: 'iter', h: this.id, range: native, chunk })
      it = reply.it
      for (;;) {
        done = reply.done === true
        const entries = unpackEntries(reply.buf!, reply.count!)
        if (entries.length > 0) yield entries
        if (done || this.#closing !== undefined) break
        chunk = Math.min(maxChunk, chunk * 2)
        reply = await this.host.call(this.path, { op: 'next', it, chunk })
      }
      if (this.#closing !== undefined) throw new Error('the handle was closed during the iteration')
    } catch (e) {
      // A gone thread's or child's failure stays what it is; otherwise as in process (see RocksHandle.iterateChunks).
      if (this.#closing === undefined || (e instanceof StorageFailure && !this.host.alive)) throw storageFailure(this.path, e)
      throw releasedDuringIteration(this.path, e)
    } finally {
      // Ended early (`break`, `return()`, a failure): the worker destroys the iterator.
      if (it !== undefined && !done) this.host.post({ op: 'endIter', it })
    }
  }

  async withSnapshot<T>(fn: (view: ReadView) => Promise<T>): Promise<T> {
    // A read-only instance never changes: it is its own snapshot, as in process (only read-only opens are placed here).
    return fn(this)
  }

  async flush(): Promise<void> {
    if (this.#closing !== undefined) throw this.#closed()
    await this.host.call(this.path, { op: 'flush', h: this.id })
  }

  async property(name: string): Promise<string> {
    if (this.#closing !== undefined) throw this.#closed()
    return (await this.host.call(this.path, { op: 'property', h: this.id, name })).value!
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        // A thread or child that is gone took its instance with it: nothing is left to close.
        if (this.host.alive) await this.host.call(this.path, { op: 'close', h: this.id }).catch((e: unknown) => {
          if (this.host.alive) throw e
        })
      } finally {
        this.host.handles.delete(this)
      }
    })()
    return this.#closing
  }
}

/** Reader worker pools alive in this process (a test hook: find an index's pool by its label, the root). */
export const readerWorkerPools = new Set<ReaderWorkers>()

/**
 * An {@link Engine} that opens every handle in one of `size` worker threads, or child processes with `host`
 * `'process'` (the one with the fewest open handles), starting one on the first open after it died. One per index
 * (`label`: its root). `close()` ends them.
 */
export class ReaderWorkers implements Engine {
  /** Instances opened in reader worker threads and child processes by this process so far (every pool). */
  static opened = 0
  readonly #hosts: (Host | undefined)[]
  #closed = false

  constructor(
    readonly label: string,
    size = 1,
    readonly host: ReaderHost = 'worker',
  ) {
    this.#hosts = new Array<Host | undefined>(Math.max(1, size)).fill(undefined)
    readerWorkerPools.add(this)
  }

  /** Worker threads (or child processes) running now. */
  get threads(): number {
    return this.#hosts.filter((t) => t?.alive === true).length
  }

  /** The process ids of the child processes running now (none for threads): a test hook. */
  get pids(): number[] {
    return this.#hosts.flatMap((t) => (t?.alive === true && t.pid !== undefined ? [t.pid] : []))
  }

  /** Calls waiting for a running thread's or child's answer. */
  get pending(): number {
    return this.#hosts.reduce((sum, t) => sum + (t?.alive === true ? t.pending : 0), 0)
  }

  /** Handles open on running threads or children. */
  get handles(): number {
    return this.#hosts.reduce((sum, t) => sum + (t?.alive === true ? t.handles.size : 0), 0)
  }

  /**
   * Opens `path` read-only in a worker thread or child process. A read-write open is refused (`io`): primaries stay
   * in process. `onGone` is called (once, synchronously) if the thread or child exits or crashes while the handle is
   * open, with the failure its calls get from then on: the runtime faults the handle's reader at once, so that a
   * retry does not go to another handle of the same dead one.
   */
  async open(path: string, options: OpenOptions, onGone?: (failure: StorageFailure) => void): Promise<StorageHandle> {
    const { one, many } = words[this.host]
    if (!options.readOnly) throw new StorageFailure({ reason: 'io', path, message: `a ${one} opens read-only instances only, not ${path} read-write: primaries stay in process` })
    if (this.#closed) throw new StorageFailure({ reason: 'io', path, message: `the ${many} of ${this.label} are closed: ${path} was not opened` })
    const host = this.#pick()
    const reply = await host.call(path, { op: 'open', path, options: bindingOptions(options) })
    ReaderWorkers.opened++
    const handle = new WorkerHandle(host, reply.h!, path)
    host.handles.set(handle, onGone)
    return handle
  }

  /** The running thread or child with the fewest handles, or a new one in a free or dead slot. */
  #pick(): Host {
    let best: Host | undefined
    for (let i = 0; i < this.#hosts.length; i++) {
      let t = this.#hosts[i]
      if (t === undefined || !t.alive) {
        t = new Host(this.label, this.host, (gone) => {
          if (this.#hosts[i] === gone) this.#hosts[i] = undefined
        })
        this.#hosts[i] = t
      }
      if (best === undefined || t.handles.size < best.handles.size) best = t
    }
    return best!
  }

  /** What the running threads or children hold open, by their own count: RocksDB instances and iterators (a test hook). */
  async census(): Promise<{ handles: number; iterators: number }> {
    const counts = await Promise.all(this.#hosts.map((t) => (t?.alive === true ? t.call(this.label, { op: 'census' }) : undefined)))
    return counts.reduce((sum, c) => ({ handles: sum.handles + (c?.h ?? 0), iterators: sum.iterators + (c?.it ?? 0) }), { handles: 0, iterators: 0 })
  }

  /**
   * Test hook: ends every running thread or child as a crash would (a thread terminated, a child killed by SIGKILL):
   * their handles' calls fail from now on.
   */
  async terminate(): Promise<void> {
    await Promise.all(this.#hosts.map((t) => t?.kill()))
  }

  /** Ends the threads or children: closes what is still open there, then ends them and waits for their exit. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true
    readerWorkerPools.delete(this)
    await Promise.all(
      this.#hosts.map(async (t) => {
        if (t === undefined) return
        await t.call(this.label, { op: 'shutdown' }).catch(() => undefined)
        await t.end()
      }),
    )
  }
}
