/**
 * Follows a shard directory's write-ahead logs from another process than the writer's: each `poll` reads what the
 * writer appended since the last one (whole write batches only, see src/wal.ts). A reader-mode shard feeds the batches
 * into its memory of recent writes, so that a point read that its readers' views are too old for is answered by a
 * view merged with that memory instead of waiting for a view to reopen (README, Design, "Reader mode follows the log").
 *
 * The live logs are the directory's `NNNNNN.log` files; RocksDB starts a new one (a higher number) when it switches
 * memtables, and deletes an old one once its memtable is flushed. A log is read to its end before the next one: once a
 * newer log exists, the older one is complete (RocksDB switches logs only between writes). A log deleted before it
 * was read to its end leaves a gap, which the caller sees in the sequences the batches carry.
 */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeBatch, logStart, readRecords, type LogCursor, type LoggedBatch } from './wal.js'

/** What one poll read. */
export interface TailRead {
  /** The batches appended since the last poll, in log order. */
  readonly batches: LoggedBatch[]
  /** The reading started over at the oldest live log (the first poll, or the first after `restart`). */
  readonly fresh: boolean
  /**
   * Set when the logs hold what this reader cannot use (another kind of batch, a record it cannot read, a log that
   * ends inside a record while a newer one exists): the batches before it are returned, and the next poll starts
   * over. A memory fed by this tail must not be used past it.
   */
  readonly unusable?: string
}

const logName = /^(\d+)\.log$/

export class WalTail {
  #log: number | undefined
  #cursor: LogCursor = logStart

  constructor(readonly dir: string) {}

  /** The next poll starts over at the oldest live log. */
  restart(): void {
    this.#log = undefined
    this.#cursor = logStart
  }

  /** Reads what was appended to the logs since the last poll. Rejects only when the directory cannot be listed. */
  async poll(): Promise<TailRead> {
    const logs: number[] = []
    for (const name of await readdir(this.dir)) {
      const m = logName.exec(name)
      if (m !== null) logs.push(Number(m[1]))
    }
    logs.sort((a, b) => a - b)
    let fresh = false
    if (this.#log === undefined) {
      fresh = true
      if (logs.length === 0) return { batches: [], fresh }
      this.#log = logs[0]!
      this.#cursor = logStart
    }
    const batches: LoggedBatch[] = []
    const unusable = (why: string): TailRead => {
      this.restart()
      return { batches, fresh, unusable: why }
    }
    for (;;) {
      const current: number = this.#log!
      const newer: number | undefined = logs.find((n) => n > current)
      const data = await this.#readFrom(current, this.#cursor.offset)
      if (data === undefined) {
        // Deleted (its memtable was flushed): on with the next one; a gap shows in the sequences.
        if (newer === undefined) return unusable(`the log ${current} is gone and no newer one was listed`)
        this.#log = newer
        this.#cursor = logStart
        continue
      }
      const read = readRecords(data, this.#cursor)
      for (const payload of read.batches) {
        const batch = decodeBatch(payload)
        if (batch === undefined) return unusable(`the log ${current} holds a write batch of another kind`)
        batches.push(batch)
      }
      this.#cursor = read.cursor
      if (read.stop === 'unreadable') return unusable(`the log ${current} holds a record that cannot be read`)
      if (newer === undefined) return { batches, fresh }
      if (read.stop === 'incomplete' || read.cursor.pending.length > 0) return unusable(`the log ${current} ends inside a record`)
      this.#log = newer
      this.#cursor = logStart
    }
  }

  /** The bytes of log `n` from `offset` to its end now, or `undefined` if it no longer exists. */
  async #readFrom(n: number, offset: number): Promise<Uint8Array | undefined> {
    let file
    try {
      file = await open(join(this.dir, `${String(n).padStart(6, '0')}.log`), 'r')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
    }
    try {
      const { size } = await file.stat()
      if (size <= offset) return new Uint8Array(0)
      const data = Buffer.allocUnsafe(size - offset)
      let got = 0
      while (got < data.length) {
        const { bytesRead } = await file.read(data, got, data.length - got, offset + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return data.subarray(0, got)
    } finally {
      await file.close()
    }
  }
}
