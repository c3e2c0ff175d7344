/**
 * The `rockvisor` command line: `machines --format json` names every state and transition of each machine; every
 * usage error exits 2 with one line and the usage, never a stack trace; storage errors exit 1 with the typed error's
 * message; the read-only commands create nothing, on a missing root or an existing one; put and get round-trip; the
 * demo ends with its summary, and with --chaos restarts actors without failing a request.
 *
 * Most runs call the program in this process (`run(argv, io)`, the same function the binary calls); a few spawn the
 * real binary to check what a shell sees (exit code, stderr).
 */
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, openSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { AnyStateMachine, AnyStateNode } from 'xstate'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { primaryMachine, readerMachine, rootSupervisorMachine, shardSupervisorMachine } from '../actors/index.js'
import { run } from '../src/cli/program.js'
import { partitionsCovering } from '../src/cli/demo.js'
import { probeShards } from '../src/cli/inspect.js'
import { InspectorHub } from '../src/inspector/hub.js'
import type { Io } from '../src/cli/io.js'
import { openIndex, type MessageMeta } from '../src/index.js'
import { listTree, removeDir, tempDir } from './support/tmp.js'

/** Runs the program in this process with captured output; `interrupted` is the user's Ctrl-C (never, by default). */
const cli = async (argv: string[], stdin = '', interrupted: Promise<void> = new Promise<void>(() => {})): Promise<{ code: number; out: string; err: string }> => {
  let out = ''
  let err = ''
  const io: Io = {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    tty: false,
    columns: 100,
    stdin: Readable.from([stdin]),
    interrupted: () => interrupted,
  }
  const code = await run(argv, io)
  return { code, out, err }
}

const execFileP = promisify(execFile)
const bin = fileURLToPath(new URL('../src/cli.ts', import.meta.url))
/** Runs the real binary (through tsx) in a child process. */
const spawnCli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, ['--import', 'tsx', bin, ...args])
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string }
    if (typeof err.code !== 'number') throw e
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }
  }
}

const nodesOf = (node: AnyStateNode): AnyStateNode[] => [node, ...Object.values(node.states).flatMap(nodesOf)]

/** Every state id and every transition (source, event, targets) of a machine, read from its definition. */
const definitionOf = (machine: AnyStateMachine) => {
  const nodes = nodesOf(machine.root)
  const transitions = nodes.flatMap((node) =>
    [...[...node.transitions.values()].flat(), ...(node.always ?? [])].map((t) => ({
      source: `#${node.id}`,
      event: String(t.eventType),
      targets: (t.target ?? []).map((n) => `#${n.id}`),
    })),
  )
  return { ids: nodes.map((n) => n.id), transitions }
}

interface JsonState {
  id: string
  states?: Record<string, JsonState>
  transitions?: Array<{ source: string; eventType: string; target?: string[] }>
  always?: Array<{ source: string; eventType: string; target?: string[] }>
}

/** What a JSON definition names: state ids and transitions. */
const namedIn = (json: JsonState) => {
  const ids: string[] = []
  const transitions: Array<{ source: string; event: string; targets: string[] }> = []
  const walk = (s: JsonState) => {
    ids.push(s.id)
    for (const t of [...(s.transitions ?? []), ...(s.always ?? [])]) transitions.push({ source: t.source, event: t.eventType, targets: t.target ?? [] })
    for (const child of Object.values(s.states ?? {})) walk(child)
  }
  walk(json)
  return { ids, transitions }
}

const machines: Record<string, AnyStateMachine> = { root: rootSupervisorMachine, shard: shardSupervisorMachine, primary: primaryMachine, reader: readerMachine }

const expectNamesEverything = (json: unknown, machine: AnyStateMachine) => {
  const expected = definitionOf(machine)
  const named = namedIn(json as JsonState)
  expect(named.ids.sort()).toEqual([...expected.ids].sort())
  expect(expected.transitions.length).toBeGreaterThan(0)
  const left = [...named.transitions]
  for (const t of expected.transitions) {
    const at = left.findIndex((n) => n.source === t.source && n.event === t.event && JSON.stringify(n.targets) === JSON.stringify(t.targets))
    expect(at, `${t.source} --${t.event || 'always'}--> ${t.targets.join(',')}`).toBeGreaterThanOrEqual(0)
    left.splice(at, 1)
  }
  expect(left).toEqual([])
}

describe('rockvisor machines', () => {
  it.each(Object.keys(machines))('--format json --machine %s parses and names every state and transition', async (name) => {
    const { code, out, err } = await cli(['machines', '--format', 'json', '--machine', name])
    expect(err).toBe('')
    expect(code).toBe(0)
    expectNamesEverything(JSON.parse(out), machines[name]!)
  })

  it('--format json without --machine gives every machine by name', async () => {
    const { code, out } = await cli(['machines', '--format', 'json'])
    expect(code).toBe(0)
    const all = JSON.parse(out) as Record<string, unknown>
    expect(Object.keys(all)).toEqual(Object.keys(machines))
    for (const [name, machine] of Object.entries(machines)) expectNamesEverything(all[name], machine)
  })

  it('--format mermaid prints the diagrams the README shows; svg one statechart with every state', async () => {
    const { machinesMarkdown, mermaidOf } = await import('../src/machines/mermaid.js')
    expect((await cli(['machines', '--format', 'mermaid'])).out).toBe(`${machinesMarkdown()}\n`)
    expect((await cli(['machines', '--format', 'mermaid', '--machine', 'reader'])).out).toBe(`${mermaidOf(readerMachine)}\n`)
    const svg = (await cli(['machines', '--format', 'svg', '--machine', 'shard'])).out
    expect(svg.startsWith('<svg')).toBe(true)
    for (const node of nodesOf(shardSupervisorMachine.root).slice(1)) expect(svg).toContain(`data-state="${node.path.join('.')}"`)
  })
})

describe('usage errors', () => {
  const cases: string[][] = [
    [],
    ['--bogus'],
    ['frob'],
    ['demo', '--root'],
    ['demo', '--metas', '-5'],
    ['demo', '--metas', 'abc'],
    ['demo', '--metas', '1.5'],
    ['demo', '--port', '70000'],
    // A port with no --inspect: nothing would serve it.
    ['demo', '--port', '8080'],
    ['demo', '--shards', '257'],
    ['demo', 'extra'],
    ['stats', '--json', 'extra'],
    ['get', 'orders'],
    ['get', 'orders', 'seven', 'm-1'],
    ['get', 'orders', '1'],
    ['get', 'orders', '1', 'm-1', '--segment', '0', '--offset', '5'],
    ['get', 'orders', '1', '--segment', '0'],
    ['range', 'orders', '1', 'yesterday', 'now'],
    // Forms Date.parse takes that are no ISO 8601 date (`-5` would be May 2001).
    ['range', 'orders', '1', '-5', 'now'],
    ['range', 'orders', '1', '0', 'Nov 26 2026'],
    ['range', 'orders', '1', '0', '9007199254740993'],
    ['rebuild-manifest', '--root', 'r', '--shards', 'four'],
    ['scan', 'orders', '1', '0'],
    ['scan', 'orders', '1', '0', 'now', '--limit', '-1'],
    ['put', 'orders', '-1'],
    ['put', 'orders', '1', '--batch', '0'],
    ['machines', '--format', 'png'],
    ['machines', '--machine', 'nope'],
    ['machines', '--format', 'svg'],
    ['inspect', '--port', 'http'],
    ['rebuild-manifest'],
    ['help', 'frob'],
  ]
  it.each(cases.map((c) => [c.join(' ') || '(no arguments)', c] as const))('%s: exit 2, an error line and the usage, no stack trace', async (_, argv) => {
    const { code, out, err } = await cli(argv)
    expect(code, err).toBe(2)
    expect(out).toBe('')
    expect(err).toMatch(/^error: .+$/m)
    expect(err).toMatch(/usage: rockvisor|Usage: rockvisor/)
    expect(err).not.toMatch(/^\s+at /m)
    expect(err).not.toMatch(/ERR_PARSE_ARGS|Error:/)
  })

  it('help and version exit 0 on stdout', async () => {
    for (const argv of [['--help'], ['-h'], ['help'], ['help', 'demo'], ['demo', '--help'], ['--version'], ['-V']]) {
      const { code, out, err } = await cli(argv)
      expect(code, argv.join(' ')).toBe(0)
      expect(err).toBe('')
      expect(out.length).toBeGreaterThan(0)
    }
    expect((await cli(['--version'])).out.trim()).toMatch(/^\d+\.\d+\.\d+/)
    const help = (await cli(['--help'])).out
    for (const command of ['demo', 'stats', 'topics', 'get', 'range', 'scan', 'put', 'machines', 'inspect', 'rebuild-manifest']) expect(help).toMatch(new RegExp(`^  ${command} +\\S`, 'm'))
    expect((await cli(['demo', '--help'])).out).toContain('(default: 60000)')
  })

  it('the binary itself: usage errors exit 2 with no stack trace, --version exits 0', async () => {
    for (const args of [['--bogus'], ['demo', '--metas', '-5'], ['demo', '--root']]) {
      const { code, stdout, stderr } = await spawnCli(...args)
      expect(code, args.join(' ')).toBe(2)
      expect(stdout).toBe('')
      expect(stderr.trim().split('\n').length).toBeLessThanOrEqual(3)
      expect(stderr).not.toMatch(/^\s+at /m)
    }
    const version = await spawnCli('--version')
    expect(version.code).toBe(0)
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('the binary itself: output it cannot write (a full disk) exits 1 with one line, no stack trace', async (ctx) => {
    if (!existsSync('/dev/full')) return ctx.skip()
    const child = spawnSync(process.execPath, ['--import', 'tsx', bin, 'machines', '--format', 'json'], { stdio: ['ignore', openSync('/dev/full', 'w'), 'pipe'], encoding: 'utf8' })
    expect(child.status).toBe(1)
    expect(child.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^error: cannot write the output: ENOSPC$/)])
  })
})

const meta = (i: number): MessageMeta => ({ msgId: `m-${i}`, timestamp: 1_700_000_000_000 + i * 10, segmentId: 0, offset: i * 100, msgLen: 100 })

describe('commands on a root', () => {
  let parent: string
  beforeEach(async () => {
    parent = await tempDir()
  })
  afterEach(async () => removeDir(parent))

  it('read-only commands on a missing root: one line, exit 1, nothing created', async () => {
    const root = join(parent, 'missing')
    for (const argv of [
      ['stats'],
      ['stats', '--json'],
      ['topics'],
      ['get', 'orders', '1', 'm-1'],
      ['get', 'orders', '1', '--segment', '0', '--offset', '0'],
      ['range', 'orders', '1', '0', 'now'],
      ['scan', 'orders', '1', '0', 'now'],
      ['inspect', '--port', '0'],
      ['put', 'orders', '1'],
    ]) {
      const { code, out, err } = await cli([...argv, '--root', root], '{"msgId":"a","timestamp":1,"segmentId":0,"offset":0,"msgLen":1}\n')
      expect(code, argv.join(' ')).toBe(1)
      expect(out).toBe('')
      expect(err.trim().split('\n')).toEqual([expect.stringMatching(/^StorageFailure: no rockvisor root at /)])
    }
    expect(await listTree(parent)).toEqual([])
  })

  it('read-only commands on an existing root change nothing, and answer', async () => {
    const root = join(parent, 'root')
    const index = await openIndex({ root, shards: 4, readers: { min: 0 } })
    await index.batchPut('orders', 3, [0, 1, 2, 3, 4].map(meta))
    await index.batchPut('clicks', 0, [meta(0)])
    await index.close()
    const before = await listTree(root)
    const shard = index.locate('orders', 3).shard

    const stats = await cli(['stats', '--root', root, '--json'])
    expect(stats.code).toBe(0)
    expect(JSON.parse(stats.out)).toMatchObject({
      root,
      shards: 4,
      topics: [
        { topic: 'clicks', partitions: 1 },
        { topic: 'orders', partitions: 1, shards: [{ shard, partitions: [3], sequence: 1 }] },
      ],
    })
    const human = await cli(['stats', '--root', root])
    expect(human.out).toContain(`shard ${shard} of orders`)
    expect(human.out).not.toMatch(/orders\/\d/)
    expect(JSON.parse((await cli(['topics', '--root', root, '--json'])).out).topics.map((t: { topic: string; partitions: number[] }) => [t.topic, t.partitions])).toEqual([
      ['clicks', [0]],
      ['orders', [3]],
    ])
    expect(JSON.parse((await cli(['get', 'orders', '3', 'm-2', '--root', root, '--json'])).out)).toEqual(meta(2))
    expect((await cli(['get', 'orders', '3', 'm-2', '--root', root])).out).toContain('segment    0, offset 200')
    expect(JSON.parse((await cli(['get', 'orders', '3', 'nope', '--root', root, '--json'])).out)).toBeNull()
    expect(JSON.parse((await cli(['get', 'orders', '3', '--segment', '0', '--offset', '300', '--root', root, '--json'])).out)).toEqual({ msgId: 'm-3' })
    expect(JSON.parse((await cli(['range', 'orders', '3', String(meta(1).timestamp), String(meta(3).timestamp), '--root', root, '--json'])).out)).toEqual({
      first: { segmentId: 0, offset: 100 },
      last: { segmentId: 0, offset: 300 },
    })
    // The same range as ISO 8601 dates.
    const iso = (ms: number) => new Date(ms).toISOString()
    expect(JSON.parse((await cli(['range', 'orders', '3', iso(meta(1).timestamp), iso(meta(3).timestamp), '--root', root, '--json'])).out)).toEqual({
      first: { segmentId: 0, offset: 100 },
      last: { segmentId: 0, offset: 300 },
    })
    const scan = await cli(['scan', 'orders', '3', '0', 'now', '--limit', '3', '--root', root, '--json'])
    expect(scan.out.trim().split('\n').map((l) => JSON.parse(l))).toEqual([0, 1, 2].map(meta))
    const inspect = await cli(['inspect', '--root', root, '--port', '0', '--for', '300'])
    expect(inspect.code).toBe(0)
    expect(inspect.out).toMatch(/http:\/\/127\.0\.0\.1:\d+\//)
    expect(await listTree(root)).toEqual(before)
  })

  it('storage errors exit 1 with the typed message on one line', async () => {
    const root = join(parent, 'root')
    const index = await openIndex({ root, shards: 4, readers: { min: 0 } })
    await index.close()
    const bad = await cli(['get', 'orders', '1', 'm-1', '--after', 'not-a-token', '--root', root])
    expect(bad.code).toBe(1)
    expect(bad.err.trim().split('\n')).toEqual([expect.stringMatching(/^InvalidInput: /)])
    const wrongShards = await cli(['put', 'orders', '1', '--create', '--shards', '8', '--root', root], `${JSON.stringify(meta(1))}\n`)
    expect(wrongShards.code).toBe(1)
    expect(wrongShards.err).toMatch(/^InvalidInput: shards/)
  })

  it('put writes JSON lines from stdin (creating a root only with --create), get reads them back', async () => {
    const root = join(parent, 'new')
    const lines = `${[0, 1, 2].map((i) => JSON.stringify(meta(i))).join('\n')}\n\n`
    expect((await cli(['put', 'orders', '5', '--root', root], lines)).code).toBe(1)
    expect(existsSync(root)).toBe(false)
    const put = await cli(['put', 'orders', '5', '--root', root, '--create', '--shards', '2', '--batch', '2', '--json'], lines)
    expect(put.code, put.err).toBe(0)
    expect(JSON.parse(put.out)).toMatchObject({ written: 3, batches: 2, token: expect.stringMatching(/@2$/) })
    expect(JSON.parse((await cli(['get', 'orders', '5', 'm-1', '--root', root, '--json'])).out)).toEqual(meta(1))
    const notJson = await cli(['put', 'orders', '5', '--root', root], `${JSON.stringify(meta(7))}\nnot json\n`)
    expect(notJson.code).toBe(1)
    expect(notJson.err).toMatch(/^InvalidInput: stdin line 2: not JSON/)
  })

  it('put names the stdin line of a bad meta, says how to create a missing root, and creates nothing for input refused at once', async () => {
    const root = join(parent, 'new')
    const missing = await cli(['put', 'orders', '5', '--root', root], `${JSON.stringify(meta(1))}\n`)
    expect(missing.err.trim()).toMatch(/^StorageFailure: no rockvisor root at .*: put writes to an existing root; pass --create \(and --shards N\) to create one$/)
    // Refused from its first line: --create creates nothing (the root is made at the first batch to write).
    const refused = await cli(['put', 'orders', '5', '--root', root, '--create', '--shards', '2'], `${JSON.stringify({ ...meta(1), offset: -1 })}\n`)
    expect(refused.code).toBe(1)
    expect(refused.err.trim()).toMatch(/^InvalidInput: stdin line 1\.offset: must be in \[0, /)
    expect(existsSync(root)).toBe(false)
    // A bad meta on line 4 of a batch: named by its line; the line before it in the batch is not written.
    const lines = [meta(1), meta(2), '', { ...meta(3), msgLen: 'big' }].map((m) => (m === '' ? '' : JSON.stringify(m))).join('\n')
    const bad = await cli(['put', 'orders', '5', '--root', root, '--create', '--shards', '2', '--batch', '10'], `${lines}\n`)
    expect(bad.err.trim()).toMatch(/^InvalidInput: stdin line 4\.msgLen: must be a safe integer/)
    // A msgId twice in one batch: the line of its second mention, and still nothing created.
    const twice = await cli(['put', 'orders', '5', '--root', root, '--create', '--shards', '2'], `${JSON.stringify(meta(1))}\n${JSON.stringify({ ...meta(1), offset: 999 })}\n`)
    expect(twice.err.trim()).toBe('InvalidInput: stdin line 2: duplicate msgId "m-1" in one batch')
    expect(existsSync(root)).toBe(false)
    // A --shards that disagrees with an existing root is refused before stdin is read, even an empty one.
    expect((await cli(['put', 'orders', '5', '--root', root, '--create', '--shards', '2'], `${JSON.stringify(meta(1))}\n`)).code).toBe(0)
    const other = await cli(['put', 'orders', '5', '--root', root, '--shards', '8'], '')
    expect(other.code).toBe(1)
    expect(other.err).toMatch(/^InvalidInput: shards: the root .* was created with 2 shards, not 8/)
  })
})

describe('rockvisor inspect', () => {
  let parent: string
  beforeEach(async () => {
    parent = await tempDir()
  })
  afterEach(async () => removeDir(parent))

  it('probes past a directory that is no shard of the root, and through a root that went away, saying so on the page', async () => {
    const root = join(parent, 'root')
    const writer = await openIndex({ root, shards: 4, readers: { min: 0 } })
    await writer.batchPut('orders', 1, [{ msgId: 'm', timestamp: 1, segmentId: 0, offset: 0, msgLen: 1 }])
    await writer.close()
    const hub = new InspectorHub()
    const index = await openIndex({ root, mode: 'reader', inspect: hub.inspect })
    try {
      hub.attach(index)
      await probeShards(index, hub, 'probing')
      expect(index.stats().shards.map((s) => s.id)).toEqual([index.locate('orders', 1).id])
      // Appeared after the open (which refuses it): a topic directory with a shard directory numbered past the
      // root's count, to which no partition routes (finding "its" partition would never end).
      await mkdir(join(root, 'zz', 'index', '6'), { recursive: true })
      await writeFile(join(root, 'zz', 'TOPIC'), 'zz')
      await probeShards(index, hub, 'probing')
      expect(hub.activity).toBe('probing')
      expect(index.stats().shards).toHaveLength(1)
      await rm(root, { recursive: true, force: true })
      await probeShards(index, hub, 'probing')
      expect(hub.activity).toMatch(/^cannot list the root .*: ENOENT/)
    } finally {
      await index.close()
      hub.close()
    }
  })
})

describe('rockvisor demo', () => {
  let parent: string
  beforeEach(async () => {
    parent = await tempDir()
  })
  afterEach(async () => removeDir(parent))

  it('covers every shard with partitions, checks every answer and ends with a summary', async () => {
    const root = join(parent, 'demo')
    const { code, out, err } = await cli(['demo', '--root', root, '--metas', '2000', '--reads', '600', '--topics', '2'])
    expect(err).toBe('')
    expect(code).toBe(0)
    for (const s of [0, 1, 2, 3]) expect(out).toContain(`shard ${s} of orders`)
    expect(out).toMatch(/^ingest done in /m)
    expect(out).toMatch(/^read done in /m)
    expect(out).toMatch(/^Summary$/m)
    expect(out).toMatch(/^ {2}wrong answers +0$/m)
    expect(out).toMatch(/^ {2}failed requests +0$/m)
    expect(out).toContain(`rm -rf ${root}`)
    expect(JSON.parse((await cli(['stats', '--root', root, '--json'])).out)).toMatchObject({ shards: 4 })
  })

  it('with --chaos restarts readers and primaries, and no request fails untyped', async () => {
    const root = join(parent, 'chaos')
    const { code, out } = await cli(['demo', '--root', root, '--metas', '6000', '--reads', '6000', '--batch', '50', '--chaos', '--chaos-every', '20'])
    expect(code, out).toBe(0)
    const restarts = /^ {2}restarts +(\d+) of primaries, (\d+) of readers/m.exec(out)
    expect(restarts, out).not.toBeNull()
    expect(Number(restarts![1]) + Number(restarts![2])).toBeGreaterThan(0)
    expect(out).toMatch(/^ {2}wrong answers +0$/m)
    expect(out).not.toMatch(/untyped/)
  })

  it("refuses a directory it did not make that holds anything (a root, with data or not, other files), changing nothing", async () => {
    // A real root, with a meta in a partition the demo would write and cut by retention.
    const real = join(parent, 'real')
    const index = await openIndex({ root: real, shards: 4, readers: { min: 0 } })
    const mine: MessageMeta = { msgId: 'mine', timestamp: 1_000, segmentId: 7, offset: 0, msgLen: 10 }
    await index.batchPut('orders', 0, [mine])
    await index.close()
    const project = join(parent, 'project')
    await mkdir(project)
    await writeFile(join(project, 'README'), 'hi')
    // A root with no topic yet is a root all the same: its writer may write there next.
    const empty = join(parent, 'empty-root')
    await (await openIndex({ root: empty, shards: 4 })).close()
    // A directory whose rockvisor-demo entry is no demo's marker.
    const posing = join(parent, 'posing')
    await mkdir(join(posing, 'rockvisor-demo'), { recursive: true })
    await writeFile(join(posing, 'notes.txt'), 'mine')
    for (const root of [real, project, empty, posing]) {
      const before = await listTree(root)
      const { code, out, err } = await cli(['demo', '--root', root, '--metas', '200', '--reads', '10', '--topics', '1'])
      expect(code).toBe(1)
      expect(out).toBe('')
      expect(err).toMatch(new RegExp(`^error: the demo does not run in ${root}: ${root === posing ? 'its rockvisor-demo entry is not a demo\'s marker' : 'it holds .*, and no rockvisor-demo file'}`))
      expect(err.trim().split('\n')).toHaveLength(1)
      expect(await listTree(root)).toEqual(before)
    }
    const again = await openIndex({ root: real, mode: 'reader' })
    expect(await again.getByMsgId('orders', 0, 'mine')).toEqual(mine)
    await again.close()
  })

  it('runs again on its own root, after what the last run wrote, and quotes the paths it prints', async () => {
    const root = join(parent, "de mo's")
    const first = await cli(['demo', '--root', root, '--metas', '200', '--reads', '100', '--topics', '1', '--partitions', '1', '--shards', '1'])
    expect(first.code, first.out).toBe(0)
    expect(first.out).toContain(`rm -rf '${parent}/de mo'\\''s'`)
    expect(first.out).toContain(`--root '${parent}/de mo'\\''s'`)
    // The marker records where the next run's timestamps begin: after this run's last meta. (A run that began earlier
    // would find the last run's metas in its time windows, and report them as wrong answers.)
    const marker = join(root, 'rockvisor-demo')
    const { next } = JSON.parse(await readFile(marker, 'utf8')) as { next: number }
    // (Meta 100: the first ones were removed by the run's retention.)
    const start = (JSON.parse((await cli(['get', 'orders', '0', 'orders-0-100', '--root', root, '--json'])).out) as MessageMeta).timestamp - 100 * 10
    expect(next).toBe(start + 200 * 10)
    // Put an hour ahead (as after a long run): the next run starts there.
    const later = Date.now() + 3_600_000
    await writeFile(marker, JSON.stringify({ demo: 1, next: later }))
    const second = await cli(['demo', '--root', root, '--metas', '50', '--reads', '600', '--topics', '1', '--partitions', '1'])
    expect(second.code, second.out).toBe(0)
    expect(second.out).toContain('an existing root')
    expect(second.out).toMatch(/^ {2}wrong answers +0$/m)
    const got = JSON.parse((await cli(['get', 'orders', '0', 'orders-0-20', '--root', root, '--json'])).out) as MessageMeta
    expect(got.timestamp).toBe(later + 20 * 10)
    expect(JSON.parse(await readFile(marker, 'utf8'))).toEqual({ demo: 1, next: later + 50 * 10 })
  })

  it('takes again a root that holds only its marker, or only the temporary file of one (a run stopped as it began)', async () => {
    for (const [name, text] of [['rockvisor-demo', JSON.stringify({ demo: 1, next: 0 })], ['rockvisor-demo.123.abcd.tmp', '{"de']] as const) {
      const root = join(parent, `marked-${name}`)
      await mkdir(root)
      await writeFile(join(root, name), text)
      const { code, out } = await cli(['demo', '--root', root, '--metas', '100', '--reads', '10', '--topics', '1'])
      expect(code, out).toBe(0)
      expect(out).toContain('a new root')
    }
  })

  it('with --inspect on a port in use, fails with one line before creating anything', async () => {
    const busy = createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    try {
      const port = (busy.address() as AddressInfo).port
      const root = join(parent, 'never')
      const { code, out, err } = await cli(['demo', '--root', root, '--inspect', '--port', String(port), '--metas', '10'])
      expect(code).toBe(1)
      expect(out).toBe('')
      expect(err).toBe(`error: port ${port} is in use: pass --port N (0 picks a free one)\n`)
      expect(existsSync(root)).toBe(false)
    } finally {
      await new Promise((resolve) => busy.close(resolve))
    }
  })

  it('exits 130 when Ctrl-C stopped it before it finished, saying its numbers cover what ran', async () => {
    const root = join(parent, 'stopped')
    const { code, out } = await cli(['demo', '--root', root, '--metas', '20000', '--reads', '1000', '--topics', '1'], '', Promise.resolve())
    expect(code, out).toBe(130)
    expect(out).toMatch(/^ {2}stopped +interrupted: the numbers below cover what ran$/m)
    expect(out).toMatch(/^ {2}wrong answers +0$/m)
  })

  it('ends, failing, when no write succeeds (every shard locked by another writer), recovering each shard at most 3 times', async () => {
    const root = join(parent, 'locked')
    expect((await cli(['demo', '--root', root, '--metas', '100', '--reads', '10', '--topics', '1'])).code).toBe(0)
    // Another index of this process holds every shard the demo writes.
    const other = await openIndex({ root, readers: { min: 0 } })
    try {
      for (const p of partitionsCovering(4, 8)) await other.batchPut('orders', p, [{ msgId: `o${p}`, timestamp: 1, segmentId: 99, offset: p, msgLen: 1 }])
      const { code, out } = await cli(['demo', '--root', root, '--metas', '100', '--reads', '10', '--topics', '1'])
      expect(code, out).toBe(1)
      expect(out).toMatch(/^ {2}failed +no meta was written: see the failed requests$/m)
      expect(out).toMatch(/^ {2}metas written +0 /m)
      const recoveries = /(\d+) shards recovered after giving up/.exec(out)
      expect(recoveries === null || Number(recoveries[1]) <= 3 * 4, out).toBe(true)
    } finally {
      await other.close()
    }
  })

  it('keeps its own root of another shard count working: its own count is used', async () => {
    const root = join(parent, 'sixteen')
    expect((await cli(['demo', '--root', root, '--shards', '16', '--metas', '100', '--reads', '10', '--topics', '1'])).code).toBe(0)
    const { code, out } = await cli(['demo', '--root', root, '--metas', '500', '--reads', '100', '--topics', '1'])
    expect(code).toBe(0)
    expect(out).toContain('16 shards per topic')
    expect(out).toContain('shard 15 of orders')
  })
})
