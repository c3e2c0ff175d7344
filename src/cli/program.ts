/**
 * The `rockvisor` command line (commander): subcommands with generated help, typed options, and one rule for
 * failures: a usage error prints one line and the command's usage and exits 2; a rockvisor error prints
 * `<tag>: <message>` and exits 1; anything else prints `error: <message>` and exits 1. Never a stack trace
 * (ROCKVISOR_DEBUG=1 adds it for unexpected errors).
 */
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { isRockvisorError, rebuildManifest } from '../index.js'
import { findMachine, machineCatalog, machineNames } from '../machines/catalog.js'
import { machineJson } from '../machines/json.js'
import { machinesMarkdown, mermaidOf } from '../machines/mermaid.js'
import { statechartSvg } from '../machines/svg.js'
import { getCommand, putCommand, rangeCommand, scanCommand, statsCommand, topicsCommand } from './commands.js'
import { demoCommand } from './demo.js'
import { inspectCommand } from './inspect.js'
import { UsageError, type Io } from './io.js'
import { packageInfo } from './package-info.js'

/** An integer parser for options and arguments: `what` in [min, max]. */
const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (text: string): number => {
    const expected = `expected an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? '2^53 - 1' : max}].`
    if (!/^-?[0-9]+$/.test(text.trim())) throw new InvalidArgumentError(expected)
    const n = Number(text)
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(expected)
    return n
  }

/** An ISO 8601 date, with or without a time of day (to the second, or a fraction), and its offset or `Z`. */
const isoDate = /^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?$/

/**
 * A time: milliseconds since the epoch, an ISO 8601 date (`2025-11-26T07:30:00Z`), or `now`. Nothing else: the
 * looser forms `Date.parse` also takes (`-5` is May 2001 to it) would read a typo as some date.
 */
const timeArg = (text: string): number => {
  if (text === 'now') return Date.now()
  if (/^[0-9]+$/.test(text)) return integer(0)(text)
  const ms = isoDate.test(text) ? Date.parse(text) : Number.NaN
  if (Number.isNaN(ms) || ms < 0) throw new InvalidArgumentError('expected milliseconds since 1970, an ISO 8601 date or "now".')
  return ms
}

const defaultRoot = './data'
const rootOption = () => new Option('--root <dir>', 'storage root directory').default(defaultRoot)
const jsonOption = () => new Option('--json', 'print JSON (for scripts) instead of text')
const readOptions = (cmd: Command) =>
  cmd
    .addOption(rootOption())
    .addOption(jsonOption())
    .addOption(new Option('--after <token>', 'reflect at least this write (a token printed by put or returned by batchPut)'))
    .addOption(new Option('--max-staleness <ms>', 'accept a view taken at most this long ago').argParser(integer(0, 3_600_000)))

/** The program; `io` receives all output, `setCode` the exit code of the command that ran. */
export const buildProgram = (io: Io, setCode: (code: number) => void): Command => {
  const info = packageInfo()
  const program = new Command('rockvisor')
    .description(`${info.description}.\nEvery command that takes --root defaults to ${defaultRoot}; read-only commands never create a root or anything in it.`)
    .version(info.version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print help for the command')
    .helpCommand('help [command]', 'print help for a command')
    .showSuggestionAfterError(true)
    .configureHelp({ subcommandTerm: (cmd) => cmd.name(), showGlobalOptions: false })
    .exitOverride()
  const done = (p: Promise<number>) => p.then(setCode)

  program
    .command('demo')
    .summary('write and query a demo stream with a live display (npm start)')
    .description('write a synthetic stream into several topics while concurrent readers check every answer; a progress bar, a live table of the shards and a summary (what `npm start` runs)')
    .addOption(new Option('--root <dir>', 'storage root of the demo (its own, so that its shard count never clashes with another root)').default('./data/demo'))
    .addOption(new Option('--shards <n>', 'shards per topic for a new root, at most 256 (an existing root keeps its own)').argParser(integer(1, 256)))
    .addOption(new Option('--topics <n>', 'topics to write').default(3).argParser(integer(1, 8)))
    .addOption(new Option('--partitions <n>', 'partitions per topic (more are added until every shard holds some)').default(8).argParser(integer(1, 4096)))
    .addOption(new Option('--metas <n>', 'metas to write in all (at least one per partition)').default(60_000).argParser(integer(1, 100_000_000)))
    .addOption(new Option('--batch <n>', 'metas per batchPut').default(250).argParser(integer(1, 100_000)))
    .addOption(new Option('--readers <n>', 'concurrent readers').default(8).argParser(integer(1, 1024)))
    .addOption(new Option('--reads <n>', 'reads in the read phase').default(30_000).argParser(integer(0, 100_000_000)))
    .addOption(new Option('--chaos', 'crash readers and primaries at random meanwhile (index.faults.crash)'))
    .addOption(new Option('--chaos-every <ms>', 'time between two chaos crashes').default(500).argParser(integer(10, 3_600_000)))
    .addOption(new Option('--inspect', 'serve the inspector page (actor tree and statecharts, live) while the demo runs'))
    .addOption(new Option('--port <n>', 'inspector port on 127.0.0.1 (0: any free port)').default(7766).argParser(integer(0, 65_535)))
    .addOption(new Option('--plain', 'plain progress lines even in a terminal'))
    .action((o, cmd: Command) => {
      // A port with nothing to serve on it is a mistake the user would not see: say so rather than ignore it.
      if (cmd.getOptionValueSource('port') === 'cli' && o.inspect !== true) throw new UsageError('--port is the inspector page\'s: add --inspect')
      return done(
        demoCommand(
          {
            root: o.root,
            shards: o.shards,
            topics: o.topics,
            partitions: o.partitions,
            metas: o.metas,
            batch: o.batch,
            readers: o.readers,
            reads: o.reads,
            chaos: o.chaos === true,
            chaosEvery: o.chaosEvery,
            inspect: o.inspect === true,
            port: o.port,
            plain: o.plain === true,
          },
          io,
        ),
      )
    })

  program
    .command('stats')
    .summary("an existing root's shards: partitions, writes, size")
    .description("an existing root's shard count, topics, and per shard its partitions, writes so far and size (reader mode)")
    .addOption(rootOption())
    .addOption(jsonOption())
    .action((o) => done(statsCommand({ root: o.root, json: o.json === true }, io)))

  program
    .command('topics')
    .summary('the topics of an existing root and their partitions')
    .description('the topics of an existing root and their partitions (reader mode)')
    .addOption(rootOption())
    .addOption(jsonOption())
    .action((o) => done(topicsCommand({ root: o.root, json: o.json === true }, io)))

  const partitionArg = () => new Argument('<partition>', 'partition number').argParser(integer(0, 0xffff_ffff))
  readOptions(
    program
      .command('get')
      .summary('one meta by msg id, or the msg id at a segment offset')
      .description('one meta by msg id, or the msg id at a segment offset (reader mode)')
      .argument('<topic>', 'topic name')
      .addArgument(partitionArg())
      .argument('[msgId]', 'the message id to look up')
      .addOption(new Option('--segment <n>', 'segment id (with --offset, instead of msgId)').argParser(integer(0, 0xffff_ffff)))
      .addOption(new Option('--offset <n>', 'offset in the segment (with --segment)').argParser(integer(0))),
  )
    .addHelpText('after', '\nExamples:\n  rockvisor get orders 3 orders-3-42 --root ./data/demo\n  rockvisor get orders 3 --segment 0 --offset 5376 --root ./data/demo')
    .action((topic: string, partition: number, msgId: string | undefined, o) => {
      const bySo = o.segment !== undefined || o.offset !== undefined
      if (msgId !== undefined && bySo) throw new UsageError('give a msgId or --segment and --offset, not both')
      if (msgId === undefined && (o.segment === undefined || o.offset === undefined)) throw new UsageError('give a msgId, or both --segment and --offset')
      return done(getCommand(topic, partition, msgId, { root: o.root, json: o.json === true, after: o.after, maxStaleness: o.maxStaleness, segment: o.segment, offset: o.offset }, io))
    })

  const timeArgs = (cmd: Command) =>
    cmd
      .addArgument(new Argument('<from>', 'first timestamp: ms since 1970, an ISO 8601 date, or now').argParser(timeArg))
      .addArgument(new Argument('<to>', 'last timestamp (inclusive), same forms').argParser(timeArg))

  readOptions(timeArgs(program.command('range').summary('first and last segment offset in a time range').description('the segment offsets of the first and last meta with a timestamp in [from, to] (reader mode)').argument('<topic>', 'topic name').addArgument(partitionArg()))).action(
    (topic: string, partition: number, from: number, to: number, o) => done(rangeCommand(topic, partition, from, to, { root: o.root, json: o.json === true, after: o.after, maxStaleness: o.maxStaleness }, io)),
  )

  readOptions(timeArgs(program.command('scan').summary('the metas in a time range, in time order').description('the metas with a timestamp in [from, to], in time order, one a line (reader mode)').argument('<topic>', 'topic name').addArgument(partitionArg())))
    .addOption(new Option('--limit <n>', 'at most this many metas').argParser(integer(0)))
    .action((topic: string, partition: number, from: number, to: number, o) =>
      done(scanCommand(topic, partition, from, to, { root: o.root, json: o.json === true, after: o.after, maxStaleness: o.maxStaleness, limit: o.limit }, io)),
    )

  program
    .command('put')
    .summary('write metas read from stdin as JSON lines')
    .description('write metas read from stdin, one JSON object a line: {"msgId":"m-1","timestamp":1700000000000,"segmentId":0,"offset":0,"msgLen":120}')
    .argument('<topic>', 'topic name')
    .addArgument(partitionArg())
    .addOption(rootOption())
    .addOption(jsonOption())
    .addOption(new Option('--batch <n>', 'metas per atomic batch').default(1000).argParser(integer(1, 100_000)))
    .addOption(new Option('--create', 'create the root if it does not exist (otherwise a missing root is an error)'))
    .addOption(new Option('--shards <n>', 'shards per topic of a root created by --create').argParser(integer(1, 65_536)))
    .action((topic: string, partition: number, o) =>
      done(putCommand(topic, partition, { root: o.root, json: o.json === true, create: o.create === true, shards: o.shards, batch: o.batch }, io)),
    )

  program
    .command('machines')
    .summary('the state machines as JSON, Mermaid or SVG')
    .description('the state machines of the actor tree, generated from their definitions: JSON for a statechart visualizer, Mermaid for GitHub, or SVG')
    .addOption(new Option('--format <format>', 'json: machine.toJSON() plus its eventless transitions; mermaid: stateDiagram-v2 (Markdown blocks for all machines); svg: one statechart').choices(['json', 'mermaid', 'svg']).default('mermaid'))
    .addOption(new Option('--machine <name>', `one machine (${machineCatalog.map((m) => `${m.name}: ${m.title.toLowerCase()}`).join(', ')})`).choices(machineNames))
    .action((o: { format: 'json' | 'mermaid' | 'svg'; machine?: string }) => {
      const entry = o.machine === undefined ? undefined : findMachine(o.machine)!
      if (o.format === 'json') {
        const value = entry === undefined ? Object.fromEntries(machineCatalog.map((m) => [m.name, machineJson(m.machine)])) : machineJson(entry.machine)
        io.out(`${JSON.stringify(value, null, 2)}\n`)
      } else if (o.format === 'mermaid') {
        io.out(`${entry === undefined ? machinesMarkdown() : mermaidOf(entry.machine)}\n`)
      } else {
        if (entry === undefined) throw new UsageError('--format svg draws one machine: add --machine NAME')
        io.out(`${statechartSvg(entry.machine)}\n`)
      }
      setCode(0)
    })

  program
    .command('inspect')
    .summary('a live web page of the actor tree and statecharts')
    .description('a local web page with the live actor tree and statecharts of an existing root, opened in reader mode (binds to 127.0.0.1)')
    .addOption(rootOption())
    .addOption(new Option('--port <n>', 'port on 127.0.0.1 (0: any free port)').default(7766).argParser(integer(0, 65_535)))
    .addOption(new Option('--for <ms>', 'stop after this long (default: at Ctrl-C)').argParser(integer(1)).hideHelp())
    .action((o) => done(inspectCommand({ root: o.root, port: o.port, ...(o.for === undefined ? {} : { for: o.for }) }, io)))

  program
    .command('rebuild-manifest')
    .summary('rewrite a lost or damaged rockvisor.json')
    .description("rewrite a lost, garbled or edited rockvisor.json from the root's shard directories and print what was found (stop every process using the root first)")
    .requiredOption('--root <dir>', 'storage root directory')
    .addOption(new Option('--shards <n>', "the shard count the root was created with (default: the topics' record, else inferred from the shard directories)").argParser(integer(1, 65_536)))
    .option('--force', 'replace a valid manifest')
    .action(async (o: { root: string; shards?: number; force?: boolean }) => {
      const result = await rebuildManifest(o.root, { ...(o.shards === undefined ? {} : { shards: o.shards }), force: o.force === true })
      const topics = result.found.map((t) => ({
        dir: t.dir,
        ...(t.topic === undefined ? {} : { topic: t.topic }),
        shardDirectories: t.shards.map((s) => s.shard),
        partitions: t.shards.reduce((n, s) => n + s.partitions.length, 0),
      }))
      io.out(`${JSON.stringify({ root: o.root, shards: result.shards, previous: result.previous, topics }, null, 2)}\n`)
      setCode(0)
    })

  program.addHelpText(
    'after',
    `
Exit codes: 0 done; 1 a storage error (printed as <error tag>: <message>); 2 a usage error; 130 a demo Ctrl-C stopped before it finished.

Examples:
  rockvisor demo                          write and query a demo root under ./data/demo
  rockvisor demo --chaos --inspect        the same, crashing actors at random, with the inspector page
  rockvisor stats --root ./data/demo      what the demo root holds
  rockvisor machines --format json --machine reader > reader.json`,
  )

  // Every command reports its own usage errors the same way: one line, then its usage.
  const configure = (cmd: Command, path: string) => {
    cmd.configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (message) => io.err(`${message.trim()}\n${usageOf(cmd, path)}`),
    })
    for (const sub of cmd.commands) configure(sub, `${path} ${sub.name()}`)
  }
  configure(program, 'rockvisor')
  return program
}

/** `usage: rockvisor demo [options]` and where the help is. */
const usageOf = (cmd: Command, path: string): string => `usage: ${path} ${cmd.usage()}\n(see ${path} --help)\n`

/** Finds the command a usage error belongs to, from the arguments (the deepest subcommand named). */
const commandOf = (program: Command, argv: readonly string[]): { cmd: Command; path: string } => {
  let cmd = program
  let path = 'rockvisor'
  for (const arg of argv) {
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg))
    if (sub === undefined) continue
    cmd = sub
    path = `${path} ${sub.name()}`
  }
  return { cmd, path }
}

/** Runs the command line; resolves with the exit code (never rejects). */
export const run = async (argv: readonly string[], io: Io): Promise<number> => {
  let code = 0
  const program = buildProgram(io, (c) => (code = c))
  try {
    if (argv.length === 0) {
      io.err(`${program.helpInformation()}\nerror: no command given\n`)
      return 2
    }
    await program.parseAsync([...argv], { from: 'user' })
    return code
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0
      // Help printed as an error (`help NAME` for a command that does not exist): say what was wrong, after it.
      if (e.code === 'commander.help') {
        const at = argv.indexOf('help')
        io.err(`error: ${at >= 0 && argv[at + 1] !== undefined ? `unknown command ${JSON.stringify(argv[at + 1])}` : 'a command is required'}\n`)
      }
      return 2 // the message and usage are printed already
    }
    if (e instanceof UsageError) {
      const { cmd, path } = commandOf(program, argv)
      io.err(`error: ${e.message}\n${usageOf(cmd, path)}`)
      return 2
    }
    if (isRockvisorError(e)) {
      io.err(`${e._tag}: ${e.message}\n`)
      return 1
    }
    const message = e instanceof Error ? e.message : String(e)
    io.err(`error: ${message.split('\n')[0]}\n`)
    if (process.env.ROCKVISOR_DEBUG === '1' && e instanceof Error && e.stack) io.err(`${e.stack}\n`)
    return 1
  }
}
