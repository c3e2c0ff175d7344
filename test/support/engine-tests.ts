/**
 * For tests of the engine on real RocksDB: a temp directory per test, the rejections the process reports unhandled
 * during it (a key's read that failed and nobody handled would end a real process), and a table file with a
 * corrupted block.
 */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach } from 'vitest'
import { rocksEngine, type OpenOptions } from '../../src/engine.js'
import { removeDir, tempDir } from './tmp.js'

/** Registers the hooks; the returned `dir` is the running test's directory, `unhandled` what was reported so far. */
export const dirAndUnhandled = (): { dir: string; unhandled: unknown[] } => {
  const t = { dir: '', unhandled: [] as unknown[] }
  const onUnhandled = (reason: unknown) => void t.unhandled.push(reason)
  beforeEach(async () => {
    t.dir = await tempDir()
    t.unhandled = []
    process.on('unhandledRejection', onUnhandled)
  })
  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled)
    await removeDir(t.dir)
  })
  return t
}

/**
 * Writes keys `key(0)` .. `key(99)` (100-byte values of 7s) to `dir` in one table file, then overwrites its first 200
 * bytes: its first data block (holding the first keys, not the last) no longer matches its checksum.
 */
export const corruptedTable = async (dir: string, options: OpenOptions, key: (i: number) => Uint8Array): Promise<void> => {
  const writer = await rocksEngine.open(dir, options)
  await writer.write(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: key(i), value: new Uint8Array(100).fill(7) })))
  await writer.flush()
  await writer.close()
  const [table] = (await readdir(dir)).filter((f) => f.endsWith('.sst'))
  const file = await open(join(dir, table!), 'r+')
  await file.write(Buffer.alloc(200, 0xab), 0, 200, 0)
  await file.close()
}
