/**
 * One seek of a key range by the binding's native iterator calls themselves: open the iterator (RocksDB's Seek or
 * SeekForPrev), read one key, and close it once the caller has the answer (in the next turn of the event loop:
 * each of these calls costs the main thread about as much as a point read's whole call, measured 8 to 11 us). The binding's own iterator is a stream around the same three
 * calls: when one entry is wanted, its stream machinery and its wait for the close cost about as much as the native
 * round trips (`getRangeByTime` makes two seeks per call; bench/range.ts).
 *
 * The native functions are not part of the package's exported API (its `exports` lists only its index), so they are
 * reached by file, and everything this module relies on is checked once at load and at each call: with a binding
 * whose shape differs, {@link nativeSeeker} is `undefined` (or answers `undefined` for a session it cannot use now)
 * and callers iterate with the binding's public API instead (slower, same answers). `test/native.test.ts` fails if
 * the installed binding stops offering it.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type RocksDB from 'rocksdb-native'

/** The binding's native iterator functions as this module calls them (rocksdb-native 3.18, binding.cc). */
interface IteratorBinding {
  iteratorInit(): ArrayBuffer
  iteratorBuffer(handle: ArrayBuffer, capacity: number): unknown
  iteratorOpen(
    db: unknown,
    handle: ArrayBuffer,
    columnFamily: unknown,
    gt: Uint8Array,
    gte: Uint8Array,
    lt: Uint8Array,
    lte: Uint8Array,
    reverse: boolean,
    keysOnly: boolean,
    snapshot: unknown,
    ctx: unknown,
    onOpen: (err: Error | null) => void,
    onClose: (err: Error | null) => void,
    onRead: (err: Error | null, keys: ArrayBuffer[], values: ArrayBuffer[]) => void,
  ): void
  iteratorRead(handle: ArrayBuffer, capacity: number): void
  iteratorClose(handle: ArrayBuffer): void
}

/** The fields of a rocksdb-native session (an instance or a snapshot of one) that its own iterator reads. */
interface SessionInternals {
  _index: number
  _state: { _handle: unknown; opened: boolean; closing: unknown; resumed: unknown; io: { inc(): void; dec(): void } }
  _columnFamily: { _handle: unknown }
  _snapshot: { _handle: unknown } | null
  _ref(): void
  _unref(): void
}

const empty = new Uint8Array(0)

const loadBinding = (): Record<string, unknown> => {
  try {
    const require = createRequire(import.meta.url)
    return require(join(dirname(require.resolve('rocksdb-native')), 'binding.js')) as Record<string, unknown>
  } catch {
    return {}
  }
}

const loaded = loadBinding()
const offers = (functions: readonly string[]): boolean => functions.every((n) => typeof loaded[n] === 'function')
const binding = offers(['iteratorInit', 'iteratorBuffer', 'iteratorOpen', 'iteratorRead', 'iteratorClose']) ? (loaded as unknown as IteratorBinding) : undefined

/** A seek in flight: what the native side points into. */
interface LiveSeek {
  readonly handle: ArrayBuffer
  readonly buffer: unknown
  readonly range: SeekRange
}

/** The seeks whose iterators are not closed yet. */
const live = new Set<LiveSeek>()

/** Closes of iterators whose seek has answered, made together in the next turn of the event loop. */
let closing: (() => void)[] = []
const closeAll = (): void => {
  const now = closing
  closing = []
  for (const close of now) close()
}
const closeLater = (close: () => void): void => {
  if (closing.push(close) === 1) setImmediate(closeAll)
}

/** How many seeks have not closed their iterators yet (for tests). */
export const seeksInFlight = (): number => live.size

/** Whether `db` has the fields the seek reads, in the state it needs (open, not suspended, not closing). */
const usable = (db: Partial<SessionInternals>): db is SessionInternals => {
  const state = db._state
  return (
    state !== undefined &&
    state.opened === true &&
    state.resumed === null &&
    !state.closing &&
    db._index !== -1 &&
    state._handle != null &&
    typeof state.io?.inc === 'function' &&
    db._columnFamily?._handle != null &&
    typeof db._ref === 'function' &&
    typeof db._unref === 'function' &&
    (db._snapshot == null || db._snapshot._handle != null)
  )
}

/** Whether `x` is bytes the native side can read as a slice (a Uint8Array, a Buffer). */
const bytes = (x: unknown): boolean => x instanceof Uint8Array

/** The bounds of one seek: `gte` and one of `lt`/`lte`, forward or (`reverse`) backward. */
export interface SeekRange {
  readonly gte?: Uint8Array
  readonly lt?: Uint8Array
  readonly lte?: Uint8Array
  readonly reverse?: boolean
}

/**
 * The first key of `range` in `db` (its last with `reverse`), or `undefined` when the range is empty; the promise
 * rejects with the binding's own error (the caller maps it). Returns `undefined` instead of a promise when the fast
 * path is not available for `db` now (an unknown binding, a session that is closing): the caller then iterates.
 * The iterator's close runs after the answer (in the next turn, with the other closes due), and the session's close
 * waits for it (as for the binding's iterator).
 */
export const nativeSeeker = binding === undefined ? undefined : (db: RocksDB, range: SeekRange): Promise<Uint8Array | undefined> | undefined => {
  const session = db as unknown as Partial<SessionInternals>
  if (!usable(session)) return undefined
  // The native side aborts the process on a bound that is not a typed array: anything else goes the slow way.
  if ((range.gte !== undefined && !bytes(range.gte)) || (range.lt !== undefined && !bytes(range.lt)) || (range.lte !== undefined && !bytes(range.lte))) return undefined
  const state = session._state
  const handle = binding.iteratorInit()
  // The native side points into the handle, the key buffer and the bounds until the iterator is closed (RocksDB
  // keeps the upper bound for the iterator's life): they stay reachable from `live` until then.
  const seek: LiveSeek = { handle, buffer: binding.iteratorBuffer(handle, 1), range }
  return new Promise<Uint8Array | undefined>((resolve, reject) => {
    // The session counts the iterator as I/O from its open to its close's callback: the session's close waits for it.
    const close = (): void => {
      try {
        binding.iteratorClose(handle)
      } catch {
        // Not closable (the binding's teardown at exit closed it): nothing is left to release but the references.
        onClose()
      }
    }
    // Called once the native side is done with the iterator (it released its memory before calling).
    const onClose = (): void => {
      live.delete(seek)
      state.io.dec()
      session._unref()
    }
    const onOpen = (err: Error | null): void => {
      if (err) {
        close()
        reject(err)
        return
      }
      try {
        binding.iteratorRead(handle, 1)
      } catch (e) {
        close()
        reject(e)
      }
    }
    const onRead = (err: Error | null, keys: ArrayBuffer[]): void => {
      // The answer first: the close (a call into libuv's pool, about as long on this thread as the read's) runs
      // once the caller has gone on.
      closeLater(close)
      if (err) reject(err)
      else resolve(keys.length === 0 ? undefined : Buffer.from(keys[0]!))
    }
    live.add(seek)
    session._ref()
    state.io.inc()
    try {
      binding.iteratorOpen(
        state._handle,
        handle,
        session._columnFamily._handle,
        empty,
        range.gte ?? empty,
        range.lt ?? empty,
        range.lte ?? empty,
        range.reverse ?? false,
        true,
        session._snapshot?._handle ?? undefined,
        seek,
        onOpen,
        onClose,
        onRead,
      )
    } catch (e) {
      // Not opened: the native side holds nothing.
      state.io.dec()
      session._unref()
      live.delete(seek)
      reject(e)
    }
  })
}
