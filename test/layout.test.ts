/**
 * The root's layout on disk, on real files and real RocksDB in temp dirs: a lost or edited `rockvisor.json` is
 * refused (never guessed) and rebuilt only on request; a shard directory that lost its `CURRENT` file is refused
 * before RocksDB can replace it with an empty database; reader mode checks a topic's `TOPIC` file without creating
 * anything; the CLI's `stats` creates nothing and `rebuild-manifest` repairs a root.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { primaryRocksdb, readerRocksdb } from '../src/defaults.js'
import { ensureTopicDir, prepareShardDir } from '../src/layout.js'
import { InvalidInput, StorageFailure, openIndex, rebuildManifest, rocksEngine, shardOf, topicDirName, type MessageMeta } from '../src/index.js'
import { listTree, removeDir, tempDir } from './support/tmp.js'

const run = promisify(execFile)
const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

/** Runs the CLI in a child process; resolves with its exit code and output whatever the code. */
const rockvisor = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', cli, ...args])
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string }
    if (typeof err.code !== 'number') throw e
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }
  }
}

/** The error a promise rejects with (fails the test if it resolves). */
const rejection = async (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    (v) => expect.fail(`expected a rejection, got ${JSON.stringify(v)}`),
    (e: unknown) => e,
  )

const meta = (topic: string, partition: number, i: number): MessageMeta => ({
  msgId: `${topic}-${partition}-${i}`,
  timestamp: 1_700_000_000_000 + i,
  segmentId: partition,
  offset: i * 100,
  msgLen: 100,
})

/** The data every root below holds: partitions 0..11 of `orders` and 0..3 of `x`, three metas each. */
const written: [string, number][] = [...Array.from({ length: 12 }, (_, p) => ['orders', p] as [string, number]), ...Array.from({ length: 4 }, (_, p) => ['x', p] as [string, number])]

/** Creates a 4-shard root holding {@link written}, closed again. */
const seedRoot = async (root: string): Promise<void> => {
  const index = await openIndex({ root, shards: 4, readers: { min: 0 } })
  try {
    for (const [topic, p] of written) await index.batchPut(topic, p, [0, 1, 2].map((i) => meta(topic, p, i)))
  } finally {
    await index.close()
  }
}

/** Opens the root (writer mode, its own shard count) and checks that every meta written is answered. */
const expectEveryMeta = async (root: string, shards: number): Promise<void> => {
  const index = await openIndex({ root, readers: { min: 0 } })
  try {
    expect(index.shards).toBe(shards)
    for (const [topic, p] of written) {
      for (const i of [0, 1, 2]) expect(await index.getByMsgId(topic, p, `${topic}-${p}-${i}`)).toEqual(meta(topic, p, i))
    }
  } finally {
    await index.close()
  }
}

describe('the root manifest', () => {
  let root: string
  let manifest: string
  beforeEach(async () => {
    root = await tempDir()
    manifest = join(root, 'rockvisor.json')
    await seedRoot(root)
    // The data spans every shard directory of 4, so a smaller count is provably wrong.
    expect((await readdir(join(root, 'orders', 'index'))).sort()).toEqual(['0', '1', '2', '3'])
  })
  afterEach(async () => removeDir(root))

  it('should refuse a root whose manifest is missing beside topic directories, in both modes, changing nothing', async () => {
    await unlink(manifest)
    const before = await listTree(root)
    for (const mode of ['writer', 'reader'] as const) {
      const err = await rejection(openIndex({ root, mode }))
      expect(err).toBeInstanceOf(StorageFailure)
      expect((err as StorageFailure).reason).toBe('corruption')
      expect((err as StorageFailure).path).toBe(root)
      const message = (err as StorageFailure).message
      expect(message).toContain(`no rockvisor.json in the root ${root}`)
      expect(message).toContain('2 topic directories (orders, x) with shard directories 0..3')
      expect(message).toContain(`rockvisor rebuild-manifest --root ${root}`)
      expect(await listTree(root)).toEqual(before)
    }
  })

  it('should refuse a manifest whose shard count is below a shard directory, even when asked for that count', async () => {
    await writeFile(manifest, '{"format":1,"shards":2}\n')
    const before = await listTree(root)
    for (const options of [{}, { shards: 2 }, { mode: 'reader' as const }]) {
      const err = await rejection(openIndex({ root, ...options }))
      expect(err).toBeInstanceOf(StorageFailure)
      expect((err as StorageFailure).reason).toBe('corruption')
      expect((err as StorageFailure).path).toBe(manifest)
      expect((err as StorageFailure).message).toContain('says 2 shards, but the root')
      expect((err as StorageFailure).message).toContain('shard directories up to 3 (orders/index/2, orders/index/3')
      expect((err as StorageFailure).message).toContain('--force')
      expect(await listTree(root)).toEqual(before)
    }
  })

  it('should accept a manifest with more shards than directories exist (they are created lazily)', async () => {
    // A 16-shard root with one shard directory is normal: nothing is refused.
    const root16 = await tempDir()
    try {
      const writer = await openIndex({ root: root16, shards: 16, readers: { min: 0 } })
      await writer.batchPut('t', 5, [meta('t', 5, 0)])
      await writer.close()
      expect((await readdir(join(root16, 't', 'index'))).length).toBe(1)
      const index = await openIndex({ root: root16, mode: 'reader' })
      try {
        expect(index.shards).toBe(16)
        expect(await index.getByMsgId('t', 5, 't-5-0')).toEqual(meta('t', 5, 0))
      } finally {
        await index.close()
      }
    } finally {
      await removeDir(root16)
    }
  })

  it('should refuse an index directory holding anything but shard directories', async () => {
    await mkdir(join(root, 'x', 'index', 'backup'))
    const before = await listTree(root)
    const err = await rejection(openIndex({ root }))
    expect(err).toBeInstanceOf(StorageFailure)
    expect((err as StorageFailure).reason).toBe('corruption')
    expect((err as StorageFailure).path).toBe(join(root, 'x', 'index', 'backup'))
    expect((err as StorageFailure).message).toContain('x/index/backup where only shard directories')
    expect(await listTree(root)).toEqual(before)
  })

  it.each([
    ['not JSON', 'shards: 4', 'not JSON'],
    ['null', 'null', 'it holds "null"'],
    ['a zero shard count', '{"format":1,"shards":0}', 'it holds'],
    ['another format', '{"format":2,"shards":4}', 'it holds'],
    ['an empty file', '', 'not JSON'],
  ])('should refuse a manifest holding %s as corruption, naming the file', async (_name, text, why) => {
    await writeFile(manifest, text)
    const before = await listTree(root)
    const err = await rejection(openIndex({ root }))
    expect(err).toBeInstanceOf(StorageFailure)
    expect((err as StorageFailure).reason).toBe('corruption')
    expect((err as StorageFailure).path).toBe(manifest)
    expect((err as StorageFailure).message).toContain(`unreadable manifest ${manifest} (${why}`)
    expect((err as StorageFailure).message).toContain('rebuild-manifest')
    expect(await listTree(root)).toEqual(before)
  })

  it('should rebuild a missing manifest from the shard directories, after which every meta is answered', async () => {
    await unlink(manifest)
    const result = await rebuildManifest(root)
    expect(result.shards).toBe(4)
    expect(result.previous).toBe('none')
    expect(result.found.map((t) => [t.dir, t.topic, t.shards.map((s) => s.shard)])).toEqual([
      ['orders', 'orders', [0, 1, 2, 3]],
      ['x', 'x', [...new Set([0, 1, 2, 3].map((p) => shardOf(p, 4)))].sort()],
    ])
    // Every partition written was found in the shard it routes to.
    const found = result.found.flatMap((t) => t.shards.flatMap((s) => s.partitions.map((p) => [t.dir, p, s.shard])))
    expect(found.sort()).toEqual(written.map(([t, p]) => [t, p, shardOf(p, 4)]).sort())
    expect(JSON.parse(await readFile(manifest, 'utf8'))).toEqual({ format: 1, shards: 4 })
    await expectEveryMeta(root, 4)
  })

  it('should refuse a manifest edited to a larger count, which every directory number fits, by what the topics recorded', async () => {
    // 4 shards, directories 0..3: a manifest saying 8 passes the check of directory numbers, and would route some
    // stored partitions to other shards (their reads answering empty, their writes going elsewhere).
    expect(written.some(([, p]) => shardOf(p, 8) !== shardOf(p, 4))).toBe(true)
    await writeFile(manifest, '{"format":1,"shards":8}\n')
    const before = await listTree(root)
    for (const mode of ['writer', 'reader'] as const) {
      const err = await rejection(openIndex({ root, mode }))
      expect(err).toMatchObject({ _tag: 'StorageFailure', reason: 'corruption', path: join(root, 'orders', 'SHARDS') })
      expect((err as StorageFailure).message).toContain(`was created under 4 shards (${join(root, 'orders', 'SHARDS')}), but the manifest ${manifest} says 8`)
      expect((err as StorageFailure).message).toContain('rebuild-manifest')
    }
    expect(await listTree(root)).toEqual(before)
    // The rebuild takes the count the topics recorded.
    expect(await rebuildManifest(root, { force: true })).toMatchObject({ shards: 4, previous: 8 })
    await expectEveryMeta(root, 4)
  })

  it("should refuse, by its shards' identities, a manifest edited to a larger count for topics whose record of their count is gone", async () => {
    // Topics without a SHARDS file pass every check of the root's directories under a larger count; their shards' own
    // identity entries ("<topic dir>/<shard> of <count>", written under the recorded count) still tell.
    for (const dir of await readdir(root)) await unlink(join(root, dir, 'SHARDS')).catch(() => undefined)
    await writeFile(manifest, '{"format":1,"shards":8}\n')
    const before = await listTree(root)
    // The partitions that 8 shards route to a directory that exists: its shard was made under 4 shards, so it is
    // refused (a read of the others, routed to directories 4..7 that do not exist, cannot tell).
    const routed = written.filter(([, p]) => shardOf(p, 8) < 4)
    expect(routed.length).toBeGreaterThan(0)
    for (const mode of ['reader', 'writer'] as const) {
      const index = await openIndex({ root, mode, readers: { min: mode === 'writer' ? 0 : 1 } })
      try {
        for (const [topic, p] of routed) {
          const { dir, id } = index.locate(topic, p)
          const err = await rejection(index.getByMsgId(topic, p, `${topic}-${p}-0`))
          expect(err).toMatchObject({ _tag: 'ShardUnavailable', cause: { reason: 'corruption', path: dir } })
          expect((err as Error).message).toContain(`holds the database of shard "${id} of 4", not of shard "${id} of 8"`)
        }
      } finally {
        await index.close()
      }
      // Reader mode changed nothing but RocksDB's info logs. (A writer's open of a shard recovers its write-ahead log
      // into a table file, as every open does, before the identity can be read.)
      const logs = (list: string[]) => list.filter((x) => !/\/LOG/.test(x))
      if (mode === 'reader') expect(logs(await listTree(root))).toEqual(logs(before))
    }
    // With the count put back, every meta answers.
    await writeFile(manifest, '{"format":1,"shards":4}\n')
    await expectEveryMeta(root, 4)
  })

  it('should refuse a topic that appeared after the index opened under another count, on its first read or write', async () => {
    // Open indexes keep the count they opened with: a topic another process made under another count (its manifest
    // edited meanwhile) is refused when this index first routes to it, not answered as empty or written elsewhere.
    const writer = await openIndex({ root, readers: { min: 0 } })
    const reader = await openIndex({ root, mode: 'reader' })
    try {
      const late = join(root, 'late')
      await mkdir(join(late, 'index'), { recursive: true })
      await writeFile(join(late, 'SHARDS'), '8\n')
      await writeFile(join(late, 'TOPIC'), 'late')
      const before = await listTree(root)
      const read = await rejection(reader.getByMsgId('late', 1, 'm'))
      expect(read).toMatchObject({ _tag: 'StorageFailure', reason: 'corruption', path: join(late, 'SHARDS') })
      expect((read as StorageFailure).message).toContain(`was created under 8 shards (${join(late, 'SHARDS')}), but the manifest ${manifest} says 4`)
      const write = await rejection(writer.batchPut('late', 1, [meta('late', 1, 0)]))
      expect(write).toMatchObject({ _tag: 'ShardUnavailable', cause: { reason: 'corruption', path: join(late, 'SHARDS') } })
      expect(await listTree(root)).toEqual(before)
    } finally {
      await reader.close()
      await writer.close()
    }
  })

  it('should replace an edited manifest only when forced', async () => {
    await writeFile(manifest, '{"format":1,"shards":2}\n')
    const err = await rejection(rebuildManifest(root))
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).field).toBe('force')
    expect(await readFile(manifest, 'utf8')).toBe('{"format":1,"shards":2}\n')

    const result = await rebuildManifest(root, { force: true })
    expect(result).toMatchObject({ shards: 4, previous: 2 })
    await expectEveryMeta(root, 4)
  })

  it('should replace an unreadable manifest without force', async () => {
    await writeFile(manifest, 'garbage')
    expect(await rebuildManifest(root)).toMatchObject({ shards: 4, previous: 'unreadable' })
    await expectEveryMeta(root, 4)
  })

  /** Removes the topics' records of the shard count (a root made before rockvisor wrote them): the count is inferred. */
  const forgetRecords = async (at: string): Promise<void> => {
    for (const dir of await readdir(at)) await unlink(join(at, dir, 'SHARDS')).catch(() => undefined)
  }

  it('should refuse a shard count that disagrees with what the topics recorded at their creation, writing nothing', async () => {
    await unlink(manifest)
    const before = await listTree(root)
    expect(before).toContain('orders/SHARDS 2')
    for (const shards of [3, 8]) {
      const err = await rejection(rebuildManifest(root, { shards }))
      expect(err).toMatchObject({ _tag: 'InvalidInput', field: 'shards' })
      expect((err as InvalidInput).message).toContain(`the topics of ${root} were created under 4 shards (their SHARDS files: orders, x), not ${shards}`)
    }
    // Two topics that recorded different counts do not come from one root.
    await writeFile(join(root, 'x', 'SHARDS'), '8\n')
    const mixed = await rejection(rebuildManifest(root))
    expect((mixed as InvalidInput).message).toContain('were created under different shard counts (4: orders; 8: x')
    await writeFile(join(root, 'x', 'SHARDS'), '4\n')
    expect(await listTree(root)).toEqual(before)
  })

  it('should refuse a shard count below the directories, or one that misroutes a stored partition, writing nothing', async () => {
    await unlink(manifest)
    await forgetRecords(root)
    const before = await listTree(root)
    const low = await rejection(rebuildManifest(root, { shards: 3 }))
    expect(low).toBeInstanceOf(InvalidInput)
    expect((low as InvalidInput).message).toContain('at least 4 shards, not 3')

    // 8 covers every directory, but routes some stored partition elsewhere.
    const moved = written.find(([, p]) => shardOf(p, 8) !== shardOf(p, 4))
    expect(moved).toBeDefined()
    const wrong = await rejection(rebuildManifest(root, { shards: 8 }))
    expect(wrong).toBeInstanceOf(InvalidInput)
    expect((wrong as InvalidInput).field).toBe('shards')
    expect((wrong as InvalidInput).message).toContain('was not created with 8 shards')
    expect((wrong as InvalidInput).message).toMatch(/counts that fit every stored partition: 4\b/)
    expect(await listTree(root)).toEqual(before)
  })

  it('should refuse to infer a count the stored partitions contradict, and accept the right one given', async () => {
    // A 16-shard root whose highest shard directory is 5: inferring 6 would misroute the partition stored there.
    const root16 = await tempDir()
    try {
      const p5 = Array.from({ length: 1000 }, (_, p) => p).find((p) => shardOf(p, 16) === 5 && shardOf(p, 6) !== 5)!
      const index = await openIndex({ root: root16, shards: 16, readers: { min: 0 } })
      await index.batchPut('t', p5, [meta('t', p5, 0)])
      await index.close()
      await unlink(join(root16, 'rockvisor.json'))
      // The topic's record says 16: the count is taken from it.
      expect(await rebuildManifest(root16)).toMatchObject({ shards: 16, previous: 'none' })
      await unlink(join(root16, 'rockvisor.json'))
      // Without it (a root made before the record), the count is inferred from the directories, and refused.
      await forgetRecords(root16)
      const before = await listTree(root16)

      const err = await rejection(rebuildManifest(root16))
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).message).toContain(`cannot infer the shard count of ${root16}: with 6 shards partition ${p5}`)
      expect((err as InvalidInput).message).toMatch(/counts that fit every stored partition: .*\b16\b/)
      expect(await listTree(root16)).toEqual(before)

      expect(await rebuildManifest(root16, { shards: 16 })).toMatchObject({ shards: 16, previous: 'none' })
      const reopened = await openIndex({ root: root16, readers: { min: 0 } })
      try {
        expect(await reopened.getByMsgId('t', p5, `t-${p5}-0`)).toEqual(meta('t', p5, 0))
      } finally {
        await reopened.close()
      }
    } finally {
      await removeDir(root16)
    }
  })

  it('should refuse to infer a count without any shard directory, and to rebuild a missing root', async () => {
    const empty = await tempDir()
    try {
      await ensureTopicDir(empty, 'orders')
      const err = await rejection(rebuildManifest(empty))
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).message).toContain('1 topic directory (orders) with no shard directories')
      expect(existsSync(join(empty, 'rockvisor.json'))).toBe(false)

      const missing = await rejection(rebuildManifest(join(empty, 'nope')))
      expect(missing).toBeInstanceOf(StorageFailure)
      expect((missing as StorageFailure).reason).toBe('missing')
      expect(existsSync(join(empty, 'nope'))).toBe(false)
    } finally {
      await removeDir(empty)
    }
  })
})

describe('the CLI', () => {
  let parent: string
  beforeEach(async () => {
    parent = await tempDir()
  })
  afterEach(async () => removeDir(parent))

  it('should fail `stats` on a missing root with one line and exit 1, creating nothing', async () => {
    const root = join(parent, 'nope')
    const { code, stdout, stderr } = await rockvisor('stats', '--root', root)
    expect(code).toBe(1)
    expect(stdout).toBe('')
    expect(stderr.trim().split('\n')).toEqual([expect.stringContaining(`StorageFailure: no rockvisor root at ${root}`)])
    expect(await listTree(parent)).toEqual([])
  })

  it('should print the shard count of an existing root on `stats`, changing nothing', async () => {
    const root = join(parent, 'root')
    await seedRoot(root)
    const before = await listTree(root)
    const { code, stdout } = await rockvisor('stats', '--root', root, '--json')
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({ root, shards: 4 })
    expect(await listTree(root)).toEqual(before)
  })

  it('should rebuild a lost manifest with `rebuild-manifest`, and refuse to replace a valid one without --force', async () => {
    const root = join(parent, 'root')
    await seedRoot(root)
    await unlink(join(root, 'rockvisor.json'))
    const rebuilt = await rockvisor('rebuild-manifest', '--root', root)
    expect(rebuilt.code).toBe(0)
    expect(JSON.parse(rebuilt.stdout)).toEqual({
      root,
      shards: 4,
      previous: 'none',
      topics: [
        { dir: 'orders', topic: 'orders', shardDirectories: [0, 1, 2, 3], partitions: 12 },
        { dir: 'x', topic: 'x', shardDirectories: [...new Set([0, 1, 2, 3].map((p) => shardOf(p, 4)))].sort(), partitions: 4 },
      ],
    })
    expect(JSON.parse(await readFile(join(root, 'rockvisor.json'), 'utf8'))).toEqual({ format: 1, shards: 4 })

    const again = await rockvisor('rebuild-manifest', '--root', root)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('InvalidInput: force:')
    const forced = await rockvisor('rebuild-manifest', '--root', root, '--shards', '4', '--force')
    expect(forced.code).toBe(0)
    expect(JSON.parse(forced.stdout)).toMatchObject({ shards: 4, previous: 4 })
    await expectEveryMeta(root, 4)
  })

  it('should refuse a malformed --shards and a missing --root as usage errors (exit 2), as every malformed number', async () => {
    const root = join(parent, 'root')
    await seedRoot(root)
    await unlink(join(root, 'rockvisor.json'))
    for (const shards of ['four', '-1', '1.5', '0', '65537']) {
      const bad = await rockvisor('rebuild-manifest', '--root', root, '--shards', shards)
      expect(bad.code, shards).toBe(2)
      expect(bad.stderr, shards).toContain("option '--shards <n>' argument")
      expect(bad.stderr, shards).toContain('expected an integer in [1, 65536]')
    }
    const usage = await rockvisor('rebuild-manifest')
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('usage: rockvisor')
    expect(existsSync(join(root, 'rockvisor.json'))).toBe(false)
  })
})

/** Writes a few flushed batches into a new RocksDB directory through the real engine, and closes it. */
const makeShard = async (dir: string): Promise<void> => {
  const handle = await rocksEngine.open(dir, { ...primaryRocksdb, readOnly: false })
  try {
    for (let i = 0; i < 3; i++) {
      await handle.write([{ type: 'put', key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) }])
      await handle.flush()
    }
  } finally {
    await handle.close()
  }
}

/** The files of a shard directory that hold data (everything but RocksDB's info logs, which every open rotates). */
const dataFiles = async (dir: string): Promise<string[]> => (await listTree(dir)).filter((f) => !/^LOG(\.old\.\d+)? /.test(f))

describe('prepareShardDir', () => {
  let parent: string
  beforeEach(async () => {
    parent = await tempDir()
  })
  afterEach(async () => removeDir(parent))

  it("should create a missing directory in writer mode and answer 'new'", async () => {
    const dir = join(parent, 't', 'index', '3')
    expect(await prepareShardDir(dir, 'writer')).toBe('new')
    expect(await listTree(parent)).toEqual(['t/', 't/index/', 't/index/3/'])
  })

  it("should answer 'absent' for a missing directory in reader mode, creating nothing", async () => {
    expect(await prepareShardDir(join(parent, 't', 'index', '3'), 'reader')).toBe('absent')
    expect(await listTree(parent)).toEqual([])
  })

  it("should answer 'existing' for a database, in both modes, changing nothing", async () => {
    const dir = join(parent, 'shard')
    await makeShard(dir)
    const before = await listTree(dir)
    expect(await prepareShardDir(dir, 'writer')).toBe('existing')
    expect(await prepareShardDir(dir, 'reader')).toBe('existing')
    expect(await listTree(dir)).toEqual(before)
  })

  it("should answer 'new' (writer) and 'absent' (reader) for what a failed open leaves: LOCK and LOG only", async () => {
    const dir = join(parent, 'shard')
    const err = await rejection(rocksEngine.open(dir, { ...primaryRocksdb, readOnly: false, createIfMissing: false }))
    expect((err as StorageFailure).reason).toBe('missing')
    expect((await readdir(dir)).sort()).toEqual(['LOCK', 'LOG'])
    expect(await prepareShardDir(dir, 'reader')).toBe('absent')
    expect(await prepareShardDir(dir, 'writer')).toBe('new')
  })

  /** What a creation of a database cut off before its CURRENT leaves (a writer killed as its first write opened the shard). */
  const cutOffCreation = async (dir: string, extra: Record<string, string> = {}): Promise<void> => {
    await mkdir(dir, { recursive: true })
    const files: Record<string, string> = { LOCK: '', LOG: 'info\n', IDENTITY: 'b3f1c0de-0000-4000-8000-000000000001\n', 'MANIFEST-000001': 'partial', '000001.dbtmp': 'MANIFEST-000001\n', ...extra }
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content)
  }

  it("should answer 'new' (writer) and 'absent' (reader) for a creation cut off before its CURRENT, which the writer then creates over", async () => {
    const dir = join(parent, 'shard')
    await cutOffCreation(dir)
    const before = await listTree(dir)
    expect(await prepareShardDir(dir, 'reader')).toBe('absent')
    expect(await listTree(dir)).toEqual(before)
    expect(await prepareShardDir(dir, 'writer')).toBe('new')
    const handle = await rocksEngine.open(dir, { ...primaryRocksdb, readOnly: false, createIfMissing: true })
    try {
      await handle.write([{ type: 'put', key: Buffer.from('k'), value: Buffer.from('v') }])
      expect((await handle.getMany([Buffer.from('k')])).map((v) => v && Buffer.from(v).toString())).toEqual(['v'])
    } finally {
      await handle.close()
    }
    expect(await prepareShardDir(dir, 'writer')).toBe('existing')
  })

  it.each([
    ['an OPTIONS file', { 'OPTIONS-000007': 'x' }],
    ['a WAL', { '000004.log': 'x' }],
    ['a table file', { '000009.sst': 'x' }],
    ['a later MANIFEST', { 'MANIFEST-000005': 'x' }],
  ])('should refuse as a damaged database what a cut-off creation never leaves: %s without CURRENT', async (_, extra) => {
    const dir = join(parent, 'shard')
    await cutOffCreation(dir, extra)
    const before = await listTree(dir)
    for (const mode of ['writer', 'reader'] as const) {
      const err = await rejection(prepareShardDir(dir, mode))
      expect(err).toMatchObject({ _tag: 'StorageFailure', reason: 'corruption', path: dir })
      expect((err as StorageFailure).message).toContain(Object.keys(extra)[0]!)
    }
    expect(await listTree(dir)).toEqual(before)
  })

  it('should refuse a database whose CURRENT is gone, in both modes, touching no file', async () => {
    const dir = join(parent, 'shard')
    await makeShard(dir)
    const current = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim()
    await unlink(join(dir, 'CURRENT'))
    const before = await listTree(dir)
    for (const mode of ['writer', 'reader'] as const) {
      const err = await rejection(prepareShardDir(dir, mode))
      expect(err).toBeInstanceOf(StorageFailure)
      expect((err as StorageFailure).reason).toBe('corruption')
      expect((err as StorageFailure).path).toBe(dir)
      const message = (err as StorageFailure).message
      expect(message).toContain(`the shard directory ${dir} holds RocksDB files (`)
      expect(message).toContain('.sst')
      expect(message).toContain('but no CURRENT file')
      expect(message).toContain(`(here "${current}\\n")`)
      expect(message).toContain('Repairing a damaged shard')
      expect(await listTree(dir)).toEqual(before)
    }
  })

  it('should refuse a path that is a file', async () => {
    const file = join(parent, 'shard')
    await writeFile(file, 'x')
    const err = await rejection(prepareShardDir(file, 'writer'))
    expect(err).toBeInstanceOf(StorageFailure)
    expect((err as StorageFailure).reason).toBe('corruption')
    expect(await readFile(file, 'utf8')).toBe('x')
  })

  it('should reject a bad mode with InvalidInput', async () => {
    const err = await rejection(prepareShardDir(join(parent, 'shard'), 'primary' as 'writer'))
    expect(err).toBeInstanceOf(InvalidInput)
    expect(await listTree(parent)).toEqual([])
  })
})

describe('opening a damaged shard', () => {
  let dir: string
  let manifestName: string
  beforeEach(async () => {
    dir = join(await tempDir(), 'shard')
    await makeShard(dir)
    manifestName = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim()
    await unlink(join(dir, 'CURRENT'))
  })
  afterEach(async () => removeDir(join(dir, '..')))

  it('should fail with createIfMissing false and delete nothing; the README repair then restores every key', async () => {
    const before = await dataFiles(dir)
    expect(before.some((f) => /\.sst \d+$/.test(f))).toBe(true)
    for (const readOnly of [false, true]) {
      const settings = readOnly ? readerRocksdb : primaryRocksdb
      const err = await rejection(rocksEngine.open(dir, { ...settings, readOnly, createIfMissing: false }))
      expect(err).toBeInstanceOf(StorageFailure)
      expect(await dataFiles(dir)).toEqual(before)
    }

    // The repair the README describes: CURRENT holds the live MANIFEST's name and a newline.
    await writeFile(join(dir, 'CURRENT'), `${manifestName}\n`)
    expect(await prepareShardDir(dir, 'writer')).toBe('existing')
    const handle = await rocksEngine.open(dir, { ...primaryRocksdb, readOnly: false, createIfMissing: false })
    try {
      const values = await handle.getMany([0, 1, 2].map((i) => Buffer.from(`k${i}`)))
      expect(values.map((v) => v && Buffer.from(v).toString())).toEqual(['v0', 'v1', 'v2'])
    } finally {
      await handle.close()
    }
  })

  it('should be destroyed by the default read-write open (createIfMissing true): why the check exists', async () => {
    const tables = (await readdir(dir)).filter((f) => f.endsWith('.sst'))
    expect(tables.length).toBeGreaterThan(0)
    // The first open fails but writes a fresh CURRENT; the retry a supervisor would make opens an empty database.
    await rejection(rocksEngine.open(dir, { ...primaryRocksdb, readOnly: false }))
    const handle = await rocksEngine.open(dir, { ...primaryRocksdb, readOnly: false })
    try {
      expect(await handle.getMany([Buffer.from('k0')])).toEqual([undefined])
    } finally {
      await handle.close()
    }
    const left = await readdir(dir)
    expect(tables.filter((t) => left.includes(t))).toEqual([])
  })
})

describe('ensureTopicDir', () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir()
  })
  afterEach(async () => removeDir(root))

  // (Without `create`, a topic directory with no TOPIC file is no topic yet: nothing to refuse there.)
  it.each([
    ['the topic directory', (dir: string) => writeFile(dir, 'x'), [true, false]],
    ['its index/', async (dir: string) => (await mkdir(dir), writeFile(join(dir, 'index'), 'x')), [true]],
  ])('should refuse as corruption a file where %s belongs, changing nothing', async (_, make, creates) => {
    const dir = join(root, topicDirName('orders'))
    await make(dir)
    const before = await listTree(root)
    for (const create of creates) {
      const err = await rejection(ensureTopicDir(root, 'orders', { create }))
      expect(err).toMatchObject({ _tag: 'StorageFailure', reason: 'corruption', path: dir })
    }
    expect(await listTree(root)).toEqual(before)
  })

  it('should create the topic directory, index/ and TOPIC by default (the two-argument call)', async () => {
    await ensureTopicDir(root, 'Orders')
    const dir = topicDirName('Orders')
    expect(await listTree(root)).toEqual([`${dir}/`, `${dir}/TOPIC 6`, `${dir}/index/`])
    expect(await readFile(join(root, dir, 'TOPIC'), 'utf8')).toBe('Orders')
  })

  it('should create nothing with create: false, for a missing topic directory or a matching one', async () => {
    await ensureTopicDir(root, 'orders', { create: false })
    expect(await listTree(root)).toEqual([])
    await mkdir(join(root, 'orders'))
    await ensureTopicDir(root, 'orders', { create: false })
    expect(await listTree(root)).toEqual(['orders/'])
    await writeFile(join(root, 'orders', 'TOPIC'), 'orders')
    await ensureTopicDir(root, 'orders', { create: false })
    expect(await listTree(root)).toEqual(['orders/', 'orders/TOPIC 6'])
  })

  it('should refuse, with create: false, a topic directory whose TOPIC names another topic', async () => {
    await ensureTopicDir(root, 'orders')
    await writeFile(join(root, 'orders', 'TOPIC'), 'someone else')
    const before = await listTree(root)
    const err = await rejection(ensureTopicDir(root, 'orders', { create: false }))
    expect(err).toBeInstanceOf(StorageFailure)
    expect((err as StorageFailure).reason).toBe('corruption')
    expect((err as StorageFailure).path).toBe(join(root, 'orders'))
    expect((err as StorageFailure).message).toContain('belongs to another topic ("someone else")')
    expect(await listTree(root)).toEqual(before)
  })
})
