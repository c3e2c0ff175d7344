/**
 * Read-write handles of the real engine (rocksdb-native) in temp dirs, for tests of the data plane below the index.
 */
import { afterEach } from 'vitest'
import { rocksEngine, type StorageHandle } from '../../src/engine.js'
import { removeDir, tempDir } from './tmp.js'

/**
 * For the tests of one file: a function that opens a read-write handle on a new temp dir (small memtables); every
 * handle it opened is closed and its directory removed after the test that opened it.
 */
export const handlesPerTest = (): (() => Promise<StorageHandle>) => {
  const opened: { handle: StorageHandle; dir: string }[] = []
  afterEach(async () => {
    for (const { handle, dir } of opened.splice(0)) {
      await handle.close()
      await removeDir(dir)
    }
  })
  return async () => {
    const dir = await tempDir()
    const handle = await rocksEngine.open(dir, { readOnly: false, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 4 << 20, maxWriteBufferNumber: 2, enableStatistics: false })
    opened.push({ handle, dir })
    return handle
  }
}
