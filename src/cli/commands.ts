/**
 * The commands that work on an existing root: `stats`, `topics`, `get`, `range`, `scan` (reader mode: they read,
 * and never create a root or anything in one) and `put` (writer mode). Human-readable output by default, `--json`
 * for scripts.
 */
import { createInterface } from 'node:readline'
import { InvalidInput, StorageFailure, openIndex, type Index, type MessageMeta, type ReadOptions } from '../index.js'
import { checkBatch, checkMeta } from '../meta.js'
import { bytes, metaLines, num, ranges, shardName, table, time } from './format.js'
import type { Io } from './io.js'
import { topicsOnDisk } from './root-info.js'

/** Options every reading command takes. */
export interface ReadFlags {
  readonly root: string
  readonly json?: boolean
  readonly after?: string
  readonly maxStaleness?: number
}

const readOptions = (flags: ReadFlags): ReadOptions => ({
  ...(flags.after === undefined ? {} : { after: flags.after }),
  ...(flags.maxStaleness === undefined ? {} : { consistency: 'bounded' as const, maxStalenessMs: flags.maxStaleness }),
})

/** Opens an existing root in reader mode (a missing root is StorageFailure `missing`: nothing is created). */
const withReader = async <T>(root: string, fn: (index: Index) => Promise<T>): Promise<T> => {
  const index = await openIndex({ root, mode: 'reader' })
  try {
    return await fn(index)
  } finally {
    await index.close()
  }
}

const json = (io: Io, value: unknown): void => io.out(`${JSON.stringify(value, null, 2)}\n`)

/** A msgId that no meta has (well-formed, so the read is valid): reading it opens the shard's reader. */
const probeId = '\u{1F50D} rockvisor probe'

export const statsCommand = async (flags: ReadFlags, io: Io): Promise<number> =>
  withReader(flags.root, async (index) => {
    const topics = await topicsOnDisk(index.root)
    // One read per shard that holds data opens its reader, whose view tells the shard's sequence.
    for (const t of topics) for (const s of t.shards) if (s.partitions.length > 0) await index.getByMsgId(t.topic, s.partitions[0]!, probeId, readOptions(flags))
    const live = new Map(index.stats().shards.map((s) => [`${s.topic}\u0000${s.shard}`, s]))
    const sequenceOf = (topic: string, shard: number): number => {
      const s = live.get(`${topic}\u0000${shard}`)
      return s === undefined ? 0 : Math.max(s.sequence, ...s.views.map((v) => v.sequence))
    }
    const result = {
      root: index.root,
      shards: index.shards,
      topics: topics.map((t) => ({
        topic: t.topic,
        dir: t.dir,
        partitions: t.shards.reduce((n, s) => n + s.partitions.length, 0),
        bytes: t.shards.reduce((n, s) => n + s.bytes, 0),
        shards: t.shards.map((s) => ({ shard: s.shard, partitions: s.partitions, sequence: sequenceOf(t.topic, s.shard), bytes: s.bytes })),
      })),
    }
    if (flags.json) {
      json(io, result)
      return 0
    }
    const total = result.topics.reduce((n, t) => n + t.bytes, 0)
    io.out(
      [
        `root     ${result.root}`,
        `shards   ${result.shards} per topic (fixed when the root was created)`,
        `topics   ${result.topics.length === 0 ? 'none yet' : result.topics.map((t) => `${t.topic} (${t.partitions} partition${t.partitions === 1 ? '' : 's'})`).join(', ')}`,
        `size     ${bytes(total)}`,
        '',
      ].join('\n'),
    )
    for (const t of result.topics) {
      io.out(`\ntopic ${t.topic}\n`)
      const rows = t.shards.map((s) => [shardName(t.topic, s.shard), s.partitions.length === 0 ? '-' : ranges(s.partitions), num(s.sequence), bytes(s.bytes)])
      io.out(`${table(['shard', 'partitions', 'writes (sequence)', 'size'], rows, io.tty)}\n`)
    }
    return 0
  })

export const topicsCommand = async (flags: ReadFlags, io: Io): Promise<number> =>
  withReader(flags.root, async (index) => {
    const topics = await topicsOnDisk(index.root)
    const result = topics.map((t) => ({
      topic: t.topic,
      dir: t.dir,
      partitions: t.shards.flatMap((s) => s.partitions).sort((a, b) => a - b),
      shards: t.shards.map((s) => ({ shard: s.shard, partitions: s.partitions })),
    }))
    if (flags.json) {
      json(io, { root: index.root, shards: index.shards, topics: result })
      return 0
    }
    if (result.length === 0) {
      io.out(`no topics in ${index.root} yet\n`)
      return 0
    }
    const rows = result.map((t) => [t.topic, t.partitions.length === 0 ? '-' : ranges(t.partitions), `${t.shards.length} of ${index.shards}`])
    io.out(`${table(['topic', 'partitions', 'shard directories'], rows, io.tty)}\n`)
    return 0
  })

export interface GetFlags extends ReadFlags {
  readonly segment?: number
  readonly offset?: number
}

export const getCommand = async (topic: string, partition: number, msgId: string | undefined, flags: GetFlags, io: Io): Promise<number> =>
  withReader(flags.root, async (index) => {
    const where = `partition ${partition} of ${topic} (${shardName(topic, index.locate(topic, partition).shard)})`
    if (msgId !== undefined) {
      const meta = await index.getByMsgId(topic, partition, msgId, readOptions(flags))
      if (flags.json) json(io, meta ?? null)
      else io.out(meta === undefined ? `no meta with msgId ${JSON.stringify(msgId)} in ${where}\n` : `${metaLines(meta)}\n`)
      return 0
    }
    const so = { segmentId: flags.segment!, offset: flags.offset! }
    const id = await index.getMsgIdBySegmentOffset(topic, partition, so, readOptions(flags))
    if (flags.json) json(io, id === undefined ? null : { msgId: id })
    else io.out(id === undefined ? `no meta at segment ${so.segmentId}, offset ${so.offset} in ${where}\n` : `${id}\n`)
    return 0
  })

export const rangeCommand = async (topic: string, partition: number, from: number, to: number, flags: ReadFlags, io: Io): Promise<number> =>
  withReader(flags.root, async (index) => {
    const range = await index.getRangeByTime(topic, partition, from, to, readOptions(flags))
    if (flags.json) json(io, range ?? null)
    else if (range === undefined) io.out(`no meta of partition ${partition} of ${topic} between ${time(from)} and ${time(to)}\n`)
    else io.out(`first  segment ${range.first.segmentId}, offset ${range.first.offset}\nlast   segment ${range.last.segmentId}, offset ${range.last.offset}\n`)
    return 0
  })

export const scanCommand = async (topic: string, partition: number, from: number, to: number, flags: ReadFlags & { limit?: number }, io: Io): Promise<number> =>
  withReader(flags.root, async (index) => {
    let n = 0
    for await (const meta of index.scanByTime(topic, partition, from, to, { ...readOptions(flags), ...(flags.limit === undefined ? {} : { limit: flags.limit }) })) {
      n++
      if (flags.json) io.out(`${JSON.stringify(meta)}\n`)
      else io.out(`${new Date(meta.timestamp).toISOString()}  ${meta.msgId}  segment ${meta.segmentId} offset ${meta.offset}  ${meta.msgLen} B\n`)
    }
    if (!flags.json) io.err(`${num(n)} meta${n === 1 ? '' : 's'}\n`)
    return 0
  })

export interface PutFlags {
  readonly root: string
  readonly json?: boolean
  readonly create?: boolean
  readonly shards?: number
  readonly batch: number
}

/**
 * Writes the metas on stdin, one JSON object a line (`{"msgId","timestamp","segmentId","offset","msgLen"}`), in
 * batches of `batch`. Blank lines are skipped. Each line is checked as it is read: a line that is not JSON or not a
 * meta stops the run (InvalidInput naming the line; a msgId or place named twice in one batch names the line of its
 * second mention); the batches before it were written. Without `create` the root must exist (checked before stdin
 * is read); with it, the root is created at the first batch to write, so input refused from its first line creates
 * nothing.
 */
export const putCommand = async (topic: string, partition: number, flags: PutFlags, io: Io): Promise<number> => {
  // Before stdin is read, a reader-mode open (which creates nothing) checks the root: that it exists unless --create,
  // and that --shards agrees with it.
  try {
    await (await openIndex({ root: flags.root, mode: 'reader', ...(flags.shards === undefined ? {} : { shards: flags.shards }) })).close()
  } catch (e) {
    const missing = e instanceof StorageFailure && e.reason === 'missing' && e.message.startsWith('no rockvisor root at ')
    if (!missing) throw e
    // (The reader-mode open says a reader-mode index needs a root a writer created: put needs --create instead.)
    if (!flags.create) {
      throw new StorageFailure({ reason: 'missing', path: e.path, message: `no rockvisor root at ${flags.root}: put writes to an existing root; pass --create (and --shards N) to create one`, cause: e })
    }
  }
  let index: Index | undefined
  let written = 0
  let batches = 0
  let bytesWritten = 0
  let token: string | undefined
  try {
    let batch: MessageMeta[] = []
    /** The stdin line of each meta of `batch`. */
    let lines: number[] = []
    const flush = async () => {
      if (batch.length === 0) return
      let r: Awaited<ReturnType<Index['batchPut']>>
      try {
        // The batch's own checks (a msgId or place named twice) before the root is opened, or created.
        checkBatch(batch)
        index ??= await openIndex({ root: flags.root, ...(flags.shards === undefined ? {} : { shards: flags.shards }) })
        r = await index.batchPut(topic, partition, batch)
      } catch (e) {
        // The batch's own checks name a meta by its place in the batch: name its line instead.
        const at = e instanceof InvalidInput ? /^metas\[([0-9]+)\]/.exec(e.field) : null
        if (at === null) throw e
        const line = lines[Number(at[1])]!
        throw new InvalidInput({ field: `stdin line ${line}`, message: `stdin line ${line}: ${e instanceof InvalidInput ? e.message.replace(/^metas\[[0-9]+\][^:]*: /, '') : ''}` })
      }
      written += batch.length
      batches++
      bytesWritten += r.bytes
      token = r.token
      batch = []
      lines = []
    }
    let line = 0
    for await (const text of createInterface({ input: io.stdin, crlfDelay: Infinity })) {
      line++
      if (text.trim() === '') continue
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch (e) {
        throw new InvalidInput({ field: `stdin line ${line}`, message: `stdin line ${line}: not JSON (${(e as Error).message}); ${num(written)} metas were written before it` })
      }
      batch.push(checkMeta(parsed, `stdin line ${line}`))
      lines.push(line)
      if (batch.length >= flags.batch) await flush()
    }
    await flush()
  } catch (e) {
    if (e instanceof InvalidInput && written > 0 && !e.message.includes('were written before it')) {
      throw new InvalidInput({ field: e.field, message: `${e.message} (${num(written)} metas were written before this batch)` })
    }
    throw e
  } finally {
    await index?.close()
  }
  if (flags.json) json(io, { written, batches, bytes: bytesWritten, token: token ?? null })
  else io.out(`wrote ${num(written)} meta${written === 1 ? '' : 's'} to partition ${partition} of ${topic} in ${num(batches)} batch${batches === 1 ? '' : 'es'} (${bytes(bytesWritten)})${token ? `; last write token ${token}` : ''}\n`)
  return 0
}
