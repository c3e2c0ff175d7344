/**
 * Where things live on disk, and which shard a partition belongs to.
 *
 * ```
 * <root>/rockvisor.json                     the root's manifest: format and shard count (fixed at creation)
 * <root>/<topic dir>/TOPIC                  the topic's name, verbatim
 * <root>/<topic dir>/index/<shard>/         one RocksDB directory per (topic, shard)
 * ```
 *
 * A topic never becomes a raw path component: {@link topicDirName} maps it to a name made only of `[a-z0-9_~-]`,
 * injectively, so no topic can reach outside the root or land in another topic's directory.
 */
import { createHash } from 'node:crypto'
import type { Dirent } from 'node:fs'
import { link, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import murmur from 'murmurhash'
import { readerRocksdb } from './defaults.js'
import { rocksEngine, type StorageHandle } from './engine.js'
import { InvalidInput, StorageFailure, storageFailure } from './errors.js'
import { View, identityKey, rangeStart, readIdentity } from './keys.js'
import { checkInteger, limits, utf8 } from './meta.js'

/** Longest directory name produced; longer encodings are replaced by a hash (see {@link topicDirName}). */
const maxDirName = 200

/**
 * The directory name of a topic. Lower-case ASCII letters, digits, `_` and `-` stand for themselves; every other
 * UTF-8 byte (upper case included, so that case-insensitive file systems cannot merge two topics) becomes `~` and
 * two hex digits. An encoding longer than 200 characters becomes `~h` + the SHA-256 of the topic, and the topic's
 * `TOPIC` file is checked on open, so even a hash collision is detected rather than silently shared.
 */
export const topicDirName = (topic: string): string => {
  let out = ''
  for (const byte of utf8(topic)) {
    const safe =
      (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x5f || byte === 0x2d
    out += safe ? String.fromCharCode(byte) : `~${byte.toString(16).padStart(2, '0')}`
  }
  return out.length <= maxDirName ? out : `~h${createHash('sha256').update(topic, 'utf8').digest('hex')}`
}

/** The inverse of {@link topicDirName} for names that are not hashed; `undefined` for hashed or foreign names. */
export const topicOfDirName = (name: string): string | undefined => {
  if (name.startsWith('~h') || !/^(?:[a-z0-9_-]|~[0-9a-f]{2})+$/.test(name)) return undefined
  const bytes: number[] = []
  for (let i = 0; i < name.length; i++) {
    if (name[i] === '~') {
      bytes.push(parseInt(name.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(name.charCodeAt(i))
  }
  const topic = new TextDecoder().decode(Uint8Array.from(bytes))
  // Only names topicDirName itself produces map back (not `~61` for `a`, nor invalid UTF-8, nor over-long names).
  return topicDirName(topic) === name ? topic : undefined
}

/** The shard of a partition: `murmur3_32(String(partition), seed 0) % shards`, the seed's routing. */
export const shardOf = (partition: number, shards: number): number => murmur.v3(String(partition), 0) % shards

/** Checks a shard count: an integer in [1, 65536]. */
export const checkShards = (shards: unknown): number => {
  const n = checkInteger('shards', shards, limits.maxShards)
  if (n === 0) throw new InvalidInput({ field: 'shards', message: 'shards: must be at least 1, got 0' })
  return n
}

/** A shard's identity: which topic, which shard number, its directory and a printable id. */
export interface ShardAddress {
  readonly topic: string
  readonly shard: number
  /** The RocksDB directory. */
  readonly dir: string
  /** `<topic dir>/<shard>`: unique under a root, ASCII, stable. Used in stats, events and errors. */
  readonly id: string
}

/** The address of (topic, shard) under root. Pure: creates nothing. */
export const shardAddress = (root: string, topic: string, shard: number): ShardAddress => {
  const topicDir = topicDirName(topic)
  return { topic, shard, dir: join(root, topicDir, 'index', String(shard)), id: `${topicDir}/${shard}` }
}


/** Options of {@link ensureTopicDir}. */
export interface TopicDirOptions {
  /**
   * true (the default, writer mode): create `<topic dir>/index/` and the `TOPIC` file if they are missing. false
   * (reader mode): create nothing, only check what exists.
   */
  readonly create?: boolean
  /**
   * The root's shard count (its manifest's). A topic directory created now records it in its `SHARDS` file; one
   * that has a `SHARDS` file must agree with it (see {@link checkTopicShards}). Undefined: neither.
   */
  readonly shards?: number
}

/** The file of a topic directory that records the root's shard count when the topic was created. */
const shardsFile = (dir: string): string => join(dir, 'SHARDS')

/**
 * Checks that a topic directory was created under the root's shard count `shards`: its `SHARDS` file, when it has
 * one (topics created before rockvisor wrote it have none, and are not checked), must hold that count. A manifest
 * edited or replaced with another valid count passes every check of the root's directories when the count is
 * larger, yet routes stored partitions to other shards (their reads would answer empty, their writes go elsewhere);
 * the topic's own record tells. A disagreement is a `corruption` StorageFailure (path: the `SHARDS` file) naming
 * both counts and how to rebuild the manifest; an unreadable `SHARDS` file is `corruption` too. Resolves true when
 * the topic has a record (which agreed), false when it has none (yet).
 */
export const checkTopicShards = (root: string, topic: string, shards: number): Promise<boolean> => checkShardsFile(root, topicDirName(topic), shards)

/** {@link checkTopicShards} of the topic directory named `dir` under the root: true if it has a record (that agreed). */
const checkShardsFile = async (root: string, dir: string, shards: number): Promise<boolean> => {
  const file = shardsFile(join(root, dir))
  let text: string | undefined
  try {
    text = await readIfExists(file)
  } catch (e) {
    // A topic directory that is not a directory (or not there) has no record: the checks of its shards say the rest.
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return false
    throw storageFailure(file, e)
  }
  if (text === undefined) return false
  const recorded = /^[1-9][0-9]{0,4}\n?$/.test(text) ? Number(text) : Number.NaN
  if (recorded === shards) return true
  throw new StorageFailure({
    reason: 'corruption',
    path: file,
    message: Number.isNaN(recorded)
      ? `the file ${file}, which records the shard count its topic was created under, is unreadable (${JSON.stringify(text.slice(0, 40))}); write the root's shard count into it followed by a newline`
      : `the topic directory ${join(root, dir)} was created under ${recorded} shards (${file}), but the manifest ${manifestFile(root)} says ${shards}: routing with ${shards} shards would send its stored partitions to the wrong shards. If the manifest was edited or replaced, ${rebuildHint(root, true)}`,
  })
}

/**
 * Checks that the topic directory belongs to this topic: its `TOPIC` file must hold the topic verbatim, else it
 * throws {@link StorageFailure} with reason `corruption` (two topics whose names hash alike, or a tampered root).
 * With `create` (the default) it first creates the directory, `index/` and the `TOPIC` file if needed (concurrent
 * creators: exactly one writes `TOPIC`). With `create: false` it creates nothing: a missing directory, or one without
 * a `TOPIC` file yet (a writer creates it before any shard), returns quietly and the caller treats the topic's shards
 * as absent. Any other I/O error is a StorageFailure; a non-boolean `create` is InvalidInput. Resolves true when the
 * topic records its shard count (`SHARDS`) and it is `options.shards` (so that count is known right for the topic),
 * false otherwise (no `shards` given, a topic created before the record existed, or one not created yet).
 */
export const ensureTopicDir = async (root: string, topic: string, options: TopicDirOptions = {}): Promise<boolean> => {
  const create = options.create ?? true
  if (typeof create !== 'boolean') throw new InvalidInput({ field: 'create', message: `create: must be a boolean, got ${typeof create}` })
  const dir = join(root, topicDirName(topic))
  const marker = join(dir, 'TOPIC')
  try {
    if (create) await mkdir(join(dir, 'index'), { recursive: true })
    let owner = await readIfExists(marker)
    if (owner === undefined) {
      if (!create) return false
      // The shard count first: a topic directory with its TOPIC file always has it (concurrent creators of one
      // root write the same count; exactly one file is made).
      if (options.shards !== undefined) await createOnce(shardsFile(dir), `${options.shards}\n`)
      await createOnce(marker, topic)
      owner = await readFile(marker, 'utf8')
    }
    if (owner !== topic) {
      throw new StorageFailure({
        reason: 'corruption',
        path: dir,
        message: `the directory ${dir} belongs to another topic (${JSON.stringify(owner.slice(0, 80))})`,
      })
    }
  } catch (e) {
    // A file where the topic's directory (or its index/) belongs: the root is damaged, retrying will not cure it.
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      throw new StorageFailure({ reason: 'corruption', path: dir, message: `the topic directory ${dir}, or its index/, is not a directory: move the file out of the root`, cause: e })
    }
    throw storageFailure(dir, e)
  }
  return options.shards !== undefined && (await checkTopicShards(root, topic, options.shards))
}

/** The root's manifest, `rockvisor.json`. */
export interface RootManifest {
  readonly format: 1
  readonly shards: number
}

/** The path of a root's manifest. */
const manifestFile = (root: string): string => join(root, 'rockvisor.json')

const manifestText = (shards: number): string => `${JSON.stringify({ format: 1, shards } satisfies RootManifest)}\n`

/** How to rebuild a manifest, for error messages. `force` when a valid (but wrong) manifest must be replaced. */
const rebuildHint = (root: string, force: boolean): string =>
  `rebuild it from the shard directories with \`rockvisor rebuild-manifest --root ${root}${force ? ' --force' : ''}\` (or \`rebuildManifest(root${force ? ', { force: true }' : ''})\`)`

/**
 * Reads a root's manifest: `undefined` if there is none. A manifest that is not `{"format":1,"shards":N}` with N in
 * 1..65536 is a `corruption` StorageFailure (path: the file); a read error is a StorageFailure.
 */
const readManifest = async (root: string): Promise<RootManifest | undefined> => {
  const file = manifestFile(root)
  let text: string | undefined
  try {
    text = await readIfExists(file)
  } catch (e) {
    throw storageFailure(file, e)
  }
  if (text === undefined) return undefined
  let why: string | undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    why = `not JSON: ${(e as Error).message}`
  }
  if (why === undefined) {
    const m = parsed as Partial<Record<keyof RootManifest, unknown>> | null
    const valid =
      typeof m === 'object' && m !== null && m.format === 1 && Number.isSafeInteger(m.shards) && (m.shards as number) >= 1 && (m.shards as number) <= limits.maxShards
    if (valid) return { format: 1, shards: m.shards as number }
    why = `it holds ${JSON.stringify(text.trim().slice(0, 80))}`
  }
  throw new StorageFailure({
    reason: 'corruption',
    path: file,
    message: `unreadable manifest ${file} (${why}): it must hold {"format":1,"shards":N} with N in 1..${limits.maxShards}; ${rebuildHint(root, false)}`,
  })
}

/** What a scan of a root found in one topic directory (a directory holding a `TOPIC` file or an `index/` one). */
interface ScannedTopic {
  /** The directory's name under the root. */
  readonly dir: string
  /** The content of its `TOPIC` file, `undefined` if it has none. */
  readonly topic: string | undefined
  /** The shard directories under `index/`, ascending. */
  readonly shards: readonly number[]
  /** Entries under `index/` that are not shard directories, as paths relative to the root. */
  readonly foreign: readonly string[]
}

/** A shard directory's name: the shard number in decimal, as {@link shardAddress} writes it. */
const shardDirName = /^(?:0|[1-9][0-9]{0,4})$/

/**
 * Lists the topic directories of a root, without opening anything: `undefined` if the root does not exist. Any
 * directory holding a `TOPIC` file or an `index/` directory counts (a writer creates both before any shard).
 */
const scanRoot = async (root: string): Promise<ScannedTopic[] | undefined> => {
  try {
    const entries = await listDir(root)
    if (entries === undefined) return undefined
    const topics: ScannedTopic[] = []
    for (const entry of entries) {
      if (!(await isDir(root, entry))) continue
      const dir = join(root, entry.name)
      const inside = (await listDir(dir)) ?? []
      const index = inside.find((e) => e.name === 'index')
      const hasTopic = inside.some((e) => e.name === 'TOPIC')
      if (index === undefined && !hasTopic) continue
      const topic = hasTopic ? await readIfExists(join(dir, 'TOPIC')) : undefined
      const shards: number[] = []
      const foreign: string[] = []
      if (index !== undefined && !(await isDir(dir, index))) foreign.push(`${entry.name}/index`)
      else if (index !== undefined) {
        for (const e of (await listDir(join(dir, 'index'))) ?? []) {
          const n = shardDirName.test(e.name) ? Number(e.name) : Number.NaN
          if (n < limits.maxShards && (await isDir(join(dir, 'index'), e))) shards.push(n)
          else foreign.push(`${entry.name}/index/${e.name}`)
        }
      }
      topics.push({ dir: entry.name, topic, shards: shards.sort((a, b) => a - b), foreign })
    }
    return topics
  } catch (e) {
    throw storageFailure(root, e)
  }
}

/** "0..3, 7, 9..10" for [0, 1, 2, 3, 7, 9, 10] (ascending input). */
const ranges = (ns: readonly number[]): string => {
  const parts: string[] = []
  for (let i = 0; i < ns.length; ) {
    let j = i
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++
    parts.push(j === i ? String(ns[i]) : `${ns[i]}..${ns[j]}`)
    i = j + 1
  }
  return parts.join(', ')
}

/** The first `max` items, then how many more. */
const some = (items: readonly string[], max = 5): string =>
  items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`

/** "2 topic directories (orders, x) with shard directories 0..15". */
const describeFound = (topics: readonly ScannedTopic[]): string => {
  const all = [...new Set(topics.flatMap((t) => t.shards))].sort((a, b) => a - b)
  const what = topics.length === 1 ? '1 topic directory' : `${topics.length} topic directories`
  return `${what} (${some(topics.map((t) => t.dir))}) with ${all.length === 0 ? 'no shard directories' : `shard directories ${ranges(all)}`}`
}

/** Refuses a root whose `index/` directories hold anything but shard directories. */
const checkNoForeign = (root: string, topics: readonly ScannedTopic[]): void => {
  const foreign = topics.flatMap((t) => t.foreign)
  if (foreign.length === 0) return
  throw new StorageFailure({
    reason: 'corruption',
    path: join(root, foreign[0]!),
    message: `the root ${root} holds ${some(foreign)} where only shard directories (named 0, 1, 2, ...) belong: rockvisor cannot tell which shard count it was created with; move ${foreign.length === 1 ? 'it' : 'them'} out of the root`,
  })
}

/**
 * Refuses a manifest that disagrees with the shard directories on disk: one numbered at or above its shard count
 * proves the root was created with more shards (fewer directories than shards is normal: they are created lazily).
 */
const checkAgainstDisk = (root: string, shards: number, topics: readonly ScannedTopic[]): void => {
  const beyond = topics.flatMap((t) => t.shards.filter((n) => n >= shards).map((n) => ({ path: `${t.dir}/index/${n}`, n })))
  if (beyond.length > 0) {
    const file = manifestFile(root)
    const highest = Math.max(...beyond.map((b) => b.n))
    throw new StorageFailure({
      reason: 'corruption',
      path: file,
      message: `the manifest ${file} says ${shards} shards, but the root ${root} holds shard directories up to ${highest} (${some(beyond.map((b) => b.path))}): routing with ${shards} shards would send existing partitions to the wrong directories. If the manifest was edited or replaced, ${rebuildHint(root, true)}`,
    })
  }
  checkNoForeign(root, topics)
}

/**
 * Opens a root: creates it with a manifest on first use (unless `create` is false: then a missing root is a
 * `missing` StorageFailure), or reads the manifest and checks that `shards` agrees (a different shard count would
 * route existing partitions to the wrong directories). `shards` undefined means "whatever the root says", or
 * `defaultShards` for a new root. Returns the shard count in force.
 *
 * Never guesses: a root that holds topic directories but no manifest, a manifest whose shard count is below a shard
 * directory's number (or an `index/` entry that is no shard directory) or differs from the count a topic recorded
 * at its creation (its `SHARDS` file, see {@link checkTopicShards}), and an unreadable manifest are each a
 * `corruption` StorageFailure saying what was found and how to rebuild the manifest ({@link rebuildManifest});
 * nothing is written then. A `shards` that disagrees with a valid manifest is InvalidInput. Reads the root's
 * directory listing (two levels below each topic directory) and each topic's `SHARDS` file on every open; opens no
 * database.
 */
export const openRoot = async (root: string, shards: number | undefined, defaultShards: number, create = true): Promise<number> => {
  let manifest = await readManifest(root)
  if (manifest === undefined) {
    const found = await scanRoot(root)
    // A writer creating a root writes its manifest before any topic directory: a concurrent creator's topic
    // directories can only be seen once its manifest exists, so look once more before refusing.
    if (found !== undefined && found.length > 0) manifest = await readManifest(root)
    if (manifest === undefined && found !== undefined && found.length > 0) {
      throw new StorageFailure({
        reason: 'corruption',
        path: root,
        message: `no rockvisor.json in the root ${root}, but ${describeFound(found)} ${found.length === 1 ? 'was' : 'were'} found: opening it as a new root would route existing partitions to the wrong shards; ${rebuildHint(root, false)}`,
      })
    }
    if (manifest === undefined && !create) {
      throw new StorageFailure({
        reason: 'missing',
        path: manifestFile(root),
        message:
          found === undefined
            ? `no rockvisor root at ${root}: the directory does not exist (a reader-mode index opens a root a writer created)`
            : `no rockvisor root at ${root} (${manifestFile(root)} is missing): a reader-mode index opens a root a writer created`,
      })
    }
    if (manifest === undefined) {
      try {
        await mkdir(root, { recursive: true })
        await createOnce(manifestFile(root), manifestText(shards ?? defaultShards))
      } catch (e) {
        throw storageFailure(root, e)
      }
      // Ours, or that of a concurrent creator (then its shard count is checked below like any existing root's).
      manifest = await readManifest(root)
      if (manifest === undefined) {
        throw new StorageFailure({ reason: 'missing', path: manifestFile(root), message: `the manifest ${manifestFile(root)} vanished right after it was created` })
      }
    }
  }
  const scanned = (await scanRoot(root)) ?? []
  checkAgainstDisk(root, manifest.shards, scanned)
  // The count each topic recorded at its creation: a manifest edited to a larger count passes the check above.
  for (const t of scanned) await checkShardsFile(root, t.dir, manifest.shards)
  if (shards !== undefined && shards !== manifest.shards) {
    throw new InvalidInput({
      field: 'shards',
      message: `shards: the root ${root} was created with ${manifest.shards} shards, not ${shards}; a different count would misroute existing partitions`,
    })
  }
  return manifest.shards
}

/**
 * Checks that every partition a shard holds (`partitions`, as {@link partitionsIn} lists them) is routed to that
 * shard by the root's shard count. A manifest edited or replaced to a larger count passes the check of directory
 * numbers (every directory is below the count) yet routes stored partitions elsewhere: their reads would answer
 * empty and their writes go to another directory. Such a shard is a `corruption` StorageFailure (path: the
 * manifest) naming the partitions and where the count sends them, with how to rebuild the manifest.
 */
export const checkRouting = (root: string, address: ShardAddress, shards: number, partitions: readonly number[]): void => {
  const misrouted = partitions.filter((p) => shardOf(p, shards) !== address.shard)
  if (misrouted.length === 0) return
  const file = manifestFile(root)
  throw new StorageFailure({
    reason: 'corruption',
    path: file,
    message: `the manifest ${file} says ${shards} shards, but the shard directory ${address.dir} holds partition(s) that ${shards} shards route to other shards (${some(misrouted.map((p) => `partition ${p} to shard ${shardOf(p, shards)}`))}): reads of them would answer empty and writes go to the wrong directory. If the manifest was edited or replaced, ${rebuildHint(root, true)}`,
  })
}

/** What {@link prepareShardDir} found: see there. */
export type ShardDirState = 'new' | 'existing' | 'absent'

/**
 * Names RocksDB gives its own files (besides `CURRENT`, `LOCK` and the info logs `LOG`, `LOG.old.*`): table files,
 * WALs, blob files, MANIFESTs, OPTIONS, IDENTITY, SESSION_ID, temporaries and the WAL archive. Any of them without a
 * `CURRENT` file is a damaged database.
 */
const rocksdbFile = /(?:\.(?:sst|ldb|log|blob|dbtmp)$)|^(?:MANIFEST-|OPTIONS-)|^(?:IDENTITY|SESSION_ID|archive)$/

/**
 * What RocksDB writes while it creates a database, before the `CURRENT` file that completes the creation: the
 * `IDENTITY` file, the first MANIFEST (`MANIFEST-000001`, which records no file yet) and the temporaries it renames
 * into place (`*.dbtmp`). A directory holding nothing else of RocksDB's is a creation that was cut off (a process
 * killed while its first write to the shard opened it): no write was ever acknowledged in it, and creating the
 * database again writes over those files. Anything else (a table file, a WAL, an OPTIONS file, which RocksDB writes
 * only once the database is created, another MANIFEST) means the database existed.
 */
const creationFile = /^(?:IDENTITY|MANIFEST-000001|[0-9]+\.dbtmp)$/

/**
 * Looks at a shard's RocksDB directory before anything opens it, so that an open never creates a database over a
 * damaged one (RocksDB, allowed to create, writes a fresh `CURRENT` over a directory that lost its own and then
 * deletes every table file as obsolete). Returns:
 *
 * - `'existing'`: the directory has a `CURRENT` file; open it with `createIfMissing: false`.
 * - `'new'` (writer mode): there was no directory (it is created now, with its parents), or it holds no RocksDB
 *   file (empty, or only `LOCK`, the info logs `LOG`/`LOG.old.*` a failed open leaves, or files RocksDB ignores),
 *   or only what a creation cut off before its `CURRENT` leaves (`IDENTITY`, `MANIFEST-000001`, `*.dbtmp`: no
 *   write was ever acknowledged there); only then may the caller open with `createIfMissing: true`.
 * - `'absent'` (reader mode): no directory, or one holding no RocksDB file or only a cut-off creation: there is
 *   nothing to read.
 *
 * A directory holding RocksDB files (`*.sst`, `*.log`, `MANIFEST-*`, `OPTIONS-*`, `IDENTITY`, ...) but no `CURRENT`
 * is a `corruption` StorageFailure (path: the directory) naming what is there and what is missing, and pointing at
 * the README's "Repairing a damaged shard": rockvisor never repairs a shard on its own. A path that is not a
 * directory is `corruption` too; other I/O errors are StorageFailures. It never deletes, renames or writes a file:
 * the only thing it ever creates is the directory, in writer mode. A bad `mode` is InvalidInput.
 */
export const prepareShardDir = async (dir: string, mode: 'writer' | 'reader'): Promise<ShardDirState> => {
  if (mode !== 'writer' && mode !== 'reader') {
    throw new InvalidInput({ field: 'mode', message: `mode: must be 'writer' or 'reader', got ${JSON.stringify(String(mode))}` })
  }
  try {
    let entries = await listDir(dir)
    if (entries === undefined) {
      if (mode === 'reader') return 'absent'
      await mkdir(dir, { recursive: true })
      // Another process may have created it meanwhile: judge whatever it holds now.
      entries = (await listDir(dir)) ?? []
    }
    const names = entries.map((e) => e.name)
    if (names.includes('CURRENT')) return 'existing'
    const found = names.filter((n) => rocksdbFile.test(n)).sort()
    // No database, or the start of one whose creation was cut off (see creationFile): created (again) by the writer.
    if (found.every((n) => creationFile.test(n))) return mode === 'writer' ? 'new' : 'absent'
    const manifests = found.filter((n) => /^MANIFEST-\d+$/.test(n)).sort((a, b) => Number(a.slice(9)) - Number(b.slice(9)))
    const newest = manifests[manifests.length - 1]
    const restore =
      newest === undefined
        ? 'no MANIFEST file is left, so CURRENT cannot be restored: move the directory out of the root (RocksDB\'s own `ldb repair` may salvage its table files)'
        : `restore CURRENT: a file holding the name of the live MANIFEST followed by a newline, usually the newest one (here "${newest}\\n"), or move the directory out of the root`
    throw new StorageFailure({
      reason: 'corruption',
      path: dir,
      message: `the shard directory ${dir} holds RocksDB files (${some(found, 8)}) but no CURRENT file, which names the live MANIFEST: opening it as a new database would delete them, so it is not opened. ${restore[0]!.toUpperCase()}${restore.slice(1)}; see the README, "Repairing a damaged shard" (rockvisor never repairs a shard on its own)`,
    })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new StorageFailure({ reason: 'corruption', path: dir, message: `the shard directory ${dir} is not a directory`, cause: e })
    }
    throw storageFailure(dir, e)
  }
}

/** Options of {@link rebuildManifest}. */
export interface RebuildManifestOptions {
  /**
   * The shard count to write. Default: the count the topics recorded when they were created (their `SHARDS`
   * files), else inferred, 1 + the highest shard directory number. Refused when it disagrees with the topics'
   * record, when below the highest directory number + 1, or when it would route a stored partition to another
   * shard than the one holding it.
   */
  readonly shards?: number
  /** Replace a valid manifest (default false: a valid manifest is never overwritten). */
  readonly force?: boolean
}

/** A shard directory found by {@link rebuildManifest}, with the partitions it holds metas of. */
export interface FoundShard {
  readonly shard: number
  /** Partitions with at least one meta in this shard, ascending. */
  readonly partitions: readonly number[]
}

/** A topic directory found by {@link rebuildManifest}. */
export interface FoundTopic {
  /** The directory's name under the root. */
  readonly dir: string
  /** The topic its `TOPIC` file names (`undefined`: no `TOPIC` file). */
  readonly topic: string | undefined
  /** Its shard directories, ascending by number. */
  readonly shards: readonly FoundShard[]
}

/** What {@link rebuildManifest} wrote, and what it found. */
export interface RebuiltManifest {
  /** The shard count written to `rockvisor.json`. */
  readonly shards: number
  /** The manifest replaced: its shard count (`force`), `'unreadable'`, or `'none'`. */
  readonly previous: number | 'unreadable' | 'none'
  readonly found: readonly FoundTopic[]
}

/** The partitions a shard holds metas of: one seek per partition in the by-id view. */
export const partitionsIn = async (handle: StorageHandle): Promise<number[]> => {
  const out: number[] = []
  const end = Uint8Array.of(View.byId + 1)
  for (let from: Uint8Array = rangeStart(View.byId, 0); ; ) {
    let key: Uint8Array | undefined
    for await (const entry of handle.iterate({ gte: from, lt: end, limit: 1 })) key = entry.key
    if (key === undefined || key.length < 5) return out
    const p = Buffer.from(key.buffer, key.byteOffset, key.byteLength).readUInt32BE(1)
    out.push(p)
    if (p === 0xffff_ffff) return out
    from = rangeStart(View.byId, p + 1)
  }
}

/**
 * Reads what a shard directory holds, read-only (never creating anything): `[]` for one holding no database. With
 * `id` (`<topic dir>/<shard>`), a database whose identity entry names another shard (a directory swapped, moved or
 * restored to the wrong place) is a `corruption` StorageFailure naming both: its partitions are not that shard's.
 */
export const partitionsOfShard = async (dir: string, id?: string): Promise<number[]> => {
  if ((await prepareShardDir(dir, 'reader')) === 'absent') return []
  const handle = await rocksEngine.open(dir, { ...readerRocksdb, readOnly: true, createIfMissing: false })
  try {
    if (id !== undefined) {
      const [entry] = await handle.getMany([identityKey])
      // The shard the entry names (its count is not checked here: a rebuild is what finds the count).
      const named = entry === undefined ? undefined : readIdentity(entry).shard
      if (named !== undefined && named !== id) {
        throw new StorageFailure({
          reason: 'corruption',
          path: dir,
          message: `the directory ${dir} holds the database of shard ${JSON.stringify(named)}, not of shard ${JSON.stringify(id)} (its identity entry): put each shard directory back where its identity says`,
        })
      }
    }
    return await partitionsIn(handle)
  } finally {
    await handle.close()
  }
}

/**
 * Rebuilds a root's `rockvisor.json` from its shard directories, for a root whose manifest was lost, garbled or
 * edited (which {@link openRoot} refuses). Never runs implicitly. The shard count is `options.shards`, or inferred as
 * 1 + the highest shard directory number; either way every shard directory is opened read-only and every
 * partition stored in it must route to it under that count (`murmur3_32(String(p)) % shards`), so a count that
 * would misroute stored data is refused, never written. Then writes the manifest atomically (a temporary file
 * renamed into place) and returns the count, the manifest replaced and what was found.
 *
 * Refuses, writing nothing: a bad option (InvalidInput); a valid manifest without `force` (InvalidInput, field
 * `force`); no shard directory and no `shards` (InvalidInput, field `shards`: nothing to infer from); a `shards`
 * below a shard directory's number or misrouting a stored partition, or an inferred count that misroutes one
 * (InvalidInput, field `shards`, listing counts consistent with the data); a missing root (StorageFailure
 * `missing`); an `index/` entry that is no shard directory or a damaged shard directory (StorageFailure
 * `corruption`: repair or move it first). Concurrent writers of the root must be stopped first.
 */
export const rebuildManifest = async (root: string, options: RebuildManifestOptions = {}): Promise<RebuiltManifest> => {
  if (typeof options !== 'object' || options === null) throw new InvalidInput({ field: 'options', message: 'options: must be an object' })
  const wanted = options.shards === undefined ? undefined : checkShards(options.shards)
  const force = options.force ?? false
  if (typeof force !== 'boolean') throw new InvalidInput({ field: 'force', message: `force: must be a boolean, got ${typeof force}` })

  let previous: RebuiltManifest['previous'] = 'none'
  try {
    const manifest = await readManifest(root)
    if (manifest !== undefined) previous = manifest.shards
  } catch (e) {
    if (!(e instanceof StorageFailure && e.reason === 'corruption')) throw e
    previous = 'unreadable'
  }
  if (typeof previous === 'number' && !force) {
    throw new InvalidInput({
      field: 'force',
      message: `force: the root ${root} has a valid manifest (${previous} shards); pass { force: true } (--force) to replace it`,
    })
  }
  const scanned = await scanRoot(root)
  if (scanned === undefined) throw new StorageFailure({ reason: 'missing', path: root, message: `no directory at ${root}: nothing to rebuild a manifest from` })
  checkNoForeign(root, scanned)

  const found: FoundTopic[] = []
  for (const t of scanned) {
    const shards: FoundShard[] = []
    for (const shard of t.shards) shards.push({ shard, partitions: await partitionsOfShard(join(root, t.dir, 'index', String(shard)), `${t.dir}/${shard}`) })
    found.push({ dir: t.dir, topic: t.topic, shards })
  }
  const highest = Math.max(-1, ...scanned.flatMap((t) => t.shards))
  // The counts the topics recorded when they were created (see checkTopicShards): the count, when they agree.
  const recorded = new Map<number, string[]>()
  for (const t of scanned) {
    const text = await readIfExists(shardsFile(join(root, t.dir))).catch(() => undefined)
    const n = text !== undefined && /^[1-9][0-9]{0,4}\n?$/.test(text) ? Number(text) : undefined
    if (n !== undefined) recorded.set(n, [...(recorded.get(n) ?? []), t.dir])
  }
  if (recorded.size > 1) {
    throw new InvalidInput({
      field: 'shards',
      message: `shards: the topics of ${root} were created under different shard counts (${[...recorded].map(([n, dirs]) => `${n}: ${some(dirs, 3)}`).join('; ')}, in their SHARDS files): they do not come from one root`,
    })
  }
  const [recordedCount] = [...recorded.keys()]
  if (wanted !== undefined && recordedCount !== undefined && wanted !== recordedCount) {
    throw new InvalidInput({
      field: 'shards',
      message: `shards: the topics of ${root} were created under ${recordedCount} shards (their SHARDS files: ${some(recorded.get(recordedCount)!, 3)}), not ${wanted}`,
    })
  }
  const stored = found.flatMap((t) => t.shards.flatMap((s) => s.partitions.map((p) => ({ dir: t.dir, shard: s.shard, p, hash: murmur.v3(String(p), 0) }))))
  const misrouted = (n: number) => stored.find((x) => x.hash % n !== x.shard)
  const consistent = (): string => {
    const counts: number[] = []
    for (let n = highest + 1; n <= limits.maxShards && counts.length < 8; n++) if (misrouted(n) === undefined) counts.push(n)
    return counts.length === 0 ? 'no count up to 65536 fits every stored partition' : `counts that fit every stored partition: ${counts.join(', ')}${counts.length === 8 ? ', ...' : ''}`
  }

  if (wanted === undefined && highest < 0 && recordedCount === undefined) {
    throw new InvalidInput({
      field: 'shards',
      message: `shards: cannot infer the shard count of ${root}: it holds ${scanned.length === 0 ? 'no topic directory' : describeFound(scanned)}; pass the count it was created with (rebuildManifest(root, { shards }) or --shards N)`,
    })
  }
  if (wanted !== undefined && wanted <= highest) {
    const example = scanned.flatMap((t) => (t.shards.includes(highest) ? [`${t.dir}/index/${highest}`] : []))[0]
    throw new InvalidInput({
      field: 'shards',
      message: `shards: the root ${root} holds shard directories up to ${highest} (${example}), so it was created with at least ${highest + 1} shards, not ${wanted}`,
    })
  }
  const shards = wanted ?? recordedCount ?? highest + 1
  const wrong = misrouted(shards)
  if (wrong !== undefined) {
    const why = `with ${shards} shards partition ${wrong.p} would be routed to shard ${wrong.hash % shards}, but it is stored in ${wrong.dir}/index/${wrong.shard}`
    throw new InvalidInput({
      field: 'shards',
      message:
        wanted === undefined
          ? `shards: cannot infer the shard count of ${root}: ${why} (the root was created with more shards than it has directories); ${consistent()}; pass the count it was created with (--shards N)`
          : `shards: ${why}, so the root ${root} was not created with ${shards} shards; ${consistent()}`,
    })
  }

  const file = manifestFile(root)
  try {
    if (previous === 'none') {
      if (!(await createOnce(file, manifestText(shards)))) {
        throw new InvalidInput({ field: 'force', message: `force: a manifest appeared at ${file} while it was being rebuilt; look at it, then pass { force: true } (--force) to replace it` })
      }
    } else await writeAtomically(file, manifestText(shards))
  } catch (e) {
    if (e instanceof InvalidInput) throw e
    throw storageFailure(root, e)
  }
  return { shards, previous, found }
}

/** Lists a directory; `undefined` if it does not exist. */
const listDir = async (dir: string): Promise<Dirent[] | undefined> => {
  try {
    return (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

/** True for a directory, or a symbolic link to one. */
const isDir = async (parent: string, entry: Dirent): Promise<boolean> =>
  entry.isDirectory() ||
  (entry.isSymbolicLink() &&
    (await stat(join(parent, entry.name)).then(
      (s) => s.isDirectory(),
      () => false,
    )))

/** A whole text file; `undefined` if it does not exist. */
const readIfExists = async (file: string): Promise<string | undefined> => {
  try {
    return await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

let tmpCounter = 0
const tmpName = (file: string): string => `${file}.${process.pid}.${++tmpCounter}.tmp`

/** Writes a whole file under a temporary name, then renames it into place (last writer wins). */
const writeAtomically = async (file: string, text: string): Promise<void> => {
  const tmp = tmpName(file)
  try {
    await writeFile(tmp, text, { flag: 'w' })
    await rename(tmp, file)
  } catch (e) {
    await unlink(tmp).catch(() => undefined)
    throw e
  }
}

/**
 * Creates a whole file unless it exists (concurrent creators: exactly one wins, none sees a partial file). True if
 * this call created it.
 */
const createOnce = async (file: string, text: string): Promise<boolean> => {
  const tmp = tmpName(file)
  await writeFile(tmp, text, { flag: 'w' })
  try {
    await link(tmp, file)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    return false
  } finally {
    await unlink(tmp)
  }
}
