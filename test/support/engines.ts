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
