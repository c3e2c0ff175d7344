// The part of rocksdb-native (which ships no types) that src/engine.ts uses.
declare module 'rocksdb-native' {
  interface ReadBatch {
    get(key: Uint8Array): Promise<Buffer | null>
    flush(): Promise<void>
    tryFlush(): void
    destroy(): void
  }
  interface WriteBatch {
    put(key: Uint8Array, value: Uint8Array): Promise<void>
    tryPut(key: Uint8Array, value: Uint8Array): void
    tryDelete(key: Uint8Array): void
    tryDeleteRange(start: Uint8Array, end: Uint8Array): void
    flush(): Promise<void>
    destroy(): void
  }
  interface IteratorRange {
    gt?: Uint8Array
    gte?: Uint8Array
    lt?: Uint8Array
    lte?: Uint8Array
    reverse?: boolean
    limit?: number
    values?: boolean
    capacity?: number
  }
  /** The binding's iterator: a streamx Readable of entries. */
  interface Iterator extends AsyncIterable<{ key: Buffer; value: Buffer | null }> {
    /** The next entry it holds, or `null` when it holds none now (more may come: 'readable'; or none: 'end'). */
    read(): { key: Buffer; value: Buffer | null } | null
    on(event: 'readable' | 'end' | 'close', listener: () => void): this
    on(event: 'error', listener: (error: unknown) => void): this
    destroy(): void
  }
  class RocksDB {
    constructor(path: string, options?: Record<string, unknown>)
    readonly path: string
    readonly opened: boolean
    readonly closed: boolean
    ready(): Promise<void>
    close(options?: { force?: boolean }): Promise<void>
    read(options?: { capacity?: number; autoDestroy?: boolean }): ReadBatch
    write(options?: { capacity?: number; autoDestroy?: boolean }): WriteBatch
    iterator(range: IteratorRange): Iterator
    get(key: Uint8Array): Promise<Buffer | null>
    flush(): Promise<void>
    snapshot(): RocksDB
    getProperty(name: string): Promise<string>
  }
  export default RocksDB
}
