/**
 * Follows a shard directory's write-ahead logs from another process than the writer's: each `poll` reads what the
 * writer appended since the last one (whole write batches only, see src/wal.ts). A reader-mode shard feeds the batches
 * into its memory of recent writes, so that a point read that its readers' views are too old for is answered by a
 * view merged with that memory instead of waiting for a view to reopen (README, Design, "Reader mode follows the log").
 *
 * The live logs are the directory's `NNNNNN.log` files; RocksDB starts a new one (a higher number) when it switches
 * memtables, and deletes an old one once its memtable is flushed. A log is read to its end before the next one: once a
 * newer log exists, the older one is complete (RocksDB switches logs only between writes). The log being read stays
 * open between polls, so that its end can still be read once RocksDB deleted it (a flush of a small memtable takes
 * less time than between two polls); only a log created and deleted between two polls leaves a gap, which the caller
 * sees in the sequences the batches carry, once a batch after it is read (until then a poll says it is not
 * `complete`). `close` releases the open log.
 *
 * The reads are synchronous, on purpose: a poll reads what was just appended to a file the writer has in the page
 * cache (tens of microseconds of the event loop per poll), while an asynchronous read waits for a thread of libuv's
 * pool, which RocksDB's own reads, writes and opens keep busy: under a steady writer that wait was most of a point
 * read's latency (bench/visibility.ts: p99 about 19 ms asynchronous, about 7 ms synchronous, in scratch runs). The
 * first poll after a start reads the live logs whole (at most what the writer wrote since its last flush).
 */
import { closeSync, fstatSync, openSync, readSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { decodeBatch, logStart, readRecords, type LogCursor, type LoggedBatch } from './wal.js'

/** What one poll read. */
export interface TailRead {
  /** The batches appended since the last poll, in log order. */
  readonly batches: LoggedBatch[]
  /** The reading started over at the oldest live log (the first poll, or the first after `restart`). */
  readonly fresh: boolean
  /**
   * Whether the batches read so far are known to be every batch written up to the end of the log being read: false
   * from a move to a newer log until a batch of it is read. A log created, written and deleted between two polls is
   * never listed, and the tail moves past it unknowing; the first batch read after the move shows such a gap (its
   * sequence does not follow), but until one is read nothing does. A memory fed by this tail must not claim to hold
   * every write made before the poll while this is false.
   */
  readonly complete: boolean
  /**
   * Set when the logs hold what this reader cannot use (another kind of batch, a record it cannot read, a log that
   * ends inside a record while a newer one exists): the batches before it are returned, and the next poll starts
   * over. A memory fed by this tail must not be used past it.
   */
  readonly unusable?: string
}

const logName = /^(\d+)\.log$/
/** The file name of log `n`. */
const logFile = (n: number): string => `${String(n).padStart(6, '0')}.log`

export class WalTail {
  #log: number | undefined
  #cursor: LogCursor = logStart
  /** The log `#log`, open (its file descriptor; undefined until first read, or once closed). */
  #file: number | undefined
  /** Closed: polls read nothing. */
  #closed = false
  /** See {@link TailRead.complete}. */
  #complete = true

  constructor(readonly dir: string) {}

  /** The next poll starts over at the oldest live log. */
  restart(): void {
    this.#log = undefined
    this.#cursor = logStart
    this.#complete = true
    this.#release()
  }

  /** Releases the open log; a poll after it reads nothing and says the tail is unusable. */
  close(): void {
    this.#closed = true
    this.restart()
  }

  #release(): void {
    const file = this.#file
    this.#file = undefined
    if (file !== undefined) {
      try {
        closeSync(file)
      } catch {
        // already closed
      }
    }
  }

  /** Reads what was appended to the logs since the last poll. Rejects when the directory or a log cannot be read. */
  async poll(): Promise<TailRead> {
    if (this.#closed) return { batches: [], fresh: true, complete: false, unusable: 'the tail is closed' }
    const logs: number[] = []
    for (const name of readdirSync(this.dir)) {
      const m = logName.exec(name)
      if (m !== null) logs.push(Number(m[1]))
    }
    logs.sort((a, b) => a - b)
    let fresh = false
    if (this.#log === undefined) {
      fresh = true
      if (logs.length === 0) return { batches: [], fresh, complete: true }
      this.#log = logs[0]!
      this.#cursor = logStart
    }
    const batches: LoggedBatch[] = []
    const unusable = (why: string): TailRead => {
      this.restart()
      return { batches, fresh, complete: false, unusable: why }
    }
    for (;;) {
      const current: number = this.#log!
      const newer: number | undefined = logs.find((n) => n > current)
      const replaced = this.#replaced(current, logs, newer)
      if (replaced !== undefined) return unusable(replaced)
      const data = this.#readFrom(current, this.#cursor.offset)
      if (data === undefined) {
        // Deleted (its memtable was flushed): on with the next one; a gap shows in the sequences.
        if (newer === undefined) return unusable(`the log ${current} is gone and no newer one was listed`)
        this.#moveTo(newer)
        continue
      }
      const read = readRecords(data, this.#cursor)
      for (const payload of read.batches) {
        const batch = decodeBatch(payload)
        if (batch === undefined) return unusable(`the log ${current} holds a write batch of another kind`)
        batches.push(batch)
        this.#complete = true
      }
      this.#cursor = read.cursor
      if (read.stop === 'unreadable') return unusable(`the log ${current} holds a record that cannot be read`)
      if (newer === undefined) return { batches, fresh, complete: this.#complete }
      if (read.stop === 'incomplete' || read.cursor.pending.length > 0) return unusable(`the log ${current} ends inside a record`)
      this.#moveTo(newer)
    }
  }

  /**
   * Why the open log `n` can no longer be trusted to be the directory's, if it cannot: RocksDB deletes a log only
   * once a newer one exists, so a log gone with none newer listed, or a file of that number that is not the one held
   * open, means the directory was replaced (restored from a copy, say) under the tail, whose reads of the file it
   * holds would find nothing new for ever.
   */
  #replaced(n: number, logs: readonly number[], newer: number | undefined): string | undefined {
    const file = this.#file
    if (file === undefined) return undefined
    if (!logs.includes(n)) return newer === undefined ? `the log ${n} is gone and no newer one was listed` : undefined
    try {
      if (statSync(join(this.dir, logFile(n))).ino !== fstatSync(file).ino) return `the log ${n} was replaced by another file`
    } catch (e) {
      // Deleted since the listing: a newer one exists, or the next poll sees none.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
    return undefined
  }

  #moveTo(log: number): void {
    this.#release()
    this.#log = log
    this.#cursor = logStart
    // A log between the two may have come and gone unseen: nothing says otherwise until a batch of this one is read.
    this.#complete = false
  }

  /**
   * The bytes of log `n` (the one `#log` names) from `offset` to its end now, or `undefined` if it no longer exists
   * and was not open yet.
   */
  #readFrom(n: number, offset: number): Uint8Array | undefined {
    if (this.#file === undefined) {
      try {
        this.#file = openSync(join(this.dir, logFile(n)), 'r')
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw e
      }
    }
    const file = this.#file
    const { size } = fstatSync(file)
    if (size <= offset) return new Uint8Array(0)
    const data = Buffer.allocUnsafe(size - offset)
    let got = 0
    while (got < data.length) {
      const bytesRead = readSync(file, data, got, data.length - got, offset + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return data.subarray(0, got)
  }
}
