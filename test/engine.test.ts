/**
 * The engine on real RocksDB where storage itself fails: a MultiGet on a table file whose data block is corrupted.
 */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { rocksEngine, type OpenOptions } from '../src/engine.js'
import { StorageFailure } from '../src/errors.js'
import { removeDir, tempDir } from './support/tmp.js'

const options: OpenOptions = { readOnly: false, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 4 * 1024 * 1024, maxWriteBufferNumber: 2, enableStatistics: false }
const key = (i: number) => new TextEncoder().encode(`k${i}`)

/** Lets every pending microtask and I/O callback run: Node reports unhandled rejections in between. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('engine', () => {
  let dir = ''
  let unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => void unhandled.push(reason)
  beforeEach(async () => {
    dir = await tempDir()
    unhandled = []
    process.on('unhandledRejection', onUnhandled)
  })
  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled)
    await removeDir(dir)
  })

  it('should fail a MultiGet on a corrupted table file once, with the cause, and leave no rejection unhandled', async () => {
    const writer = await rocksEngine.open(dir, options)
    await writer.write(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: key(i), value: new Uint8Array(100).fill(7) })))
    await writer.flush()
    await writer.close()
    // Overwrite the start of the table file: its first data block (holding k1, k2) no longer matches its checksum.
    const [table] = (await readdir(dir)).filter((f) => f.endsWith('.sst'))
    const file = await open(join(dir, table!), 'r+')
    await file.write(Buffer.alloc(200, 0xab), 0, 200, 0)
    await file.close()
    const reader = await rocksEngine.open(dir, { ...options, readOnly: true })
    try {
      const error = await reader.getMany([key(1), key(2)]).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StorageFailure)
      expect((error as StorageFailure).reason).toBe('corruption')
      expect((error as StorageFailure).message).toMatch(/checksum mismatch/)
      await turn()
      await turn()
      // Each key's get failed as well: none of those rejections may be left unhandled.
      expect(unhandled).toEqual([])
    } finally {
      await reader.close()
    }
  })
})
