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
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import murmur from 'murmurhash'
import { InvalidInput, StorageFailure, storageFailure } from './errors.js'
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

/**
 * Creates the topic directory (and its `TOPIC` file) if needed, and checks that an existing one belongs to this
 * topic. Throws {@link StorageFailure} on a mismatch (a hash collision) or an I/O error.
 */
export const ensureTopicDir = async (root: string, topic: string): Promise<void> => {
  const dir = join(root, topicDirName(topic))
  const marker = join(dir, 'TOPIC')
  try {
    await mkdir(join(dir, 'index'), { recursive: true })
    const existing = await readFile(marker, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined
      throw e
    })
    if (existing === undefined) await createOnce(marker, topic)
    const owner = existing ?? (await readFile(marker, 'utf8'))
    if (owner !== topic) {
      throw new StorageFailure({
        reason: 'corruption',
        path: dir,
        message: `the directory ${dir} belongs to another topic (${JSON.stringify(owner.slice(0, 80))})`,
      })
    }
  } catch (e) {
    throw storageFailure(dir, e)
  }
}

/** The root's manifest, `rockvisor.json`. */
export interface RootManifest {
  readonly format: 1
  readonly shards: number
}

/**
 * Opens a root: creates it with a manifest on first use (unless `create` is false: then a missing root is a
 * `missing` StorageFailure), or reads the manifest and checks that `shards` agrees (a different shard count would
 * route existing partitions to the wrong directories). `shards` undefined means "whatever the root says", or
 * `defaultShards` for a new root. Returns the shard count in force.
 */
export const openRoot = async (root: string, shards: number | undefined, defaultShards: number, create = true): Promise<number> => {
  const file = join(root, 'rockvisor.json')
  let manifest: RootManifest | undefined
  try {
    manifest = JSON.parse(await readFile(file, 'utf8')) as RootManifest
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw storageFailure(root, e)
  }
  if (manifest !== undefined) {
    if (manifest.format !== 1 || !Number.isSafeInteger(manifest.shards) || manifest.shards < 1) {
      throw new StorageFailure({ reason: 'corruption', path: file, message: `unreadable manifest ${file}` })
    }
    if (shards !== undefined && shards !== manifest.shards) {
      throw new InvalidInput({
        field: 'shards',
        message: `shards: the root ${root} was created with ${manifest.shards} shards, not ${shards}; a different count would misroute existing partitions`,
      })
    }
    return manifest.shards
  }
  if (!create) {
    throw new StorageFailure({ reason: 'missing', path: file, message: `no rockvisor root at ${root} (${file} is missing): a reader-mode index opens a root a writer created` })
  }
  const n = shards ?? defaultShards
  try {
    await mkdir(root, { recursive: true })
    await writeAtomically(file, `${JSON.stringify({ format: 1, shards: n } satisfies RootManifest)}\n`)
  } catch (e) {
    throw storageFailure(root, e)
  }
  return n
}

let tmpCounter = 0
const tmpName = (file: string): string => `${file}.${process.pid}.${++tmpCounter}.tmp`

/** Writes a whole file under a temporary name, then renames it into place (last writer wins). */
const writeAtomically = async (file: string, text: string): Promise<void> => {
  const tmp = tmpName(file)
  await writeFile(tmp, text, { flag: 'w' })
  await rename(tmp, file)
}

/** Creates a whole file unless it exists (concurrent creators: exactly one wins, none sees a partial file). */
const createOnce = async (file: string, text: string): Promise<void> => {
  const tmp = tmpName(file)
  await writeFile(tmp, text, { flag: 'w' })
  try {
    await link(tmp, file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
  } finally {
    await unlink(tmp)
  }
}
