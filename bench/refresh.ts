/**
 * Refresh cost against an unflushed WAL: a read-write primary stays open holding N unflushed puts; a read-only
 * instance of the same directory (what a reader refresh opens) is opened and closed repeatedly and timed. For the
 * largest N it is measured again after `primary.flush()`.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { defaults, rocksEngine, type StorageHandle } from '../src/index.js'
import type { WriteOp } from '../src/engine.js'
import { median, timeNs } from './measure.js'

/** Puts per write batch while filling the WAL. */
export const putsPerBatch = 100

export interface OpenSample {
  readonly openNs: number
  readonly closeNs: number
}

export interface RefreshRow {
  readonly records: number
  readonly flushed: boolean
  /** Bytes of `*.log` (WAL) and `*.sst` files in the directory when the opens ran. */
  readonly walBytes: number
  readonly sstFiles: number
  readonly samples: readonly OpenSample[]
  readonly medianOpenNs: number
  readonly medianCloseNs: number
  readonly medianTotalNs: number
}

/** 40-byte key and 40-byte value of record i. */
const key = (i: number): Buffer => Buffer.from(`key-${String(i).padStart(36, '0')}`)
const value = (i: number): Buffer => Buffer.from(`val-${String(i * 2654435761 % 1e12).padStart(36, '0')}`)

/**
 * Bytes of the WAL (`*.log`) and number of table files (`*.sst`) in a RocksDB directory. A WAL file deleted between
 * the listing and its `stat` (by a flush of a live primary) counts for nothing.
 */
export const files = async (dir: string): Promise<{ walBytes: number; sstFiles: number }> => {
  let walBytes = 0
  let sstFiles = 0
  for (const name of await readdir(dir)) {
    if (name.endsWith('.log')) {
      walBytes += await stat(join(dir, name)).then(
        (st) => st.size,
        (e: unknown) => {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0
          throw e
        },
      )
    }
    if (name.endsWith('.sst')) sstFiles++
  }
  return { walBytes, sstFiles }
}

/**
 * Opens the directory read-only (`maxOpenFiles: -1`, the readers' settings) once untimed, then `repeats` times
 * timed; each instance is checked to see the last record (outside the timing) and closed (timed separately).
 */
const measureOpens = async (dir: string, records: number, flushed: boolean, repeats: number): Promise<RefreshRow> => {
  const { walBytes, sstFiles } = await files(dir)
  const samples: OpenSample[] = []
  for (let r = 0; r <= repeats; r++) {
    const opened = await timeNs(() => rocksEngine.open(dir, { readOnly: true, ...defaults.readerRocksdb, maxOpenFiles: -1 }))
    const handle = opened.value
    let closeNs: number
    try {
      if (records > 0) {
        const [last] = await handle.getMany([key(records - 1)])
        if (last === undefined) throw new Error(`read-only open of ${dir} does not see record ${records - 1}`)
      }
    } finally {
      closeNs = (await timeNs(() => handle.close())).ns
    }
    if (r > 0) samples.push({ openNs: opened.ns, closeNs })
  }
  return {
    records,
    flushed,
    walBytes,
    sstFiles,
    samples,
    medianOpenNs: median(samples.map((s) => s.openNs)),
    medianCloseNs: median(samples.map((s) => s.closeNs)),
    medianTotalNs: median(samples.map((s) => s.openNs + s.closeNs)),
  }
}

const fill = async (primary: StorageHandle, records: number): Promise<void> => {
  for (let i = 0; i < records; i += putsPerBatch) {
    const ops: WriteOp[] = []
    for (let j = i; j < Math.min(records, i + putsPerBatch); j++) ops.push({ type: 'put', key: key(j), value: value(j) })
    await primary.write(ops)
  }
}

/** One fresh directory per N: primary opened read-write, N puts written (no flush), opens measured. */
export const refreshCost = async (
  tempDir: (name: string) => Promise<string>,
  counts: readonly number[],
  repeats: number,
  progress: (line: string) => void,
): Promise<RefreshRow[]> => {
  const rows: RefreshRow[] = []
  const largest = Math.max(...counts)
  for (const records of counts) {
    const dir = await tempDir(`refresh-${records}`)
    const primary = await rocksEngine.open(dir, { readOnly: false, ...defaults.primaryRocksdb })
    try {
      await fill(primary, records)
      rows.push(await measureOpens(dir, records, false, repeats))
      progress(`refresh: N=${records} unflushed done`)
      if (records === largest) {
        await primary.flush()
        rows.push(await measureOpens(dir, records, true, repeats))
        progress(`refresh: N=${records} after flush done`)
      }
    } finally {
      await primary.close()
    }
  }
  return rows
}
