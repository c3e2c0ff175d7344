/**
 * Torn and stale views on demand, for the tests of the view check (src/views.ts).
 *
 * A torn view is what RocksDB's read-only open sees when the primary's flush lands between its two steps: the MANIFEST
 * from before the flush (the flushed memtable is not in any table file it knows) and the WAL files from after it (the
 * memtable's old WAL is gone). The race is rare (a few in 10,000 opens), so these helpers build that directory state
 * on purpose, from real files of a real primary: `snapshot` copies a shard directory before a flush, `tornCopy` puts
 * the WAL files of the live directory (after the flush) beside that old MANIFEST. RocksDB then opens the copy
 * read-only exactly as it opens a directory in that race.
 *
 * {@link RedirectingEngine} wraps the real engine (through a FaultInjector, say) and sends chosen read-only opens of a
 * shard directory to such a copy: everything else is the real engine on the real directory.
 */
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Engine, OpenOptions, StorageHandle } from '../../src/index.js'

/** Copies every file of `dir` into a fresh `into` (a shard directory is flat). */
export const snapshot = async (dir: string, into: string): Promise<string> => {
  await rm(into, { recursive: true, force: true })
  await mkdir(into, { recursive: true })
  for (const name of await readdir(dir)) if (name !== 'LOCK') await copyFile(join(dir, name), join(into, name))
  return into
}

/**
 * Turns `copy` (a {@link snapshot} taken before a flush) into the torn state: its WAL files replaced by those of the
 * live directory `live` (taken after the flush, so the flushed memtable's WAL is gone).
 */
export const tornCopy = async (copy: string, live: string): Promise<string> => {
  for (const name of await readdir(copy)) if (name.endsWith('.log')) await rm(join(copy, name))
  for (const name of await readdir(live)) if (name.endsWith('.log')) await copyFile(join(live, name), join(copy, name))
  return copy
}

/** An engine that sends the next read-only opens of one directory to another directory, then behaves normally. */
export class RedirectingEngine implements Engine {
  #plan: { from: string; to: string; times: number } | undefined
  /** Read-only opens sent elsewhere so far. */
  redirected = 0

  constructor(private readonly inner: Engine) {}

  /** The next `times` read-only opens of `from` open `to` instead. */
  redirect(from: string, to: string, times = 1): void {
    this.#plan = { from, to, times }
  }

  open(path: string, options: OpenOptions): Promise<StorageHandle> {
    const plan = this.#plan
    if (plan !== undefined && options.readOnly && path === plan.from && plan.times > 0) {
      plan.times--
      this.redirected++
      return this.inner.open(plan.to, options)
    }
    return this.inner.open(path, options)
  }
}

/**
 * An engine that makes the flush race happen on purpose, at a rate a test can afford: every `every`-th flush of a
 * primary is preceded by a {@link snapshot} of its directory; the write after the flush turns that copy into a
 * {@link tornCopy} (the old MANIFEST with the WAL that now holds the new write), and the next read-only open of the
 * directory opens that copy instead: what the race gives. Everything else is the inner (real) engine on the real
 * directory. Share one between a writer-mode and a reader-mode index.
 */
export class TearingEngine implements Engine {
  /** Per directory: the copy taken before a flush, and whether it is torn yet (a write landed after that flush). */
  readonly #pending = new Map<string, { copy: string; torn: boolean }>()
  #flushes = 0
  #copies = 0
  /** Read-only opens that got a torn copy. */
  tornOpens = 0

  constructor(
    private readonly inner: Engine,
    private readonly workDir: string,
    private readonly every: number,
  ) {}

  async open(path: string, options: OpenOptions): Promise<StorageHandle> {
    if (!options.readOnly) return new TearingHandle(await this.inner.open(path, options), this)
    const pending = this.#pending.get(path)
    if (pending === undefined || !pending.torn) return this.inner.open(path, options)
    this.#pending.delete(path)
    this.tornOpens++
    return this.inner.open(pending.copy, options)
  }

  /** @internal A primary of `path` is about to flush: snapshot it first, every `every`-th time. */
  async beforeFlush(path: string): Promise<string | undefined> {
    if (++this.#flushes % this.every !== 0 || this.#pending.has(path)) return undefined
    try {
      return await snapshot(path, join(this.workDir, `tear-${++this.#copies}`))
    } catch {
      return undefined // a table file went away (compaction) while it was copied: no tear this time
    }
  }

  /** @internal The flush after a snapshot is done: the next read-only open of `path` gets the torn copy. */
  afterFlush(path: string, copy: string): void {
    this.#pending.set(path, { copy, torn: false })
  }

  /** @internal A write landed on the primary of `path`: a copy taken before the last flush gets the WAL holding it. */
  async afterWrite(path: string): Promise<void> {
    const pending = this.#pending.get(path)
    if (pending === undefined || pending.torn) return
    try {
      await tornCopy(pending.copy, path)
      pending.torn = true
    } catch {
      this.#pending.delete(path) // a WAL file went away while it was copied: no tear this time
    }
  }
}

class TearingHandle implements StorageHandle {
  constructor(
    private readonly inner: StorageHandle,
    private readonly engine: TearingEngine,
  ) {}
  get path(): string {
    return this.inner.path
  }
  get readOnly(): boolean {
    return this.inner.readOnly
  }
  getMany(keys: readonly Uint8Array[]) {
    return this.inner.getMany(keys)
  }
  async write(ops: Parameters<StorageHandle['write']>[0]): Promise<void> {
    await this.inner.write(ops)
    await this.engine.afterWrite(this.path)
  }
  iterate(range: Parameters<StorageHandle['iterate']>[0]) {
    return this.inner.iterate(range)
  }
  withSnapshot<T>(fn: Parameters<StorageHandle['withSnapshot']>[0]): Promise<T> {
    return this.inner.withSnapshot(fn as never) as Promise<T>
  }
  property(name: string) {
    return this.inner.property(name)
  }
  close() {
    return this.inner.close()
  }
  async flush(): Promise<void> {
    const copy = await this.engine.beforeFlush(this.path)
    await this.inner.flush()
    if (copy !== undefined) this.engine.afterFlush(this.path, copy)
  }
}
