/**
 * Whole views: how a read-only handle proves that it sees every write up to the sequence it claims.
 *
 * RocksDB's read-only open reads the MANIFEST (which table files exist, which WAL to start from) and then the WAL
 * files. When the primary's flush installs a table file and deletes the old WAL between those two steps, the new
 * view sees the newer WAL but not the flushed table: a whole memtable is missing (a hole), while the shard sequence
 * it reads, written later, says the view is current. Measured with the raw binding: 5 such views in 16,226 opens.
 *
 * The defence is a flush epoch written into the data itself:
 * - the primary's runtime owns every memtable switch: it flushes on its own triggers, one flush at a time, and keeps
 *   the memtable far below the size at which RocksDB would switch it by itself (see ShardRuntime's flush triggers);
 * - every write batch stores its epoch `e` in slot `e % epochSlots`. Writes go on while a flush runs, and JavaScript
 *   cannot see the instant the flush switches the memtable, so a batch written beside a flush may land in the
 *   memtable it switches out or in the next one: such batches stamp a *boundary* epoch of their own. Batches
 *   written with no flush running stamp a *solid* epoch: the first after a flush stamps a new one (the boundary epoch
 *   itself if no batch took it), and no flush begins before a solid batch was written. So every memtable holds a
 *   solid epoch that no other memtable holds, and epochs go up without gaps (a primary's open starts a new one);
 * - a view is whole when, `K` being the greatest epoch it sees, every epoch of `[max(1, K - epochSlots + 1), K]` is
 *   in its slot. A hole is a memtable the view misses while it sees a later one: that memtable's solid epoch is
 *   missing from its slot (the slot holds an older epoch, or nothing), so the check fails. Only a view that misses a
 *   memtable at least `epochSlots / 2` flushes older than the newest one it sees could pass (a flush spends at most
 *   two epochs); one open spans a few flushes at most.
 *
 * The check is one MultiGet of the sequence key and every epoch slot, done once per open. It works the same for a
 * reader-mode index in another process: nothing but the data is consulted. A view that fails it is closed and
 * reopened (counted in `stats().shards[i].integrity.tornViews` and announced as a `torn-view` event); it is never
 * served.
 */
import type { StorageHandle, WriteOp } from './engine.js'
import { allEpochKeys, decodeSequence, epochKey, epochSlots, identityKey, sequenceKey, sequenceValue } from './keys.js'

/**
 * The switch that turns the view check off, for the test that shows the check is what catches torn views (a stress
 * run with it off must find some). Never turned off outside that test: not part of the public API.
 */
export const viewCheck = { enabled: true }

/** What one batch stamps: the shard sequence it takes and the epoch of the memtable it goes to. */
export interface Stamp {
  readonly seq: number
  readonly epoch: number
}

/** Appends the sequence (and, for a {@link Stamp}, the epoch) puts to a batch; returns the sequence. */
export const stampOps = (ops: WriteOp[], stamp: number | Stamp): number => {
  const seq = typeof stamp === 'number' ? stamp : stamp.seq
  ops.push({ type: 'put', key: sequenceKey, value: sequenceValue(seq) })
  if (typeof stamp !== 'number') ops.push({ type: 'put', key: epochKey(stamp.epoch), value: sequenceValue(stamp.epoch) })
  return seq
}

/** What a handle's view holds of the shard's bookkeeping. */
export interface ViewState {
  /** The sequence of the last batch the view reflects (0: none). */
  readonly seq: number
  /** The greatest flush epoch the view sees (0: none, a shard written before epochs existed or never written). */
  readonly epoch: number
  /** Epochs of `[max(1, epoch - epochSlots + 1), epoch]` missing from their slots: non-empty means a torn view. */
  readonly missing: readonly number[]
  /** The shard's identity entry (see `identityKey`), or undefined for a shard that has none (yet). */
  readonly identity: Uint8Array | undefined
}

/** Reads the sequence, the epoch slots and the identity in one MultiGet and checks that the view is whole. */
export const readViewState = async (handle: StorageHandle): Promise<ViewState> => {
  const [seqValue, identity, ...slots] = await handle.getMany([sequenceKey, identityKey, ...allEpochKeys])
  const held = slots.map((v) => (v === undefined ? 0 : decodeSequence(v)))
  const epoch = Math.max(0, ...held)
  const missing: number[] = []
  for (let e = Math.max(1, epoch - epochSlots + 1); e <= epoch; e++) if (held[e % epochSlots] !== e) missing.push(e)
  return { seq: decodeSequence(seqValue), epoch, missing, identity }
}
