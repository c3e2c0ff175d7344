/**
 * Fault injection around the real engine. A {@link FaultInjector} is an {@link Engine} that delegates to another
 * (rocksdb-native by default) and, when told to, fails the next n opens, reads or writes, or breaks one open handle
 * so that every later call on it fails. Injected failures happen *before* the real call, so a failed write was
 * never applied. It also counts what is open, so tests can check that nothing leaks and that no directory ever has
 * two read-write handles.
 *
 * Pass one as `openIndex({ engine })`; `index.faults` then crashes a given reader or primary through it.
 */
import { isAbsolute, normalize, sep } from 'node:path'
import { InvalidInput, StorageFailure, type StorageFailureReason } from './errors.js'
import { chunksOf, getManySettled, rocksEngine, type Engine, type Entry, type KeyRange, type OpenOptions, type ReadView, type SettledValues, type StorageHandle, type WriteOp } from './engine.js'

/** Which calls a fault applies to. */
export type FaultOp = 'open' | 'read' | 'write'

/**
 * Which handles a fault applies to; omitted fields match everything. `dir` matches the handles of that directory and
 * of the directories under it (whole path components, both paths normalised: `index.locate(...).dir`, the root, a
 * topic's directory under it).
 */
export interface FaultTarget {
  readonly role?: 'primary' | 'reader'
  readonly dir?: string
}

/** How an armed fault fails: after how many matching calls, and as which class of failure. */
export interface FaultKind {
  /** Matching calls to let through first. Default 0. */
  readonly skip?: number
  /** The failure's reason. Default `injected`. */
  readonly reason?: StorageFailureReason
}

const faultOps: readonly FaultOp[] = ['open', 'read', 'write']
const faultReasons: readonly StorageFailureReason[] = ['injected', 'io', 'missing', 'corruption', 'no-space', 'permission', 'locked', 'read-only']

const invalid = (field: string, message: string): never => {
  throw new InvalidInput({ field, message: `${field}: ${message}` })
}

const shown = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value).slice(0, 80) : value === null ? 'null' : typeof value === 'object' ? 'an object' : String(value))

/**
 * Checks a fault's target: an object whose only keys are `role` ('primary' or 'reader') and `dir` (a non-empty
 * string), each optional. Throws InvalidInput naming the field (`target.role`, ...); returns the target to store.
 */
const checkTarget = (target: unknown): FaultTarget => {
  if (typeof target !== 'object' || target === null || Array.isArray(target)) {
    return invalid('target', `must be an object with optional role and dir, got ${shown(target)}`)
  }
  for (const key of Object.keys(target)) if (key !== 'role' && key !== 'dir') invalid(`target.${key}`, 'unknown key (a target has only role and dir)')
  const { role, dir } = target as Record<string, unknown>
  if (role !== undefined && role !== 'primary' && role !== 'reader') invalid('target.role', `must be 'primary' or 'reader', got ${shown(role)}`)
  if (dir !== undefined && (typeof dir !== 'string' || dir === '')) invalid('target.dir', `must be a directory's path, got ${dir === '' ? 'an empty string' : shown(dir)}`)
  return { ...(role === undefined ? {} : { role: role as 'primary' | 'reader' }), ...(dir === undefined ? {} : { dir: dir as string }) }
}

/**
 * Checks the arguments of {@link FaultInjector.failNext}: `op` one of open, read, write; `n` and `skip` non-negative
 * safe integers; `target` as {@link checkTarget} says. Throws InvalidInput naming the argument; returns the target.
 */
const checkFailNext = (op: unknown, n: unknown, target: unknown, skip: unknown, reason: unknown): FaultTarget => {
  if (reason !== undefined && !faultReasons.includes(reason as StorageFailureReason)) invalid('reason', `must be one of ${faultReasons.join(', ')}, got ${shown(reason)}`)
  if (!faultOps.includes(op as FaultOp)) invalid('op', `must be one of ${faultOps.join(', ')}, got ${shown(op)}`)
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) invalid('n', `must be a non-negative integer, got ${shown(n)}`)
  if (typeof skip !== 'number' || !Number.isSafeInteger(skip) || skip < 0) invalid('skip', `must be a non-negative integer, got ${shown(skip)}`)
  return checkTarget(target)
}

interface Armed {
  op: FaultOp
  remaining: number
  target: FaultTarget
  /** Matching calls still to let through before failing. */
  skip: number
  reason: StorageFailureReason
}

const injected = (path: string, what: string, reason: StorageFailureReason = 'injected'): StorageFailure =>
  new StorageFailure({ reason, path, message: `injected ${what} failure${reason === 'injected' ? '' : ` (${reason})`} in ${path}` })

export class FaultInjector implements Engine {
  readonly #inner: Engine
  #armed: Armed[] = []
  readonly #live = new Set<FaultyHandle>()
  #maxWritersPerDir = 0
  /** Opens that reached the real engine and succeeded, per role. */
  readonly opened = { primary: 0, reader: 0 }
  /** Failures injected so far, per op. */
  readonly injected = { open: 0, read: 0, write: 0 }
  /** Reads (getMany, iterate, snapshot) that reached a handle, per role; and memtable flushes of primaries (counted once done). */
  readonly calls = { primaryReads: 0, readerReads: 0, flushes: 0 }

  constructor(inner: Engine = rocksEngine) {
    this.#inner = inner
  }

  /**
   * Fails the next `n` calls of `op` that match `target`, after letting the first `skip` of them through (to fail
   * the second write of a multi-batch operation, say), with a StorageFailure of `reason` (default `injected`; give
   * `no-space`, `permission`, `corruption`, ... to play a failure of that class). Cumulative with earlier calls. Bad
   * arguments (an unknown op, reason or target key, a negative or fractional count) are InvalidInput, and nothing is
   * armed.
   */
  failNext(op: FaultOp, n = 1, target: FaultTarget = {}, how: FaultKind = {}): void {
    if (typeof how !== 'object' || how === null) invalid('how', 'must be an object with optional skip and reason')
    const skip = how.skip ?? 0
    const checked = checkFailNext(op, n, target, skip, how.reason)
    if (n > 0) this.#armed.push({ op, remaining: n, target: checked, skip, reason: how.reason ?? 'injected' })
  }

  /** Forgets every armed fault (broken handles stay broken). */
  clear(): void {
    this.#armed = []
  }

  /** Handles open now (opened and not yet closed). */
  get liveHandles(): number {
    return this.#live.size
  }

  /** The most read-write handles ever open at once on one directory (1 is the only correct answer). */
  get maxWritersPerDir(): number {
    return this.#maxWritersPerDir
  }

  /**
   * Breaks every open handle matching `target`: each later call on it fails. Returns how many it broke. A target that
   * is not one (see failNext) is InvalidInput, and nothing is broken.
   */
  breakHandles(target: FaultTarget): number {
    const checked = checkTarget(target)
    let n = 0
    for (const h of this.#live) if (matches(checked, h.role, h.path)) (h.broken = true), n++
    return n
  }

  /** Breaks one handle (as returned by open). */
  breakHandle(handle: StorageHandle): void {
    if (handle instanceof FaultyHandle) handle.broken = true
  }

  /** Consumes an armed fault for (op, role, path) if there is one: the failure to throw, or undefined. */
  take(op: FaultOp, role: 'primary' | 'reader', path: string): StorageFailure | undefined {
    const a = this.#armed.find((x) => x.op === op && x.remaining > 0 && matches(x.target, role, path))
    if (a === undefined) return undefined
    if (a.skip > 0) {
      a.skip--
      return undefined
    }
    a.remaining--
    this.#armed = this.#armed.filter((x) => x.remaining > 0)
    this.injected[op]++
    return injected(path, op, a.reason)
  }

  async open(path: string, options: OpenOptions): Promise<StorageHandle> {
    const role = options.readOnly ? 'reader' : 'primary'
    const failure = this.take('open', role, path)
    if (failure !== undefined) throw failure
    const inner = await this.#inner.open(path, options)
    const handle = new FaultyHandle(this, inner, role)
    this.#live.add(handle)
    this.opened[role]++
    if (role === 'primary') {
      const writers = [...this.#live].filter((h) => h.role === 'primary' && h.path === path).length
      this.#maxWritersPerDir = Math.max(this.#maxWritersPerDir, writers)
    }
    return handle
  }

  /** @internal called by a handle when it closes. */
  forget(handle: FaultyHandle): void {
    this.#live.delete(handle)
  }
}

/**
 * Whether `path` is the directory `dir` or one under it, by whole path components: the directory of shard 1 is not a
 * prefix of shard 10's. Both are compared as `path.normalize` writes them (the shard directories' paths come from
 * `path.join`, which normalises): `./data/` names `data`, and `.` every relative path.
 */
const within = (path: string, dir: string): boolean => {
  const p = normalize(path)
  let d = normalize(dir)
  if (d.length > 1 && d.endsWith(sep)) d = d.slice(0, -1)
  if (d === '.') return !isAbsolute(p)
  return p === d || p.startsWith(d.endsWith(sep) ? d : d + sep)
}

const matches = (t: FaultTarget, role: 'primary' | 'reader', path: string): boolean =>
  (t.role === undefined || t.role === role) && (t.dir === undefined || within(path, t.dir))

class FaultyHandle implements StorageHandle {
  broken = false
  #closed = false
  constructor(
    private readonly faults: FaultInjector,
    private readonly inner: StorageHandle,
    readonly role: 'primary' | 'reader',
  ) {}

  get path(): string {
    return this.inner.path
  }

  get readOnly(): boolean {
    return this.inner.readOnly
  }

  #check(op: FaultOp): void {
    if (this.broken) throw injected(this.path, `${this.role} crash (broken handle)`)
    const failure = this.faults.take(op, this.role, this.path)
    if (failure !== undefined) throw failure
    if (op === 'read') this.faults.calls[this.role === 'primary' ? 'primaryReads' : 'readerReads']++
  }

  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    this.#check('read')
    return this.inner.getMany(keys)
  }

  getManySettled(keys: readonly Uint8Array[]): Promise<SettledValues> {
    try {
      this.#check('read')
    } catch (e) {
      return Promise.reject(e)
    }
    return getManySettled(this.inner, keys)
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    this.#check('write')
    return this.inner.write(ops)
  }

  /**
   * A crash breaks the handle between two entries too: the iteration stops there with an injected StorageFailure,
   * and so does an iteration that the crash's release of the handle cut short (not an `io` failure: the disk is fine).
   */
  async *iterate(range: KeyRange): AsyncIterable<Entry> {
    this.#check('read')
    const crashed = () => injected(this.path, `${this.role} crash (the handle broke during an iteration)`)
    try {
      for await (const entry of this.inner.iterate(range)) {
        yield entry
        if (this.broken) throw crashed()
      }
    } catch (e) {
      throw this.broken ? crashed() : e
    }
  }

  /** As {@link iterate}, a chunk at a time: a crash breaks the handle between two chunks. */
  async *iterateChunks(range: KeyRange): AsyncIterable<readonly Entry[]> {
    this.#check('read')
    const crashed = () => injected(this.path, `${this.role} crash (the handle broke during an iteration)`)
    try {
      for await (const chunk of chunksOf(this.inner, range)) {
        yield chunk
        if (this.broken) throw crashed()
      }
    } catch (e) {
      throw this.broken ? crashed() : e
    }
  }

  async withSnapshot<T>(fn: (view: ReadView) => Promise<T>): Promise<T> {
    this.#check('read')
    return this.inner.withSnapshot(fn)
  }

  async flush(): Promise<void> {
    await this.inner.flush()
    this.faults.calls.flushes++
  }

  property(name: string): Promise<string> {
    return this.inner.property(name)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    try {
      await this.inner.close()
    } finally {
      this.faults.forget(this)
    }
  }
}
