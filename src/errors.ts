/**
 * The closed set of errors rockvisor raises. Every error thrown (or returned in a rejected promise) by the public
 * API is one of these classes; match on `error._tag`, whose values never change between major versions (messages
 * may). They are Effect `Data.TaggedError`s, so Effect users can `Effect.catchTag` them too.
 *
 * A missing key is never an error: lookups return `undefined`.
 */
import { Data } from 'effect'

/** The caller passed something rockvisor will not store or route. Nothing was written. `field` names the culprit. */
export class InvalidInput extends Data.TaggedError('InvalidInput')<{
  readonly message: string
  readonly field: string
}> {}

/**
 * A bounded queue is full (writes pending, reads in flight, reads waiting for a handle): the request was refused at
 * once and nothing was done. Retry later.
 */
export class Overloaded extends Data.TaggedError('Overloaded')<{
  readonly message: string
  readonly shard: string
}> {}

/**
 * The request waited longer than its deadline (`timeoutMs`), or its `signal` aborted, before it could run: for a
 * primary to open, for a reader view to reach a sequence, for its turn in the write queue. It was not run: a write
 * that times out was not applied. (Once a request's I/O has started, it finishes: the deadline bounds waiting, not
 * RocksDB's own work.) `waitedFor` says what it waited for; `aborted` is true when the signal, not the clock, ended it.
 */
export class Timeout extends Data.TaggedError('Timeout')<{
  readonly message: string
  readonly shard: string
  readonly waitedFor: string
  readonly timeoutMs: number
  readonly aborted: boolean
  /**
   * Why what it waited for did not come, when the shard knows: for a wait for the primary or a reader view (not one
   * its own signal stopped), the last failed open of the primary, or of a reader, since one last succeeded.
   */
  readonly cause?: FailureCause
}> {}

/** Why a shard stopped serving: the failure that made it give up, as reported by the storage engine. */
export interface FailureCause {
  readonly reason: StorageFailureReason
  readonly path: string
  readonly message: string
}

/**
 * The shard cannot serve the request: its primary (or, in reader mode, its readers) exhausted the restart intensity
 * or met a failure that restarting cannot cure (a damaged directory). Its requests fail until
 * `index.recover(shard)` is called. Other shards are unaffected. `cause` is the failure that made it give up.
 */
export class ShardUnavailable extends Data.TaggedError('ShardUnavailable')<{
  readonly message: string
  readonly shard: string
  readonly cause?: FailureCause
}> {}

/**
 * Why the storage engine failed. `locked`: another read-write instance holds the directory. `missing`: a file or
 * directory is not there. `corruption`: the data or the directory is damaged. `no-space`: the disk is full.
 * `permission`: the process may not read or write the directory. `read-only`: a write reached a read-only instance.
 * `io`: any other I/O failure (transient as far as rockvisor knows). `injected`: the fault injector's.
 */
export type StorageFailureReason = 'locked' | 'missing' | 'corruption' | 'no-space' | 'permission' | 'read-only' | 'io' | 'injected'

/**
 * The storage engine (RocksDB) failed. `path` is the directory involved, `cause` the engine's error, `shard` the shard
 * id when the failure belongs to one. `fatal`: restarting will not cure it (a damaged directory): the shard gives up
 * at once instead of restarting under backoff. A `corruption` met by a read (a bad block) fails that read only.
 */
export class StorageFailure extends Data.TaggedError('StorageFailure')<{
  readonly message: string
  readonly reason: StorageFailureReason
  readonly path: string
  readonly cause?: unknown
  readonly shard?: string
  readonly fatal?: boolean
}> {}

/** The index (or the shard) was closed before or while the request ran. */
export class Closed extends Data.TaggedError('Closed')<{
  readonly message: string
}> {}

/** Every error the public API can raise. */
export type RockvisorError = InvalidInput | Overloaded | Timeout | ShardUnavailable | StorageFailure | Closed

/** The stable tags of {@link RockvisorError}. */
export const errorTags = ['InvalidInput', 'Overloaded', 'Timeout', 'ShardUnavailable', 'StorageFailure', 'Closed'] as const

/** True when `e` is one of rockvisor's errors. */
export const isRockvisorError = (e: unknown): e is RockvisorError =>
  typeof e === 'object' && e !== null && (errorTags as readonly unknown[]).includes((e as { _tag?: unknown })._tag)

/**
 * Classifies an error thrown by the RocksDB binding. The binding's `code` is a libuv name and its message is
 * RocksDB's status text, so both are read (see the project notes on RocksDB errors).
 */
export const storageFailure = (path: string, cause: unknown): StorageFailure => {
  if (cause instanceof StorageFailure) return cause
  const text = describe(cause)
  const reason: StorageFailureReason = /LOCK|lock hold|No locks available|Resource temporarily unavailable/.test(text)
    ? 'locked'
    : /Corruption|checksum mismatch|corrupt|CURRENT file does not end with newline|CURRENT file corrupted/i.test(text)
      ? 'corruption'
      : /No space left|ENOSPC|Disk quota exceeded|EDQUOT/i.test(text)
        ? 'no-space'
        : /Permission denied|EACCES|EPERM|Operation not permitted/.test(text)
          ? 'permission'
          : /read only mode|Not supported operation|ENOSYS/.test(text)
            ? 'read-only'
            : /No such file|does not exist|ENOENT/.test(text)
              ? 'missing'
              : 'io'
  const message =
    reason === 'locked'
      ? `the directory ${path} is locked by another read-write instance (another process, or another index in this one): ${text}`
      : `storage failure (${reason}) in ${path}: ${text}`
  return new StorageFailure({ message, reason, path, cause })
}

/**
 * What a shard reports as the cause of a failure (giving up, a Timeout), from the error an open or a child failed
 * with: an error that is not a StorageFailure (from an engine of the user's, say) is reason `io` in the shard's
 * directory `dir`.
 */
export function causeOf(error: unknown, dir: string): FailureCause | undefined {
  if (error instanceof StorageFailure) return { reason: error.reason, path: error.path, message: error.message }
  if (error === undefined) return undefined
  return { reason: 'io', path: dir, message: describeError(error, false) }
}

/**
 * A caller's or an engine's error as a message names it: `Name: message` (or only its message, `withName` false) for
 * an Error, else its string form. Never throws: an error whose text cannot be made is a placeholder.
 */
export const describeError = (error: unknown, withName = true): string => {
  try {
    return error instanceof Error ? (withName ? `${error.name}: ${error.message}` : error.message) : String(error)
  } catch {
    return 'an error that cannot be printed'
  }
}

/**
 * Whether trying the same request again (on another handle, or on a reopened primary) may succeed: the failure
 * classes rockvisor retries. Corruption, a full disk, a permission problem, a lock held elsewhere, a write to a
 * read-only instance and any failure marked `fatal` are not: they fail the request at once with their cause.
 */
export const isTransient = (e: StorageFailure): boolean => !e.fatal && (e.reason === 'io' || e.reason === 'injected' || e.reason === 'missing')

const describe = (e: unknown): string => {
  // A read batch rejects with an AggregateError of its keys' errors: the first one says what happened.
  if (e instanceof AggregateError && e.errors.length > 0) return describe(e.errors.find((x) => x !== undefined && x !== null) ?? e.message)
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    const cause = e.cause instanceof Error ? ` (${(e.cause as { code?: unknown }).code ?? ''} ${e.cause.message})` : ''
    return `${typeof code === 'string' ? `${code} ` : ''}${e.message}${cause}`
  }
  return String(e)
}
