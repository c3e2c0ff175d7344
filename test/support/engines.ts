/**
 * Test engines over the real one: rocksdb-native handles with some calls replaced, per role, to hold, count or
 * corrupt what reaches RocksDB.
 */
import { overriding } from '../../src/engine.js'
import { rocksEngine, type Engine, type StorageHandle } from '../../src/index.js'

type Overrides = (handle: StorageHandle, path: string) => Partial<Omit<StorageHandle, 'path' | 'readOnly'>>

/**
 * rocksdb-native, whose primaries' handles get `primary(handle, path)`'s calls and readers' handles `reader(handle,
 * path)`'s (each the handle's own calls where it gives none); a role without overrides gets the handle as it is.
 */
export const overridingHandles = (overrides: { readonly primary?: Overrides; readonly reader?: Overrides }): Engine => ({
  open: async (path, options) => {
    const handle = await rocksEngine.open(path, options)
    const override = options.readOnly ? overrides.reader : overrides.primary
    return override === undefined ? handle : overriding(handle, override(handle, path))
  },
})

/** Something that makes calls wait until a test lets them go (see `gate` in test/support/harness.ts). */
interface Gate {
  pass(): Promise<void>
}

/** rocksdb-native whose `role` handles' `call` (a write batch, or a MultiGet) waits at `gate` before reaching RocksDB. */
export const holding = (gate: Gate, role: 'primary' | 'reader', call: 'write' | 'getManySettled'): Engine =>
  overridingHandles({
    [role]: (handle: StorageHandle) =>
      call === 'write'
        ? {
            write: async (ops: Parameters<StorageHandle['write']>[0]) => {
              await gate.pass()
              return handle.write(ops)
            },
          }
        : {
            getManySettled: async (keys: readonly Uint8Array[]) => {
              await gate.pass()
              return handle.getManySettled!(keys)
            },
          },
  })

/**
 * rocksdb-native whose opens of `role` wait at `gate`: `before` RocksDB is asked (the open is still to come), or
 * `after` it opened the handle (the open is in RocksDB's hands). `seen` collects the path of every open asked.
 */
export const holdingOpens = (gate: Gate, role: 'primary' | 'reader', at: 'before' | 'after', seen?: string[]): Engine => ({
  open: async (path, options) => {
    seen?.push(path)
    const held = options.readOnly === (role === 'reader')
    if (held && at === 'before') await gate.pass()
    const handle = await rocksEngine.open(path, options)
    if (held && at === 'after') await gate.pass()
    return handle
  },
})
