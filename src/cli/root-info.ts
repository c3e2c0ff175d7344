/**
 * What an existing root holds, read from its files without writing anything: its topics (`TOPIC` files), their
 * shard directories, the partitions each holds (one read-only RocksDB open per shard, as rebuild-manifest does) and
 * their size on disk.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { partitionsOfShard, topicOfDirName } from '../layout.js'

export interface ShardOnDisk {
  readonly shard: number
  readonly dir: string
  /** Partitions with at least one meta in this shard, ascending. */
  readonly partitions: readonly number[]
  /** Bytes of its files. */
  readonly bytes: number
}

export interface TopicOnDisk {
  readonly topic: string
  /** The topic's directory name under the root. */
  readonly dir: string
  readonly shards: readonly ShardOnDisk[]
}

const sizeOf = async (dir: string): Promise<number> => {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(dir, entry.name))).size
    else if (entry.isDirectory()) total += await sizeOf(join(dir, entry.name))
  }
  return total
}

/** The topics of `root` (which must exist: check it with a reader-mode openIndex first), sorted by name. */
export const topicsOnDisk = async (root: string): Promise<TopicOnDisk[]> => {
  const topics: TopicOnDisk[] = []
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const dir = join(root, entry.name)
    let topic: string | undefined
    try {
      topic = await readFile(join(dir, 'TOPIC'), 'utf8')
    } catch {
      topic = undefined
    }
    if (topic === undefined) continue
    const shards: ShardOnDisk[] = []
    let names: string[] = []
    try {
      names = (await readdir(join(dir, 'index'), { withFileTypes: true })).filter((e) => e.isDirectory() && /^(?:0|[1-9][0-9]*)$/.test(e.name)).map((e) => e.name)
    } catch {
      names = []
    }
    for (const name of names.sort((a, b) => Number(a) - Number(b))) {
      const shardDir = join(dir, 'index', name)
      shards.push({ shard: Number(name), dir: shardDir, partitions: await partitionsOfShard(shardDir, `${entry.name}/${name}`), bytes: await sizeOf(shardDir) })
    }
    topics.push({ topic: topic ?? topicOfDirName(entry.name) ?? entry.name, dir: entry.name, shards })
  }
  return topics.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0))
}
