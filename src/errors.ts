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

/** A bounded queue is full (writes waiting for a primary, reads waiting for a reader). Retry later. */
export class Overloaded extends Data.TaggedError('Overloaded')<{
  readonly message: string
  readonly shard: string
}> {}

/**
 * The shard's primary exhausted its restart intensity (state `failed`); its requests fail until
 * `index.recover(shard)` is called. Other shards are unaffected.
 */
export class ShardUnavailable extends Data.TaggedError('ShardUnavailable')<{
  readonly message: string
  readonly shard: string
}> {}

/** Why the storage engine failed. `locked`: another read-write instance holds the directory. */
export type StorageFailureReason = 'locked' | 'missing' | 'corruption' | 'read-only' | 'io' | 'injected'

/** The storage engine (RocksDB) failed. `path` is the directory involved, `cause` the engine's error. */
export class StorageFailure extends Data.TaggedError('StorageFailure')<{
  readonly message: string
  readonly reason: StorageFailureReason
  readonly path: string
  readonly cause?: unknown
}> {}

/** The index (or the shard) was closed before or while the request ran. */
export class Closed extends Data.TaggedError('Closed')<{
  readonly message: string
}> {}

/** Every error the public API can raise. */
export type RockvisorError = InvalidInput | Overloaded | ShardUnavailable | StorageFailure | Closed

/** The stable tags of {@link RockvisorError}. */
export const errorTags = ['InvalidInput', 'Overloaded', 'ShardUnavailable', 'StorageFailure', 'Closed'] as const

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
    : /Corruption|checksum mismatch|corrupt/i.test(text)
      ? 'corruption'
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

const describe = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    const cause = e.cause instanceof Error ? ` (${(e.cause as { code?: unknown }).code ?? ''} ${e.cause.message})` : ''
    return `${typeof code === 'string' ? `${code} ` : ''}${e.message}${cause}`
  }
  return String(e)
}
