/**
 * Readers in child processes (`readers.placement: 'process'`, src/reader-workers.ts over IPC): reads served from a
 * child answer exactly what in-process readers answer, and the reader's instance is opened there; iterations, values
 * and the binding's errors cross the IPC as in process; a child killed by SIGKILL under reads (as a native crash in a
 * reader would end it) is a reader failure naming it: its readers restart on a new child and every read is answered;
 * close ends every child (their pids are gone); a child does not keep an idle parent alive and exits when its parent
 * goes away; bad option values are InvalidInput, creating nothing. Real RocksDB in temp dirs, no sleeps.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { InvalidInput, openIndex, type IndexOptions } from '../src/index.js'
import { ReaderWorkers, readerWorkerPools } from '../src/reader-workers.js'
import { waitFor } from './support/harness.js'
import { bindingOptions, both, collect, encode, expectSameReads, index, meta, outcome, poolOf, readAll, scratch, writeDb, writtenRoot } from './support/readers.js'

/** Whether process `pid` runs (a zombie, dead but not yet reaped by whoever adopted it, does not). */
const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw e
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return false
  }
}

/** The one child of `pool`. */
const childOf = (pool: ReaderWorkers): number => {
  expect(pool.pids).toHaveLength(1)
  return pool.pids[0]!
}

describe('reads through a process placement', () => {
  it('should answer point reads, time ranges and scans exactly as in-process readers do, from readers opened in a child', async () => {
    const root = await writtenRoot()
    const local = await readAll(root, 'in-process')
    const opened = ReaderWorkers.opened
    const remote = await readAll(root, 'process')
    expectSameReads(local, remote)
    // Served from one child process: the readers' instances were opened there, by its own count.
    const pool = poolOf(root)
    const pid = childOf(pool)
    expect([pool.host, pid !== process.pid, running(pid)]).toEqual(['process', true, true])
    const readers = remote.reader.stats().totals.readers
    expect(readers).toBeGreaterThan(0)
    expect(await pool.census()).toEqual({ handles: readers, iterators: 0 })
    expect(ReaderWorkers.opened - opened).toBe(readers)
  })

  it('should carry iterations, values and the binding\'s errors (a corrupted block, a missing directory) across IPC as in process', async () => {
    const dir = await scratch()
    await writeDb(dir, Array.from({ length: 1_500 }, (_, i) => [`k${String(i).padStart(5, '0')}`, new Uint8Array(i % 5 === 0 ? 0 : 100).fill(i % 256)] as const))
    const { local, remote, pool } = await both(dir, 'process')
    for (const range of [{}, { reverse: true }, { gte: encode('k00100'), lt: encode('k01200'), limit: 700 }, { gte: encode('z') }]) {
      expect(await collect(remote.iterate(range)), JSON.stringify(range)).toEqual(await collect(local.iterate(range)))
    }
    expect(await collect(remote.iterate({}), 70)).toHaveLength(70)
    expect(await pool.census()).toEqual({ handles: 1, iterators: 0 })
    const keys = [encode('k00000'), encode('nope'), encode('k01499'), encode('k00007')]
    expect(await remote.getManySettled!(keys)).toEqual(await local.getManySettled!(keys))
    const missing = join(dir, 'nowhere')
    expect(await outcome(() => pool.open(missing, bindingOptions))).toMatchObject({ tag: 'StorageFailure', reason: 'missing', path: missing })

    // The start of a table file overwritten: its checksum no longer matches, key by key, on both sides.
    const damaged = await scratch()
    await writeDb(damaged, Array.from({ length: 100 }, (_, i) => [`k${i}`, new Uint8Array(100).fill(i)] as const))
    const file = await open(join(damaged, (await readdir(damaged)).find((f) => f.endsWith('.sst'))!), 'r+')
    await file.write(Buffer.alloc(256, 0x5a), 0, 256, 0)
    await file.close()
    const pair = await both(damaged, 'process')
    const settled = (h: typeof local) =>
      h.getManySettled!([encode('k1'), encode('absent')]).then(({ values, errors }) => ({ values, errors: errors?.map((e) => e && { reason: e.reason, path: e.path, message: e.message }) }))
    const expected = await settled(pair.local)
    expect(expected.errors?.[0]).toMatchObject({ reason: 'corruption' })
    expect(await settled(pair.remote)).toEqual(expected)
    expect(await outcome(() => collect(pair.remote.iterate({})))).toEqual(await outcome(() => collect(pair.local.iterate({}))))
  })
})

describe('child failure and close', () => {
  it('should restart the readers of a child killed by SIGKILL under reads on a new child, and answer every read', async () => {
    const root = await writtenRoot()
    const { index: reader, faults } = await index(root, { mode: 'reader', readers: { min: 2, max: 2, placement: 'process' }, supervision: { readers: { backoff: { minMs: 0, jitter: 0 } } } })
    const failures: string[] = []
    reader.subscribe((e) => e.type === 'failed' && failures.push(`${e.actor}: ${e.detail}`))
    expect(await reader.getByMsgId('t', 0, 'p0-m1')).toEqual(meta(1))
    await waitFor(() => reader.stats().shards.every((s) => s.readers.serving === 2))
    const pool = poolOf(root)
    const killed = childOf(pool)
    expect(pool.handles).toBe(2)
    const reads = Array.from({ length: 2_000 }, (_, i) => reader.getByMsgId('t', 0, `p0-m${i}`))
    // Killed from outside (as a segfault would end it) while MultiGets are on it: checked every turn.
    while (pool.pending === 0) await new Promise((resolve) => setImmediate(resolve))
    process.kill(killed, 'SIGKILL')
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 2_000 }, (_, i) => meta(i)))
    expect(failures.some((f) => f.includes(`reader child process ${killed} of ${root} was killed by SIGKILL`)), failures.join('\n')).toBe(true)
    await waitFor(() => reader.stats().shards.every((s) => s.readers.serving === 2))
    expect(reader.stats().shards[0]!.restarts.readers).toBeGreaterThanOrEqual(1)
    // The restarted readers opened in a new child, which answers from now on; the killed one is gone.
    const replacement = childOf(pool)
    expect([replacement !== killed, running(killed), running(replacement)]).toEqual([true, false, true])
    expect([pool.handles, faults.liveHandles]).toEqual([2, 2])
    const before = faults.calls.readerReads
    expect(await reader.getByMsgId('t', 0, 'p0-m2999')).toEqual(meta(2_999))
    expect(faults.calls.readerReads).toBe(before + 1)
  })

  it('should fail every call on a dead child\'s handles with a transient StorageFailure naming it, and open again on a new child', async () => {
    const dir = await scratch()
    await writeDb(dir, [['a', encode('1')]])
    const { remote, pool } = await both(dir, 'process')
    const pid = childOf(pool)
    const pending = remote.getMany([encode('a')])
    process.kill(pid, 'SIGKILL')
    const failure = { tag: 'StorageFailure', reason: 'io', path: dir, message: expect.stringContaining(`the reader child process ${pid} of ${dir} was killed by SIGKILL`) }
    for (const call of [() => pending, () => remote.getMany([encode('a')]), () => collect(remote.iterate({})), () => remote.property('x')]) {
      expect(await outcome(call)).toMatchObject(failure)
    }
    await remote.close()
    expect([pool.threads, pool.handles, pool.pids]).toEqual([0, 0, []])
    const again = await pool.open(dir, bindingOptions)
    expect(await again.getMany([encode('a')])).toEqual([Buffer.from('1')])
    expect(childOf(pool)).not.toBe(pid)
    await again.close()
  })

  it('should end every child on close, with a scan still open, and leave no child process, handle or iterator', async () => {
    const root = await writtenRoot()
    const { index: reader, faults } = await index(root, { mode: 'reader', readers: { min: 2, max: 2, placement: 'process', workerThreads: 2 } })
    const scan = reader.scanByTime('t', 0, 0, 10_000)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    const pool = poolOf(root)
    await waitFor(() => pool.handles === 2)
    // Two readers, two children: one each.
    const pids = pool.pids
    expect([pids.length, pids.every(running)]).toEqual([2, true])
    expect(await pool.census()).toEqual({ handles: 2, iterators: 1 })
    await reader.close()
    await expect(scan.next()).rejects.toMatchObject({ _tag: 'Closed' })
    expect([pool.threads, pool.handles, faults.liveHandles, readerWorkerPools.has(pool)]).toEqual([0, 0, 0, false])
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
  })

  it.each(['exits', 'is killed'] as const)('should not keep its parent alive while idle, and exit when its parent %s', async (end) => {
    const dir = await scratch()
    await writeDb(dir, [['a', encode('1')]])
    // A parent run by `node --import tsx --input-type=module -e <script>` (a child must inherit neither of the last
    // two: it would refuse the first, and run the script again, starting a child of its own): it opens a handle in a
    // child, reads, prints the child's pid, then returns without closing anything, or stays up until killed.
    const module = pathToFileURL(join(import.meta.dirname, '../src/reader-workers.ts')).href
    const script = `
      import { ReaderWorkers } from ${JSON.stringify(module)}
      const pool = new ReaderWorkers('parent', 1, 'process')
      const h = await pool.open(${JSON.stringify(dir)}, ${JSON.stringify(bindingOptions)})
      const [value] = await h.getMany([new TextEncoder().encode('a')])
      console.log(JSON.stringify({ pid: pool.pids[0], value: Buffer.from(value).toString() }))
      if (${JSON.stringify(end)} === 'is killed') setInterval(() => {}, 1_000)`
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => parent.on('exit', (c, s) => resolve([c, s])))
    await waitFor(() => out.includes('\n') || parent.exitCode !== null, 30_000)
    const { pid, value } = JSON.parse(out) as { pid: number; value: string }
    expect(value).toBe('1')
    if (end === 'is killed') parent.kill('SIGKILL')
    expect(await exit).toEqual(end === 'exits' ? [0, null] : [null, 'SIGKILL'])
    await waitFor(() => !running(pid), 30_000)
  })

  it('should refuse an unknown placement or a child count out of range as InvalidInput naming the option, creating nothing', async () => {
    const root = join(await scratch(), 'never')
    const bad: [Record<string, unknown>, string, string][] = [
      [{ placement: 'processes' }, 'readers.placement', `readers.placement: expected 'in-process', 'worker' or 'process', got "processes"`],
      [{ placement: 'process', workerThreads: 0 }, 'readers.workerThreads', 'readers.workerThreads: expected an integer in [1, 16], got 0'],
      [{ placement: 'process', workerThreads: 17 }, 'readers.workerThreads', 'readers.workerThreads: expected an integer in [1, 16], got 17'],
      [{ placement: 'process', workerThreads: 1.5 }, 'readers.workerThreads', 'readers.workerThreads: expected an integer in [1, 16], got 1.5'],
    ]
    for (const [readers, field, message] of bad) {
      const err = await openIndex({ root, readers } as unknown as IndexOptions).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(InvalidInput)
      expect([(err as InvalidInput).field, (err as InvalidInput).message]).toEqual([field, message])
    }
    expect(existsSync(root)).toBe(false)
  })
})
