/**
 * The options of `openIndex`, their ranges, their defaults (the values live in src/defaults.ts) and their resolution.
 *
 * Every option is decoded with an Effect `Schema` (types, integer-ness, ranges, unknown keys at every level) and
 * then checked for consistency with the others, before anything is opened or created: a bad option is an
 * `InvalidInput` whose `field` is the option's path (`rocksdb.primary.writeBufferSize`), never a native crash or an
 * actor stuck opening. The ranges are in {@link ranges}; the README's option table states them too.
 */
import { Result, Schema, SchemaAST, SchemaIssue } from 'effect'
import type { ChildSpec } from '../actors/policy.js'
import type { ShardPolicy } from '../actors/shard-supervisor.js'
import { systemClock, type Clock } from './clock.js'
import * as defaults from './defaults.js'
import { rocksEngine, type Engine } from './engine.js'
import { InvalidInput } from './errors.js'
import { limits, reading } from './meta.js'

/** A partial child spec: omitted fields keep their defaults. */
export interface ChildSpecOptions {
  /** `permanent`, `transient` or `temporary` (not `temporary` for the primary). */
  readonly restart?: ChildSpec['restart']
  /** `maxRestarts` in [0, 10,000]; `withinMs` in [1, 86,400,000] (a day). */
  readonly intensity?: Partial<ChildSpec['intensity']>
  /** `minMs` <= `maxMs`, both in [0, 3,600,000] (an hour); `factor` finite >= 1; `jitter` in [0, 1]. */
  readonly backoff?: Partial<ChildSpec['backoff']>
  /** In [0, 86,400,000] (a day). */
  readonly resetAfterMs?: number
}

/** RocksDB settings the binding exposes. */
export interface RocksdbOptions {
  /** -1 (unlimited: every table file opened up front) or an integer in [10, 1,000,000]. Readers: -1 only. */
  readonly maxOpenFiles?: number
  /** In [1, 64]. */
  readonly maxBackgroundJobs?: number
  /** Bytes, in [65,536 (64 KiB), 1,073,741,824 (1 GiB)]. */
  readonly writeBufferSize?: number
  /** In [2, 64]. */
  readonly maxWriteBufferNumber?: number
  readonly enableStatistics?: boolean
}

export interface IndexOptions {
  /** The storage root directory (created if missing, in writer mode). Required: a non-empty path without NUL. */
  readonly root: string
  /**
   * `writer` (default): this index owns the primaries of the root (one process at a time: RocksDB locks each shard
   * directory). `reader`: readers only, for another process than the writer; writes are refused; reads are `bounded`
   * by default, or `after` a write token. Needs `readers.min >= 1`.
   */
  readonly mode?: 'writer' | 'reader'
  readonly freshness?: {
    /** Staleness bound of `bounded` reads, ms, in [0, 3,600,000]. Default 1,000. */
    readonly maxStalenessMs?: number
    /**
     * Flush the primary's memtable after this many records written since the last flush, in [1, 262,144], and at
     * most `rocksdb.primary.writeBufferSize / 4096` (the memtable never fills first). Default 16,384.
     */
    readonly flushEveryRecords?: number
    /** Flush the primary's memtable when anything waited unflushed this long, ms, in [1, 3,600,000]. Default 5,000. */
    readonly flushIntervalMs?: number
    /**
     * Writer mode: bytes per shard of recent writes kept in memory so that `fresh` point reads are answered by a
     * reader whose view lags the newest writes (merged with them) instead of the primary, in [0, 1 GiB]. 0 keeps
     * none. Default 16 MiB.
     */
    readonly recentWritesBytes?: number
    /**
     * Reader mode: each shard follows its directory's write-ahead logs (the writer's, in another process) and keeps
     * what it reads in the same memory (`recentWritesBytes`), so that a point read its readers' views are too old for
     * (`after` a newer token, or beyond `maxStalenessMs`) is answered by a view merged with the logs' newest writes,
     * after one read of the logs, instead of waiting for a view to reopen; and a range read or a scan by a stale view
     * when no write the logs show after it touched its time window. Default true.
     */
    readonly followLogs?: boolean
  }
  /**
   * Shards per topic, in [1, 65,536]. Default: 16 for a new root; an existing root keeps its count (a different
   * value is refused).
   */
  readonly shards?: number
  readonly readers?: {
    /** Readers per shard once its primary opened, in [0, 64] (>= 1 in reader mode). Default 1. */
    readonly min?: number
    /** Most readers per shard, in [1, 64], >= min. Default max(4, min). */
    readonly max?: number
    /** Grow when reads in flight per serving reader reach this, in [1, 10,000]. Default 8. */
    readonly growAt?: number
    /** Retire readers (above min) idle this long, ms, in [0, 86,400,000]. Default 30,000. */
    readonly idleMs?: number
    /** Recycle readers this old, ms, in [1,000, 86,400,000]. Default 300,000. */
    readonly maxLifetimeMs?: number
    /** Refreshes at once per shard, in [1, 64]. Default 1. */
    readonly refreshesPerShard?: number
    /**
     * Where the readers' RocksDB handles and their reads run: `in-process` (default: on this thread, like the
     * primaries), or `worker`: in worker threads of this index (rocksdb-native loaded there), each read one message
     * with many keys, answered in one buffer. A crashed worker is a reader failure (its readers restart, on a new
     * worker); close ends the workers. `process`: the same in child processes of this index (forked, answers
     * copied over IPC): a native crash in a reader (a segfault on a damaged file) kills only its child, whose
     * readers restart on a new one, and the readers' memory is the children's. The read-only instances
     * rocksdb-native would open for `engine` (a FaultInjector, a wrapper of `rocksEngine`) open in the worker or
     * child instead, and `engine` still wraps their handles; an engine that never calls `rocksEngine` is not placed.
     * The primaries always stay in this thread.
     */
    readonly placement?: 'in-process' | 'worker' | 'process'
    /**
     * Worker threads per index with placement `worker`, or child processes with `process`, in [1, 16] (readers
     * spread over them). Default 1.
     */
    readonly workerThreads?: number
  }
  /**
   * Each child spec must be able to escalate: the first `maxRestarts + 1` un-jittered backoff delays,
   * `min(maxMs, minMs * factor^i)`, must sum to less than `intensity.withinMs` (a `temporary` child is exempt).
   */
  readonly supervision?: {
    /** Default: permanent, 10 restarts in 60 s, backoff 100 ms..10 s x2 jitter 0.2, reset after 30 s. */
    readonly primary?: ChildSpecOptions
    /** Default: transient, 10 restarts in 60 s, backoff 50 ms..5 s x2 jitter 0.2, reset after 30 s. */
    readonly readers?: ChildSpecOptions
  }
  readonly writes?: {
    /**
     * Bytes per shard that the filters of the msgIds each partition may hold can take together, in [0, 1 GiB]
     * (about 10 bits per msgId held): a write looks up only the msgIds its partition may hold (for the replace
     * semantics), so a batch of new msgIds reads nothing. A partition whose filter does not fit looks up every
     * msgId it writes; 0 keeps no filter at all. Default 64 MiB.
     */
    readonly msgIdFilterBytes?: number
  }
  readonly queues?: {
    /** Writes pending per shard before `Overloaded`, in [1, 1,048,576]. Default 1024. */
    readonly maxPendingWrites?: number
    /** Reads waiting for a primary per shard before `Overloaded`, in [1, 1,048,576]. Default 4096. */
    readonly maxPendingReads?: number
    /** Reads running or waiting per shard before `Overloaded`, in [1, 1,048,576]. Default 8192. */
    readonly maxInflightReads?: number
  }
  /**
   * How long a request may wait (for a primary to open, a reader view to reach its sequence, its turn in the write
   * queue) before it fails with `Timeout`, ms, in [1, 86,400,000]. Default 30,000. Each request may pass its own.
   */
  readonly requestTimeoutMs?: number
  readonly rocksdb?: {
    /** Default: the seed's: maxOpenFiles 10000, 4 background jobs, 64 MiB write buffers x 4. */
    readonly primary?: RocksdbOptions
    /** Default: maxOpenFiles -1 (required beside a live primary: any other value is refused), 2 background jobs. */
    readonly reader?: RocksdbOptions & { readonly maxOpenFiles?: -1 }
    /**
     * `low` (default): once a primary opens, RocksDB's compaction threads of this **process** (shared by every
     * instance in it) run at the lowest CPU priority (nice 19, Linux only; see src/threads.ts), and so do those
     * added later, at the next pool maintenance, so that compactions take no core from the reads and writes.
     * `normal`: their priority is left as it is (a thread once lowered, by this index or another of the process,
     * stays lowered).
     */
    readonly compactionCpuPriority?: 'low' | 'normal'
  }
  /** Native opens (opens and refreshes) at once in this process, shared by every index in it, in [1, 64]. Default 2. */
  readonly maxConcurrentOpens?: number
  /** Pool maintenance period, ms, in [10, 3,600,000]. Default 1,000. */
  readonly maintenanceIntervalMs?: number
  /** How long close() waits before releasing everything anyway, ms, in [0, 3,600,000]. Default 10,000. */
  readonly closeTimeoutMs?: number
  /** Time source for every timer: `now`, `setTimeout`, `clearTimeout`. Default: the system clock. */
  readonly clock?: Clock
  /** Random numbers in [0, 1) for backoff jitter. Default Math.random. */
  readonly random?: () => number
  /** The storage engine (an object with `open`). Default rocksdb-native; pass a FaultInjector to inject faults. */
  readonly engine?: Engine
}

/** Options with every default applied. */
export interface ResolvedOptions {
  readonly root: string
  readonly mode: 'writer' | 'reader'
  readonly freshness: { maxStalenessMs: number; flushEveryRecords: number; flushIntervalMs: number; recentWritesBytes: number; followLogs: boolean }
  readonly shards: number | undefined
  readonly policy: ShardPolicy
  readonly pool: { growAt: number; idleMs: number; maxLifetimeMs: number; refreshesPerShard: number }
  /**
   * Where reader handles live (`readers.placement`) and, for `worker` or `process`, how many threads or child
   * processes (`readers.workerThreads`).
   */
  readonly readerPlacement: { readonly where: 'in-process' | 'worker' | 'process'; readonly threads: number }
  readonly writes: { msgIdFilterBytes: number }
  readonly queues: { maxPendingWrites: number; maxPendingReads: number; maxInflightReads: number }
  readonly requestTimeoutMs: number
  readonly rocksdb: { primary: Required<RocksdbOptions>; reader: Required<RocksdbOptions>; compactionCpuPriority: 'low' | 'normal' }
  readonly maxConcurrentOpens: number
  readonly maintenanceIntervalMs: number
  readonly closeTimeoutMs: number
  readonly clock: Clock
  readonly random: () => number
  readonly engine: Engine
}

const HOUR = 3_600_000
const DAY = 24 * HOUR

/** The range of every numeric option (inclusive). The README's option table states the same. */
export const ranges = {
  maxStalenessMs: [0, HOUR],
  flushEveryRecords: [1, (1024 * 1024 * 1024) / 4096],
  flushIntervalMs: [1, HOUR],
  recentWritesBytes: [0, 1024 * 1024 * 1024],
  msgIdFilterBytes: [0, 1024 * 1024 * 1024],
  shards: [1, limits.maxShards],
  readersMin: [0, 64],
  readersMax: [1, 64],
  growAt: [1, 10_000],
  idleMs: [0, DAY],
  maxLifetimeMs: [1_000, DAY],
  refreshesPerShard: [1, 64],
  workerThreads: [1, 16],
  maxRestarts: [0, 10_000],
  withinMs: [1, DAY],
  backoffMs: [0, HOUR],
  resetAfterMs: [0, DAY],
  queue: [1, 1024 * 1024],
  requestTimeoutMs: [1, DAY],
  maxOpenFiles: [10, 1_000_000],
  maxBackgroundJobs: [1, 64],
  writeBufferSize: [64 * 1024, 1024 * 1024 * 1024],
  maxWriteBufferNumber: [2, 64],
  maxConcurrentOpens: [1, 64],
  maintenanceIntervalMs: [10, HOUR],
  closeTimeoutMs: [0, HOUR],
} as const satisfies Record<string, readonly [number, number]>

/**
 * Bytes of write buffer the flush rule budgets per record of the trigger: a memtable holds at most twice the trigger
 * (the records before its flush began, and those written beside the flush), each record at most about 1 KiB (a
 * 1,024-byte msgId with its key) plus RocksDB's per-entry overhead, under 2 KiB.
 */
export const memtableBytesPerRecord = 4 * 1024

// ---- The schema. Every node a caller can get wrong carries an `expected` annotation: the error message's words.

/** A safe integer in [min, max]. */
const int = ([min, max]: readonly [number, number]) =>
  Schema.Number.annotate({ expected: `an integer in [${min}, ${max}]` }).check(Schema.isInt(), Schema.isBetween({ minimum: min, maximum: max }))

const bool = Schema.Boolean.annotate({ expected: 'a boolean' })

const fn = <F extends (...args: never[]) => unknown>(what: string) =>
  Schema.declare((u: unknown): u is F => typeof u === 'function', { expected: what })

const hasMethods =
  <T>(...names: string[]) =>
  (u: unknown): u is T =>
    typeof u === 'object' && u !== null && names.every((n) => typeof (u as Record<string, unknown>)[n] === 'function')

/** A struct whose keys are all optional (`undefined` counts as omitted). */
const options = <F extends Schema.Struct.Fields>(fields: F) =>
  Schema.optional(Schema.Struct(fields).annotate({ expected: 'an object' }))

const childSpec = options({
  restart: Schema.optional(Schema.Literals(['permanent', 'transient', 'temporary']).annotate({ expected: "'permanent', 'transient' or 'temporary'" })),
  intensity: options({
    maxRestarts: Schema.optional(int(ranges.maxRestarts)),
    withinMs: Schema.optional(int(ranges.withinMs)),
  }),
  backoff: options({
    minMs: Schema.optional(int(ranges.backoffMs)),
    maxMs: Schema.optional(int(ranges.backoffMs)),
    factor: Schema.optional(Schema.Number.annotate({ expected: 'a finite number >= 1' }).check(Schema.isFinite(), Schema.isGreaterThanOrEqualTo(1))),
    jitter: Schema.optional(Schema.Number.annotate({ expected: 'a number in [0, 1]' }).check(Schema.isFinite(), Schema.isBetween({ minimum: 0, maximum: 1 }))),
  }),
  resetAfterMs: Schema.optional(int(ranges.resetAfterMs)),
})

const rocksdbFields = {
  maxOpenFiles: Schema.optional(
    Schema.Union([Schema.Literal(-1), int(ranges.maxOpenFiles)]).annotate({ expected: `-1 or an integer in [${ranges.maxOpenFiles[0]}, ${ranges.maxOpenFiles[1]}]` }),
  ),
  maxBackgroundJobs: Schema.optional(int(ranges.maxBackgroundJobs)),
  writeBufferSize: Schema.optional(int(ranges.writeBufferSize)),
  maxWriteBufferNumber: Schema.optional(int(ranges.maxWriteBufferNumber)),
  enableStatistics: Schema.optional(bool),
}

/** The schema of `openIndex`'s options (with the observer's `inspect`). Unknown keys are refused when decoding. */
export const IndexOptionsSchema = Schema.Struct({
  root: Schema.String.annotate({ expected: 'a non-empty directory path without NUL bytes' }).check(
    Schema.makeFilter((s: string) => s.length > 0 && !s.includes('\0')),
  ),
  mode: Schema.optional(Schema.Literals(['writer', 'reader']).annotate({ expected: "'writer' or 'reader'" })),
  freshness: options({
    maxStalenessMs: Schema.optional(int(ranges.maxStalenessMs)),
    flushEveryRecords: Schema.optional(int(ranges.flushEveryRecords)),
    flushIntervalMs: Schema.optional(int(ranges.flushIntervalMs)),
    recentWritesBytes: Schema.optional(int(ranges.recentWritesBytes)),
    followLogs: Schema.optional(bool),
  }),
  shards: Schema.optional(int(ranges.shards)),
  readers: options({
    min: Schema.optional(int(ranges.readersMin)),
    max: Schema.optional(int(ranges.readersMax)),
    growAt: Schema.optional(int(ranges.growAt)),
    idleMs: Schema.optional(int(ranges.idleMs)),
    maxLifetimeMs: Schema.optional(int(ranges.maxLifetimeMs)),
    refreshesPerShard: Schema.optional(int(ranges.refreshesPerShard)),
    placement: Schema.optional(Schema.Literals(['in-process', 'worker', 'process']).annotate({ expected: "'in-process', 'worker' or 'process'" })),
    workerThreads: Schema.optional(int(ranges.workerThreads)),
  }),
  supervision: options({ primary: childSpec, readers: childSpec }),
  writes: options({
    msgIdFilterBytes: Schema.optional(int(ranges.msgIdFilterBytes)),
  }),
  queues: options({
    maxPendingWrites: Schema.optional(int(ranges.queue)),
    maxPendingReads: Schema.optional(int(ranges.queue)),
    maxInflightReads: Schema.optional(int(ranges.queue)),
  }),
  requestTimeoutMs: Schema.optional(int(ranges.requestTimeoutMs)),
  rocksdb: options({
    primary: options(rocksdbFields),
    reader: options({
      ...rocksdbFields,
      maxOpenFiles: Schema.optional(
        Schema.Literal(-1).annotate({ expected: '-1 (a reader beside a live primary must open every table file up front)' }),
      ),
    }),
    compactionCpuPriority: Schema.optional(Schema.Literals(['low', 'normal']).annotate({ expected: "'low' or 'normal'" })),
  }),
  maxConcurrentOpens: Schema.optional(int(ranges.maxConcurrentOpens)),
  maintenanceIntervalMs: Schema.optional(int(ranges.maintenanceIntervalMs)),
  closeTimeoutMs: Schema.optional(int(ranges.closeTimeoutMs)),
  clock: Schema.optional(Schema.declare(hasMethods<Clock>('now', 'setTimeout', 'clearTimeout'), { expected: 'a Clock (an object with now, setTimeout and clearTimeout)' })),
  random: Schema.optional(fn<() => number>('a function returning numbers in [0, 1)')),
  engine: Schema.optional(Schema.declare(hasMethods<Engine>('open'), { expected: 'an Engine (an object with open)' })),
  inspect: Schema.optional(fn<(event: unknown) => void>('a function')),
}).annotate({ expected: 'an object of options' })

type Decoded = typeof IndexOptionsSchema.Type

// The hand-written interface (for the docs) and the schema agree, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const agree: Same<Omit<Decoded, 'inspect'>, IndexOptions> = true
void agree

const decode = Schema.decodeUnknownResult(IndexOptionsSchema, { onExcessProperty: 'error', errors: 'first' })

// ---- From a schema issue to InvalidInput.

/** The value at `path` in the caller's input (what the message shows). */
const valueAt = (input: unknown, path: readonly PropertyKey[]): unknown =>
  path.reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined), input)

/** A value for a message: short, and never the whole of a long string or a big object. */
const showValue = (v: unknown): string => {
  const cut = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s)
  switch (typeof v) {
    case 'string':
      return cut(JSON.stringify(v))
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(v)
    case 'bigint':
      return `${v}n`
    case 'symbol':
      return cut(v.toString())
    case 'function':
      return 'a function'
    default:
      if (v === null) return 'null'
      if (Array.isArray(v)) return `an array of length ${v.length}`
      try {
        return cut(JSON.stringify(v) ?? 'an object')
      } catch {
        return 'an object'
      }
  }
}

const pathText = (path: readonly PropertyKey[]): string => (path.length === 0 ? 'options' : path.map((k) => String(k)).join('.'))

const expectedOf = (ast: SchemaAST.AST): string | undefined => {
  const e = ast.annotations?.expected
  if (typeof e === 'string') return e
  // `Schema.optional(X)` is the union X | undefined: the caller's mistake is about X.
  if (SchemaAST.isUnion(ast)) {
    for (const member of ast.types) if (!SchemaAST.isUndefined(member)) return expectedOf(member)
  }
  return undefined
}

const propertyNames = (ast: SchemaAST.AST): string[] =>
  SchemaAST.isObjects(ast) ? ast.propertySignatures.map((p) => String(p.name)) : []

/**
 * Follows the first failure of `issue` down to where it happened: the path (one step per Pointer), and the words
 * of the outermost `expected` annotation below the last step (a field's own description, not its parts').
 */
const toInvalidInput = (input: unknown, top: SchemaIssue.Issue): InvalidInput => {
  let path: PropertyKey[] = []
  let expected: string | undefined
  let parent: SchemaAST.AST | undefined
  let issue: SchemaIssue.Issue = top
  for (;;) {
    switch (issue._tag) {
      case 'Pointer':
        path = [...path, ...issue.path]
        expected = undefined
        issue = issue.issue
        continue
      case 'Composite':
        expected ??= expectedOf(issue.ast)
        parent = issue.ast
        issue = issue.issues[0]
        continue
      case 'AnyOf':
        expected ??= expectedOf(issue.ast)
        if (issue.issues[0] === undefined) break
        issue = issue.issues[0]
        continue
      case 'Encoding':
        issue = issue.issue
        continue
      case 'InvalidType':
        expected ??= expectedOf(issue.ast)
        break
      case 'MissingKey': {
        const name = path[path.length - 1]
        const property = parent && SchemaAST.isObjects(parent) ? parent.propertySignatures.find((p) => p.name === name) : undefined
        return invalid(pathText(path), `required: ${(property && expectedOf(property.type)) ?? 'a value'}`)
      }
      case 'UnexpectedKey': {
        const parent = path.slice(0, -1)
        const known = propertyNames(issue.ast)
        const where = parent.length === 0 ? 'openIndex' : pathText(parent)
        return invalid(pathText(path), `unknown option (${where} takes ${known.join(', ')})`)
      }
      default:
        break
    }
    break
  }
  return invalid(pathText(path), `expected ${expected ?? 'a valid value'}, got ${showValue(valueAt(input, path))}`)
}

const invalid = (field: string, what: string) => new InvalidInput({ field, message: `${field}: ${what}` })

// ---- Consistency between options, on the values with their defaults.

/** The sum of the first `maxRestarts + 1` un-jittered backoff delays: the fastest `maxRestarts + 1` restarts. */
export const fastestEscalationMs = (s: Pick<ChildSpec, 'intensity' | 'backoff'>): number => {
  let sum = 0
  for (let i = 0; i <= s.intensity.maxRestarts; i++) {
    sum += Math.min(s.backoff.maxMs, s.backoff.minMs * Math.pow(s.backoff.factor, i))
  }
  return sum
}

const spec = (base: ChildSpec, o: ChildSpecOptions | undefined, field: string): ChildSpec => {
  const s: ChildSpec = {
    restart: o?.restart ?? base.restart,
    intensity: { maxRestarts: o?.intensity?.maxRestarts ?? base.intensity.maxRestarts, withinMs: o?.intensity?.withinMs ?? base.intensity.withinMs },
    backoff: {
      minMs: o?.backoff?.minMs ?? base.backoff.minMs,
      maxMs: o?.backoff?.maxMs ?? base.backoff.maxMs,
      factor: o?.backoff?.factor ?? base.backoff.factor,
      jitter: o?.backoff?.jitter ?? base.backoff.jitter,
    },
    resetAfterMs: o?.resetAfterMs ?? base.resetAfterMs,
  }
  if (s.backoff.minMs > s.backoff.maxMs) {
    const blamed = o?.backoff?.maxMs !== undefined ? 'maxMs' : 'minMs'
    throw invalid(`${field}.backoff.${blamed}`, `backoff.minMs (${s.backoff.minMs}) must be <= backoff.maxMs (${s.backoff.maxMs})`)
  }
  if (s.restart !== 'temporary') {
    const fastest = fastestEscalationMs(s)
    if (fastest >= s.intensity.withinMs) {
      const n = s.intensity.maxRestarts
      throw invalid(
        `${field}.intensity`,
        `more than ${n} restarts within ${s.intensity.withinMs} ms can never happen: the first ${n + 1} backoff delays ` +
          `(min(maxMs, minMs * factor^i), without jitter) already sum to ${fastest} ms, ` +
          `so the child would never escalate; raise intensity.withinMs, or lower intensity.maxRestarts or the backoff`,
      )
    }
  }
  return s
}

/**
 * Decodes and checks every option, applies the defaults, and checks the options against each other. Synchronous;
 * throws InvalidInput naming the first bad option (its path) and the bad value. Touches nothing.
 */
/** The option groups (objects of options), by path: each must be a plain object (see {@link checkGroups}). */
const groupPaths: readonly (readonly string[])[] = [
  [],
  ['freshness'],
  ['readers'],
  ['writes'],
  ['queues'],
  ['rocksdb'],
  ['rocksdb', 'primary'],
  ['rocksdb', 'reader'],
  ['supervision'],
  ...(['primary', 'readers'] as const).flatMap((child) => [['supervision', child], ['supervision', child, 'intensity'], ['supervision', child, 'backoff']]),
]

/**
 * Refuses an option group that is an object but not a plain one (a Map, a Date, a RegExp, a class instance): the
 * schema reads only its own properties, so such a group would be accepted and ignored (`readers: new Map([['min',
 * 9]])` setting nothing).
 */
const checkGroups = (input: unknown): void => {
  for (const path of groupPaths) {
    const v = valueAt(input, path)
    if (typeof v !== 'object' || v === null) continue
    const proto: unknown = Object.getPrototypeOf(v)
    if (proto === Object.prototype || proto === null) continue
    const kind = Array.isArray(v) ? 'an array' : `a ${(v as { constructor?: { name?: string } }).constructor?.name ?? 'non-plain object'}`
    throw invalid(path.length === 0 ? 'options' : path.join('.'), `must be a plain object ({ ... }), got ${kind}`)
  }
}

export const resolveOptions = (input: IndexOptions): ResolvedOptions => {
  // Options whose reading throws (a getter, a Proxy) are InvalidInput too.
  const decoded = reading('options', () => {
    checkGroups(input)
    return decode(input)
  })
  if (Result.isFailure(decoded)) throw toInvalidInput(input, decoded.failure.issue)
  const o = decoded.success

  const mode = o.mode ?? 'writer'
  const min = o.readers?.min ?? defaults.readerPool.min
  const max = o.readers?.max ?? Math.max(defaults.readerPool.max, min)
  if (max < min) throw invalid('readers.max', `readers.max (${max}) must be >= readers.min (${min})`)
  if (mode === 'reader' && min < 1) {
    throw invalid('readers.min', 'a reader-mode index serves reads from readers only, so it needs at least 1, got 0')
  }
  const primary = spec(defaults.primarySpec, o.supervision?.primary, 'supervision.primary')
  if (primary.restart === 'temporary') {
    throw invalid('supervision.primary.restart', "a shard cannot do without its primary: 'permanent' or 'transient', got 'temporary'")
  }
  const readers = spec(defaults.readerSpec, o.supervision?.readers, 'supervision.readers')

  const rocksdbPrimary: Required<RocksdbOptions> = { ...defaults.primaryRocksdb, ...defined(o.rocksdb?.primary) }
  const flushEveryRecords = o.freshness?.flushEveryRecords ?? defaults.freshness.flushEveryRecords
  if (flushEveryRecords * memtableBytesPerRecord > rocksdbPrimary.writeBufferSize) {
    const field = o.freshness?.flushEveryRecords !== undefined ? 'freshness.flushEveryRecords' : 'rocksdb.primary.writeBufferSize'
    throw invalid(
      field,
      `freshness.flushEveryRecords (${flushEveryRecords}) x ${memtableBytesPerRecord} bytes must be <= rocksdb.primary.writeBufferSize ` +
        `(${rocksdbPrimary.writeBufferSize}): the memtable must not fill before the runtime's own flush ` +
        `(at most ${Math.floor(rocksdbPrimary.writeBufferSize / memtableBytesPerRecord)} records for this buffer)`,
    )
  }

  return {
    root: o.root,
    mode,
    freshness: {
      maxStalenessMs: o.freshness?.maxStalenessMs ?? defaults.freshness.maxStalenessMs,
      flushEveryRecords,
      flushIntervalMs: o.freshness?.flushIntervalMs ?? defaults.freshness.flushIntervalMs,
      recentWritesBytes: o.freshness?.recentWritesBytes ?? defaults.freshness.recentWritesBytes,
      followLogs: o.freshness?.followLogs ?? defaults.freshness.followLogs,
    },
    shards: o.shards,
    policy: { primary, readers: { ...readers, min, max } },
    pool: {
      growAt: o.readers?.growAt ?? defaults.readerPool.growAt,
      idleMs: o.readers?.idleMs ?? defaults.readerPool.idleMs,
      maxLifetimeMs: o.readers?.maxLifetimeMs ?? defaults.readerPool.maxLifetimeMs,
      refreshesPerShard: o.readers?.refreshesPerShard ?? defaults.readerPool.refreshesPerShard,
    },
    readerPlacement: {
      where: o.readers?.placement ?? defaults.readerPool.placement,
      threads: o.readers?.workerThreads ?? defaults.readerPool.workerThreads,
    },
    writes: { msgIdFilterBytes: o.writes?.msgIdFilterBytes ?? defaults.writes.msgIdFilterBytes },
    queues: {
      maxPendingWrites: o.queues?.maxPendingWrites ?? defaults.queues.maxPendingWrites,
      maxPendingReads: o.queues?.maxPendingReads ?? defaults.queues.maxPendingReads,
      maxInflightReads: o.queues?.maxInflightReads ?? defaults.queues.maxInflightReads,
    },
    requestTimeoutMs: o.requestTimeoutMs ?? defaults.requestTimeoutMs,
    rocksdb: {
      primary: rocksdbPrimary,
      // The schema admits only -1 for a reader's maxOpenFiles: a reader beside a live primary must open every table file.
      reader: { ...defaults.readerRocksdb, ...defined(o.rocksdb?.reader) },
      compactionCpuPriority: o.rocksdb?.compactionCpuPriority ?? defaults.compactionCpuPriority,
    },
    maxConcurrentOpens: o.maxConcurrentOpens ?? defaults.maxConcurrentOpens,
    maintenanceIntervalMs: o.maintenanceIntervalMs ?? defaults.maintenanceIntervalMs,
    closeTimeoutMs: o.closeTimeoutMs ?? defaults.closeTimeoutMs,
    clock: o.clock ?? systemClock,
    random: o.random ?? Math.random,
    engine: o.engine ?? rocksEngine,
  }
}

/** The keys of `o` whose value is not `undefined` (an explicit `undefined` keeps the default). */
const defined = <T extends object>(o: T | undefined): Partial<T> =>
  Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>
