/**
 * Reading RocksDB's write-ahead logs from outside it (src/wal.ts, src/wal-tail.ts), on logs a real RocksDB wrote: every
 * batch read back as written (large ones spread over blocks too), a log cut anywhere read as a prefix of its batches
 * and never more, a log read in pieces read as in one, a damaged record refused; the tail across log switches; and a
 * reader-mode index that follows the logs: its point reads after a newer token answered without reopening a view,
 * and every answer what the writer wrote, whatever the flushes and retention in between.
 */
import { open, readdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { rocksEngine, type OpenOptions, type StorageHandle, type WriteOp } from '../src/engine.js'
import { FaultInjector, ManualClock, openIndex, type MessageMeta } from '../src/index.js'
import { sequenceKey, sequenceValue } from '../src/keys.js'
import { crc32c, decodeBatch, logStart, readRecords, type LogCursor } from '../src/wal.js'
import { WalTail } from '../src/wal-tail.js'
import { cleanupAfterEach } from './support/cleanups.js'
import { removeDir, tempDir } from './support/tmp.js'

const { add } = cleanupAfterEach()
const options: OpenOptions = { readOnly: false, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 64 * 1024 * 1024, maxWriteBufferNumber: 2, enableStatistics: false }
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const shape = (ops: readonly WriteOp[]) =>
  ops.map((op) => (op.type === 'put' ? ['put', hex(op.key), hex(op.value)] : op.type === 'del' ? ['del', hex(op.key)] : ['delRange', hex(op.start), hex(op.end)]))

const bytesArb = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => Buffer.from(a))
/** A batch as rockvisor writes one: puts, deletions and range deletions, then the shard's sequence. */
const opsArb: fc.Arbitrary<WriteOp[]> = fc.array(
  fc.oneof(
    { weight: 8, arbitrary: fc.record({ type: fc.constant('put' as const), key: bytesArb(40), value: bytesArb(30) }) },
    { weight: 2, arbitrary: fc.record({ type: fc.constant('del' as const), key: bytesArb(40) }) },
    {
      weight: 1,
      arbitrary: fc.tuple(bytesArb(8), bytesArb(8)).map(([a, b]): WriteOp => (Buffer.compare(a, b) <= 0 ? { type: 'delRange', start: a, end: b } : { type: 'delRange', start: b, end: a })),
    },
    // A value over a block (32 KiB) now and then: its batch is split over several records (FIRST, MIDDLE..., LAST).
    { weight: 1, arbitrary: fc.record({ type: fc.constant('put' as const), key: bytesArb(40), value: fc.uint8Array({ minLength: 20_000, maxLength: 70_000 }).map((a) => Buffer.from(a)) }) },
  ),
  { minLength: 0, maxLength: 20 },
)

/** A value of more than two blocks: a batch holding it is split into FIRST, MIDDLE and LAST records. */
const big: WriteOp = { type: 'put', key: Buffer.from('big'), value: Buffer.alloc(70_000, 0x5a) }

/** Writes `batches` (sequences 1, 2, ...) to a new directory; returns the directory and its logs' bytes. */
const writeLog = async (batches: readonly WriteOp[][]): Promise<{ dir: string; handle: StorageHandle }> => {
  const dir = await tempDir()
  add(() => removeDir(dir))
  const handle = await rocksEngine.open(dir, options)
  add(() => handle.close())
  for (const [i, ops] of batches.entries()) await handle.write([...ops, { type: 'put', key: sequenceKey, value: sequenceValue(i + 1) }])
  return { dir, handle }
}

const logsOf = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.log')).sort()

describe('a write-ahead log read from outside RocksDB', () => {
  it('should read back every batch as it was written, in order, with its sequence', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opsArb, { minLength: 1, maxLength: 12 }), async (batches) => {
        const { dir } = await writeLog(batches)
        const [log] = await logsOf(dir)
        const read = readRecords(await readFile(join(dir, log!)), logStart)
        expect(read.stop).toBeUndefined()
        const decoded = read.batches.map(decodeBatch)
        expect(decoded.map((b) => b?.seq)).toEqual(batches.map((_, i) => i + 1))
        expect(decoded.map((b) => shape(b!.ops))).toEqual(batches.map((ops, i) => shape([...ops, { type: 'put', key: sequenceKey, value: sequenceValue(i + 1) }])))
      }),
      { numRuns: 15 },
    )
  })

  it('should read a log cut anywhere as a prefix of its batches, and a log read in pieces as in one read', async () => {
    const small = fc.sample(opsArb.map((ops) => ops.filter((op) => op.type !== 'put' || op.value.length < 1_000)), { numRuns: 12, seed: 5 })
    const batches = [...small.slice(0, 6), [big], ...small.slice(6)]
    const { dir } = await writeLog(batches)
    const [log] = await logsOf(dir)
    const data = await readFile(join(dir, log!))
    expect(data.length).toBeGreaterThan(2 * 32 * 1024)
    const whole = readRecords(data, logStart).batches.map(hex)
    expect(whole).toHaveLength(13)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: data.length }), { maxLength: 6 }), (cuts) => {
        // Pieces: what a poll would see as the writer appends (each read ends at a cut, the last at the end).
        const ends = [...new Set(cuts)].sort((a, b) => a - b)
        let cursor: LogCursor = logStart
        const got: string[] = []
        for (const end of ends) {
          const read = readRecords(data.subarray(cursor.offset, end), cursor)
          expect(read.stop === undefined || read.stop === 'incomplete').toBe(true)
          got.push(...read.batches.map(hex))
          // Never more than the log holds up to the cut, never a batch out of order.
          expect(got).toEqual(whole.slice(0, got.length))
          cursor = read.cursor
        }
        const rest = readRecords(data.subarray(cursor.offset), cursor)
        got.push(...rest.batches.map(hex))
        expect(rest.stop).toBeUndefined()
        expect(got).toEqual(whole)
      }),
      { numRuns: 100 },
    )
  })

  it('should refuse a record whose bytes were damaged, and keep the batches before it', async () => {
    const batches = fc.sample(opsArb, { numRuns: 10, seed: 9 }).map((ops) => ops.filter((op) => op.type !== 'put' || op.value.length < 100))
    const { dir } = await writeLog(batches)
    const [log] = await logsOf(dir)
    const data = Buffer.from(await readFile(join(dir, log!)))
    const offsets: number[] = []
    let cursor: LogCursor = logStart
    for (let end = 1; end <= data.length; end++) {
      const read = readRecords(data.subarray(cursor.offset, end), cursor)
      if (read.batches.length > 0) offsets.push(cursor.offset)
      cursor = read.cursor
    }
    expect(offsets).toHaveLength(10)
    // A byte of the 6th batch's payload flipped.
    data[offsets[5]! + 20] = data[offsets[5]! + 20]! ^ 0xff
    const read = readRecords(data, logStart)
    expect(read.stop).toBe('unreadable')
    expect(read.batches.map((b) => decodeBatch(b)?.seq)).toEqual([1, 2, 3, 4, 5])
  })

  it('should stop at zeroes after the last record (space not written yet), and refuse a record longer than its block', async () => {
    const batches = fc.sample(opsArb, { numRuns: 5, seed: 3 })
    const { dir } = await writeLog(batches)
    const [log] = await logsOf(dir)
    const data = Buffer.from(await readFile(join(dir, log!)))
    const padded = readRecords(Buffer.concat([data, Buffer.alloc(64)]), logStart)
    expect(padded.stop).toBe('incomplete')
    expect(padded.batches.map((b) => decodeBatch(b)?.seq)).toEqual([1, 2, 3, 4, 5])
    expect(padded.cursor.offset).toBe(data.length)
    // The first record's length made larger than what is left of its block.
    const long = Buffer.from(data)
    long.writeUInt16LE(0xffff, 4)
    expect(readRecords(long, logStart)).toMatchObject({ batches: [], stop: 'unreadable' })
  })

  it('should decode only whole batches of the default column family that carry a sequence', () => {
    const batch = (count: number, ...ops: number[][]) => {
      const header = Buffer.alloc(12)
      header.writeUInt32LE(count, 8)
      return Buffer.concat([header, ...ops.map((op) => Buffer.from(op))])
    }
    const seqPut = [0x01, sequenceKey.length, ...sequenceKey, 8, ...sequenceValue(7)]
    expect(decodeBatch(batch(1, seqPut))).toEqual({ seq: 7, ops: [{ type: 'put', key: Buffer.from(sequenceKey), value: Buffer.from(sequenceValue(7)) }] })
    // The column-family forms, family 0: a put, a deletion, a range deletion.
    const cf = batch(4, seqPut, [0x05, 0, 1, 0x61, 1, 0x62], [0x04, 0, 1, 0x63], [0x0e, 0, 1, 0x64, 1, 0x65])
    expect(shape(decodeBatch(cf)!.ops.slice(1))).toEqual([
      ['put', '61', '62'],
      ['del', '63'],
      ['delRange', '64', '65'],
    ])
    // Another family, a count that does not match, a short header, slices and varints past the end: refused.
    expect(decodeBatch(batch(2, seqPut, [0x05, 1, 1, 0x61, 1, 0x62]))).toBeUndefined()
    expect(decodeBatch(batch(2, seqPut))).toBeUndefined()
    expect(decodeBatch(Buffer.alloc(11))).toBeUndefined()
    expect(decodeBatch(batch(2, seqPut, [0x01, 5, 0x61]))).toBeUndefined()
    // The last slice of a batch cut short: a deletion, a put's value, a range deletion's end.
    expect(decodeBatch(batch(2, seqPut, [0x00, 5, 0x61]))).toBeUndefined()
    expect(decodeBatch(batch(2, seqPut, [0x01, 1, 0x61, 5, 0x62]))).toBeUndefined()
    expect(decodeBatch(batch(2, seqPut, [0x0f, 1, 0x61, 5, 0x62]))).toBeUndefined()
    expect(decodeBatch(batch(2, seqPut, [0x00, 0x80]))).toBeUndefined()
    expect(decodeBatch(batch(2, seqPut, [0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBeUndefined()
    // A varint of two bytes: a 200-byte key.
    const key = Buffer.alloc(200, 0x61)
    expect(shape(decodeBatch(batch(2, seqPut, [0x00, 0xc8, 0x01, ...key]))!.ops.slice(1))).toEqual([['del', key.toString('hex')]])
    // Keys that begin the sequence key, or begin with it, are puts like any other: the sequence is the key's own.
    const prefix = [...sequenceKey.subarray(0, 3)]
    const longer = [...sequenceKey, 0x00]
    const sequenceLike = [[0x01, prefix.length, ...prefix, 8, ...sequenceValue(99)], [0x01, longer.length, ...longer, 8, ...sequenceValue(98)]]
    expect(decodeBatch(batch(3, seqPut, ...sequenceLike))?.seq).toBe(7)
  })

  it('should refuse a batch it does not know, rather than guess', () => {
    const batch = Buffer.alloc(12 + 3)
    batch.writeUInt32LE(1, 8)
    batch[12] = 0x02 // a merge
    batch[13] = 1
    batch[14] = 0x61
    expect(decodeBatch(batch)).toBeUndefined()
    // Nor when the merge's operands are whole (a key, then a value), and the batch carries a sequence.
    const merge = Buffer.concat([Buffer.alloc(8), Buffer.from([2, 0, 0, 0]), Buffer.from([0x01, sequenceKey.length, ...sequenceKey, 8, ...sequenceValue(7)]), Buffer.from([0x02, 1, 0x61, 1, 0x62])])
    expect(decodeBatch(merge)).toBeUndefined()
    // A batch without rockvisor's sequence in it.
    const put = Buffer.from([...Buffer.alloc(8), 1, 0, 0, 0, 0x01, 1, 0x61, 1, 0x62])
    expect(decodeBatch(put)).toBeUndefined()
  })

  it('should compute the CRC32C of any bytes, range and running value as one bit at a time does', () => {
    // CRC32C's check value (the CRC of the ASCII digits 1 to 9).
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283)
    /** The model: the polynomial applied bit by bit, no table. */
    const bitwise = (bytes: Uint8Array, from: number, to: number, crc: number): number => {
      let c = ~crc
      for (let i = from; i < to; i++) {
        c ^= bytes[i]!
        for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
      }
      return ~c >>> 0
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 0xffffffff }), (bytes, a, b, crc) => {
        const from = a % (bytes.length + 1)
        const to = from + (b % (bytes.length - from + 1))
        expect(crc32c(bytes, from, to, crc)).toBe(bitwise(bytes, from, to, crc))
      }),
    )
  })
})

describe("the tail of a directory's logs", () => {
  it('should read every batch once, in order, across log switches and deleted logs', async () => {
    const { dir, handle } = await writeLog([])
    const tail = new WalTail(dir)
    const seen: number[] = []
    const poll = async () => {
      const read = await tail.poll()
      expect(read.unusable).toBeUndefined()
      seen.push(...read.batches.map((b) => b.seq))
    }
    await poll()
    let seq = 0
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 5; i++) await handle.write([{ type: 'put', key: Buffer.from(`k${seq}`), value: Buffer.alloc(10) }, { type: 'put', key: sequenceKey, value: sequenceValue(++seq) }])
      if (round % 2 === 1) await poll()
      // A flush switches to a new log and deletes the old one once flushed.
      await handle.flush()
    }
    await poll()
    // Batches of logs deleted before a poll read them are gone (they are in table files); what was read is in order,
    // without repeats, and holds every batch of the log each poll found live (rounds 1, 3 and 5, written since the
    // flush before them).
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen.at(-1)).toBe(seq)
    for (const round of [1, 3, 5]) for (let k = 1; k <= 5; k++) expect(seen).toContain(round * 5 + k)
  })

  it('should not say it read everything once it moved to a newer log, until it reads a batch of that log', async () => {
    const { dir, handle } = await writeLog([])
    const tail = new WalTail(dir)
    const put = (n: number) => handle.write([{ type: 'put', key: Buffer.from(`k${n}`), value: Buffer.alloc(10) }, { type: 'put', key: sequenceKey, value: sequenceValue(n) }])
    await put(1)
    expect(await tail.poll()).toMatchObject({ batches: [{ seq: 1 }], complete: true })
    expect((await tail.poll()).complete).toBe(true)
    // Between two polls a log is created, written (2 and 3) and deleted (flushed): the tail never lists it, and
    // moves past it to the newest log, empty yet.
    await handle.flush()
    await put(2)
    await put(3)
    await handle.flush()
    const skipped = await tail.poll()
    expect(skipped.batches).toEqual([])
    expect(skipped.complete).toBe(false)
    expect((await tail.poll()).complete).toBe(false)
    // The next batch read shows the gap (4 after 1) to the caller, and the tail is whole again from there.
    await put(4)
    expect(await tail.poll()).toMatchObject({ batches: [{ seq: 4 }], complete: true })
  })

  it('should say the logs are unusable when the open log was replaced or is gone with no newer one (a directory restored under it)', async () => {
    const { dir } = await writeLog(fc.sample(opsArb, { numRuns: 3, seed: 5 }))
    const [log] = await logsOf(dir)
    const tail = new WalTail(dir)
    expect((await tail.poll()).batches.map((b) => b.seq)).toEqual([1, 2, 3])
    expect((await tail.poll()).complete).toBe(true)
    // Another file under the same name (a copy restored over it): the one held open no longer is the directory's.
    const data = await readFile(join(dir, log!))
    await writeFile(join(dir, `${log!}.new`), data)
    await rename(join(dir, `${log!}.new`), join(dir, log!))
    expect((await tail.poll()).unusable).toMatch(/was replaced/)
    // Read again from the start: the restored log.
    expect((await tail.poll()).batches.map((b) => b.seq)).toEqual([1, 2, 3])
    // Gone, and no newer log: RocksDB deletes a log only once a newer one exists.
    await rm(join(dir, log!))
    expect((await tail.poll()).unusable).toMatch(/is gone and no newer one/)
  })

  it('should follow only the files named as logs, read them in number order, and read nothing once closed', async () => {
    const { dir } = await writeLog(fc.sample(opsArb, { numRuns: 4, seed: 21 }))
    const [log] = await logsOf(dir)
    const data = await readFile(join(dir, log!))
    // Another directory: a copy of the log as number 10, and files whose names only resemble a log's.
    const other = await tempDir()
    add(() => removeDir(other))
    await writeFile(join(other, '000010.log'), data)
    await writeFile(join(other, '000099.log.old'), data)
    await writeFile(join(other, 'x000098.log'), data)
    const tail = new WalTail(other)
    expect((await tail.poll()).batches.map((b) => b.seq)).toEqual([1, 2, 3, 4])
    tail.close()
    expect(await tail.poll()).toEqual({ batches: [], fresh: true, complete: false, unusable: 'the tail is closed' })
    // A log that ends inside a record while a newer one exists was cut: not used.
    await writeFile(join(other, '000009.log'), data.subarray(0, Math.floor(data.length * 0.6)))
    const cut = await new WalTail(other).poll()
    expect(cut.unusable).toMatch(/ends inside a record/)
    // Read in number order, 2 before 10, whatever order the directory lists them in.
    await rm(join(other, '000009.log'))
    await writeFile(join(other, '000002.log'), data)
    const ordered = await new WalTail(other).poll()
    expect(ordered.batches.map((b) => b.seq)).toEqual([1, 2, 3, 4, 1, 2, 3, 4])
    expect(ordered.unusable).toBeUndefined()
  })

  it('should say a log it cannot read is unusable, and start over at the next poll', async () => {
    const { dir, handle } = await writeLog([[{ type: 'put', key: Buffer.from('a'), value: Buffer.from('b') }]])
    const tail = new WalTail(dir)
    expect((await tail.poll()).batches.map((b) => b.seq)).toEqual([1])
    await handle.write([{ type: 'put', key: Buffer.from('c'), value: Buffer.from('d') }, { type: 'put', key: sequenceKey, value: sequenceValue(2) }])
    const [log] = await logsOf(dir)
    const file = await open(join(dir, log!), 'r+')
    const { size } = await file.stat()
    await file.write(Buffer.from([0xff]), 0, 1, size - 3)
    await file.close()
    const read = await tail.poll()
    expect(read.unusable).toMatch(/cannot be read/)
    expect(read.batches).toEqual([])
    // Started over: the first batch again, then the refusal again.
    const again = await tail.poll()
    expect(again.fresh).toBe(true)
    expect(again.batches.map((b) => b.seq)).toEqual([1])
  })
})

const meta = (n: number, id = `m${n}`): MessageMeta => ({ msgId: id, timestamp: 1_000 + n, segmentId: 0, offset: n, msgLen: 10 })

describe('a reader-mode index that follows the logs', () => {
  it("should answer a point read after a newer token from its view and the logs, without reopening the view", async () => {
    const root = await tempDir()
    add(() => removeDir(root))
    const writer = await openIndex({ root, shards: 1 })
    add(() => writer.close())
    const first = await writer.batchPut('t', 0, [meta(1)])
    const faults = new FaultInjector()
    const reader = await openIndex({ root, mode: 'reader', engine: faults, readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => reader.close())
    expect(await reader.getByMsgId('t', 0, 'm1', { after: first.token })).toEqual(meta(1))
    const opens = faults.opened.reader
    for (let n = 2; n <= 20; n++) {
      const { token } = await writer.batchPut('t', 0, [meta(n)])
      expect(await reader.getByMsgId('t', 0, `m${n}`, { after: token })).toEqual(meta(n))
      expect(await reader.getMsgIdBySegmentOffset('t', 0, { segmentId: 0, offset: n }, { after: token })).toBe(`m${n}`)
    }
    // A replaced meta and a deleted place read as the writer left them.
    const replaced = await writer.batchPut('t', 0, [meta(5, 'm5b')])
    expect(await reader.getMsgIdBySegmentOffset('t', 0, { segmentId: 0, offset: 5 }, { after: replaced.token })).toBe('m5b')
    expect(await reader.getByMsgId('t', 0, 'm5b', { after: replaced.token })).toEqual(meta(5, 'm5b'))
    expect(faults.opened.reader).toBe(opens)
    const shard = reader.stats().shards[0]!
    expect(shard.served.memory).toBeGreaterThan(0)
    // A range read or a scan of a time window that no write after the view touched is answered by the view alone
    // (what the logs held shows that nothing changed there)...
    const readersBefore = reader.stats().shards[0]!.served.readers
    expect(await reader.getRangeByTime('t', 0, 1_000, 1_001, { after: replaced.token })).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 1 } })
    const scanned: MessageMeta[] = []
    for await (const m of reader.scanByTime('t', 0, 0, 1_001, { after: replaced.token })) scanned.push(m)
    expect(scanned).toEqual([meta(1)])
    expect(faults.opened.reader).toBe(opens)
    expect(reader.stats().shards[0]!.served.readers - readersBefore).toBe(2)
    // ...but one of a window a later write touched needs a view that holds the token: the reader reopens for it.
    expect(await reader.getRangeByTime('t', 0, 1_020, 1_020, { after: replaced.token })).toEqual({ first: { segmentId: 0, offset: 20 }, last: { segmentId: 0, offset: 20 } })
    expect(faults.opened.reader).toBe(opens + 1)
    // The log the tail keeps open is released with the index.
    const logsOpen = async () => {
      const fds = await readdir('/proc/self/fd')
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')))
      return targets.filter((t) => t.startsWith(root) && t.includes('.log')).length
    }
    // The writer's own RocksDB holds its log open too: closed first, it leaves only the tail's.
    await writer.close()
    expect(await logsOpen()).toBeGreaterThan(0)
    await reader.close()
    for (let i = 0; i < 50 && (await logsOpen()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(await logsOpen()).toBe(0)
  })

  it('should answer a bounded read its view is too old for after one read of the logs, begun within the bound', async () => {
    const root = await tempDir()
    add(() => removeDir(root))
    const writer = await openIndex({ root, shards: 1 })
    add(() => writer.close())
    const clock = new ManualClock(1_000_000)
    const faults = new FaultInjector()
    const reader = await openIndex({ root, mode: 'reader', clock, engine: faults, readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => reader.close())
    const first = await writer.batchPut('t', 0, [meta(1)])
    expect(await reader.getByMsgId('t', 0, 'm1', { after: first.token })).toEqual(meta(1))
    const opens = faults.opened.reader
    await writer.batchPut('t', 0, [meta(2)])
    // The view is 10 s old, the bound 5 ms: the logs, read now, hold m2.
    await clock.advance(10_000)
    expect(await reader.getByMsgId('t', 0, 'm2', { consistency: 'bounded', maxStalenessMs: 5 })).toEqual(meta(2))
    expect(faults.opened.reader).toBe(opens)
    // 6 ms later that read of the logs is too old for the same bound: another one answers.
    await writer.batchPut('t', 0, [meta(3)])
    await clock.advance(6)
    expect(await reader.getByMsgId('t', 0, 'm3', { consistency: 'bounded', maxStalenessMs: 5 })).toEqual(meta(3))
    // 4 ms after that one, it still is recent enough: m4, written since, is not seen (a bounded read, not a fresh one).
    await writer.batchPut('t', 0, [meta(4)])
    await clock.advance(4)
    expect(await reader.getByMsgId('t', 0, 'm4', { consistency: 'bounded', maxStalenessMs: 5 })).toBeUndefined()
    expect(faults.opened.reader).toBe(opens)
  })

  it('should not answer a bounded read from what the logs held while a log may have come and gone unseen', async () => {
    const root = await tempDir()
    add(() => removeDir(root))
    // The writer flushes on its own clock's time trigger only: each flush switches to a new log and deletes the old.
    const writerClock = new ManualClock(1_000_000)
    const writer = await openIndex({ root, shards: 1, clock: writerClock, freshness: { flushEveryRecords: 16_384, flushIntervalMs: 1_000 } })
    add(() => writer.close())
    const flushesDone = () => writer.stats().shards[0]!.flushes.done
    const flush = async () => {
      const before = flushesDone()
      await writerClock.advance(2_000)
      for (let i = 0; i < 2_000 && flushesDone() === before; i++) await new Promise((resolve) => setTimeout(resolve, 2))
      expect(flushesDone()).toBeGreaterThan(before)
    }
    const clock = new ManualClock(1_000_000)
    const reader = await openIndex({ root, mode: 'reader', clock, readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => reader.close())
    const first = await writer.batchPut('t', 0, [meta(1)])
    expect(await reader.getByMsgId('t', 0, 'm1', { after: first.token })).toEqual(meta(1))
    await writer.batchPut('t', 0, [meta(2)])
    // The view is 10 s old, the bound 5 ms: the logs, read now, hold m2 (and the tail keeps that log open).
    await clock.advance(10_000)
    expect(await reader.getByMsgId('t', 0, 'm2', { consistency: 'bounded', maxStalenessMs: 5 })).toEqual(meta(2))
    expect(reader.stats().shards[0]!.served.memory).toBeGreaterThan(0)
    // A log comes and goes between two reads of the logs: m3 is written to a log that is flushed and deleted before
    // the next read, which finds only the log after it (empty).
    await flush()
    await writer.batchPut('t', 0, [meta(3)])
    await flush()
    await clock.advance(10_000)
    // m3 was acknowledged 10 s before the read: a bounded read of 5 ms must see it (a view reopened holds it).
    expect(await reader.getByMsgId('t', 0, 'm3', { consistency: 'bounded', maxStalenessMs: 5 })).toEqual(meta(3))
    expect(await reader.getRangeByTime('t', 0, 1_003, 1_003, { consistency: 'bounded', maxStalenessMs: 5 })).toEqual({ first: { segmentId: 0, offset: 3 }, last: { segmentId: 0, offset: 3 } })
  })

  it('should not merge a view with the logs across a log deleted unread: the view reopens instead', async () => {
    const root = await tempDir()
    add(() => removeDir(root))
    const writer = await openIndex({ root, shards: 1, freshness: { flushEveryRecords: 4 } })
    add(() => writer.close())
    const faults = new FaultInjector()
    const reader = await openIndex({ root, mode: 'reader', engine: faults, readers: { min: 1, max: 1, idleMs: 3_600_000, maxLifetimeMs: 3_600_000 } })
    add(() => reader.close())
    const first = await writer.batchPut('t', 0, [meta(1)])
    expect(await reader.getByMsgId('t', 0, 'm1', { after: first.token })).toEqual(meta(1))
    const second = await writer.batchPut('t', 0, [meta(2)])
    expect(await reader.getByMsgId('t', 0, 'm2', { after: second.token })).toEqual(meta(2))
    const opens = faults.opened.reader
    // Batches the reader never polls for: the flush they trigger writes them to a table file and deletes their log.
    const flushed = writer.stats().shards[0]!.flushes.done
    for (let n = 3; n <= 8; n++) await writer.batchPut('t', 0, [meta(n)])
    const dir = writer.locate('t', 0).dir
    for (let i = 0; i < 500; i++) {
      const s = writer.stats().shards[0]!.flushes
      if (s.done > flushed && !s.running && (await logsOf(dir)).length === 1) break
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const last = await writer.batchPut('t', 0, [meta(9)])
    // The logs now start after a gap: the view (at m2) merged with them would miss m3..m8.
    for (let n = 3; n <= 9; n++) expect(await reader.getByMsgId('t', 0, `m${n}`, { after: last.token })).toEqual(meta(n))
    expect(faults.opened.reader).toBe(opens + 1)
  })

  it('should answer every point read as the writer left the data, whatever the flushes and retention in between', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            { weight: 5, arbitrary: fc.array(fc.record({ n: fc.integer({ min: 0, max: 40 }), id: fc.integer({ min: 0, max: 40 }) }), { minLength: 1, maxLength: 5 }).map((puts) => ({ kind: 'put' as const, puts })) },
            { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }).map((before) => ({ kind: 'retain' as const, before })) },
            { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((times) => ({ kind: 'flush' as const, times })) },
          ),
          { minLength: 1, maxLength: 25 },
        ),
        async (steps) => {
          const root = await tempDir()
          // A tiny flush trigger: logs switch and go away under the reader.
          const writer = await openIndex({ root, shards: 1, freshness: { flushEveryRecords: 12 } })
          const reader = await openIndex({ root, mode: 'reader', readers: { min: 1, max: 1 } })
          try {
            // The model: msgId -> meta, place -> msgId.
            const byId = new Map<string, MessageMeta>()
            const byPlace = new Map<number, string>()
            let token = (await writer.batchPut('t', 0, [meta(1000)])).token
            byId.set('m1000', meta(1000))
            byPlace.set(1000, 'm1000')
            for (const step of steps) {
              if (step.kind === 'put') {
                const metas = new Map<number, MessageMeta>()
                const ids = new Set<string>()
                for (const { n, id } of step.puts) {
                  const m = meta(n, `i${id}`)
                  if (metas.has(n) || ids.has(m.msgId)) continue
                  metas.set(n, m)
                  ids.add(m.msgId)
                }
                token = (await writer.batchPut('t', 0, [...metas.values()])).token
                for (const m of metas.values()) {
                  // Replace semantics: the msgId's old place and the place's old msgId go.
                  const old = byId.get(m.msgId)
                  if (old !== undefined) byPlace.delete(old.offset)
                  const held = byPlace.get(m.offset)
                  if (held !== undefined) byId.delete(held)
                  byId.set(m.msgId, m)
                  byPlace.set(m.offset, m.msgId)
                }
              } else if (step.kind === 'retain') {
                token = (await writer.deleteBefore('t', 0, 1_000 + step.before)).token
                for (const [id, m] of [...byId]) {
                  if (m.timestamp < 1_000 + step.before) {
                    byId.delete(id)
                    byPlace.delete(m.offset)
                  }
                }
              } else {
                for (let i = 0; i < step.times; i++) token = (await writer.batchPut('t', 0, [meta(2000 + i, `f${i}`)])).token
                for (let i = 0; i < step.times; i++) {
                  const m = meta(2000 + i, `f${i}`)
                  byId.set(m.msgId, m)
                  byPlace.set(m.offset, m.msgId)
                }
              }
              for (let id = 0; id <= 40; id += 7) expect(await reader.getByMsgId('t', 0, `i${id}`, { after: token })).toEqual(byId.get(`i${id}`))
              for (let n = 0; n <= 40; n += 5) expect(await reader.getMsgIdBySegmentOffset('t', 0, { segmentId: 0, offset: n }, { after: token })).toBe(byPlace.get(n))
            }
          } finally {
            await reader.close()
            await writer.close()
            await removeDir(root)
          }
        },
      ),
      { numRuns: 12 },
    )
  })
})
