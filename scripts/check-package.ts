/**
 * What a user who installs the published package gets (`npm run check:package`; test/package.test.ts runs it too):
 *
 * 1. `npm pack` of a copy of this work tree (so that the tree itself is never touched): the prepack build runs and
 *    the packed package.json has no `prepare`;
 * 2. the tarball holds dist, README.md, LICENSE, BENCHMARKS.md and package.json, and no TypeScript source;
 * 3. `npm install <tarball>` in an empty directory prints no install-script warning;
 * 4. there, `npx rockvisor --help` works, and `import` and `require` of `rockvisor`, `rockvisor/actors`,
 *    `rockvisor/testing` and `rockvisor/package.json` work (require of an ES module: Node >= 20.19, no top-level
 *    await in the graph);
 * 5. with fast-check installed beside it (the kit's optional peer dependency), the README's example of
 *    `rockvisor/testing` (test/fixtures/kit-example.mjs) passes there;
 * 6. a reader-mode index with `readers.placement: 'worker'`, then one with `'process'`, reads what a writer wrote
 *    (its reader worker thread, then its reader child process, loads from the installed package; the script runs
 *    with `node -e`, whose code a child must not run again).
 *
 * Needs the npm registry for the dependencies (the npm cache is used first). Prints what it checked; exits 1 on
 * the first failure.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const exec = promisify(execFile)
const repo = fileURLToPath(new URL('..', import.meta.url))

export interface PackageCheck {
  /** The tarball's file list. */
  readonly files: readonly string[]
  /** The packed package.json. */
  readonly manifest: Record<string, unknown>
  /** What `npm install <tarball>` printed. */
  readonly installOutput: string
  /** `npx rockvisor --help`. */
  readonly help: string
  /** What `import` and `require` of the entry points gave (one line each). */
  readonly imports: string
  readonly require: string
  /** What the README's `rockvisor/testing` example printed, run with node in the consumer project. */
  readonly example: string
  /** What reads through a reader worker thread and a reader child process gave: `<msgId> <placement>`, one a line. */
  readonly placed: string
  /** The directory it ran in (removed unless `keep`). */
  readonly dir: string
}

/** What the import and require checks print: one value of each entry point (the kit's three namespaces included). */
export const entryPoints = 'function reader function function function rockvisor'

/** Runs a command; resolves with stdout and stderr (rejects on a non-zero exit). */
const sh = (cmd: string, args: string[], cwd: string) =>
  exec(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } })

/** Runs a command; resolves with what it printed, stdout then stderr. */
const run = async (cmd: string, args: string[], cwd: string): Promise<string> => {
  const { stdout, stderr } = await sh(cmd, args, cwd)
  return `${stdout}${stderr}`
}

/** Packs a copy of the work tree, installs the tarball in an empty directory and exercises it there. */
export const checkPackage = async (options: { keep?: boolean } = {}): Promise<PackageCheck> => {
  const dir = mkdtempSync(join(tmpdir(), 'rockvisor-package-'))
  const copy = join(dir, 'source')
  const consumer = join(dir, 'consumer')
  try {
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'actors', 'scripts', 'README.md', 'LICENSE', 'BENCHMARKS.md']) {
      cpSync(join(repo, entry), join(copy, entry), { recursive: true })
    }
    symlinkSync(join(repo, 'node_modules'), join(copy, 'node_modules'), 'dir')
    const packed = JSON.parse((await sh('npm', ['pack', '--json', '--pack-destination', dir], copy)).stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
    const tarball = join(dir, packed[0]!.filename)
    const files = packed[0]!.files.map((f) => f.path).sort()

    cpSync(tarball, join(consumer, 'rockvisor.tgz'))
    writeFileSync(join(consumer, 'package.json'), `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true })}\n`)
    const installOutput = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', './rockvisor.tgz'], consumer)
    // The kit's optional peer dependency, at the version this repository tests with.
    const fastCheck = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies['fast-check']!
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `fast-check@${fastCheck}`], consumer)
    const manifest = JSON.parse(readFileSync(join(consumer, 'node_modules', 'rockvisor', 'package.json'), 'utf8')) as Record<string, unknown>
    const help = await run('npx', ['--no-install', 'rockvisor', '--help'], consumer)
    const imports = await run(
      process.execPath,
      ['--input-type=module', '-e', "import * as r from 'rockvisor'; import * as a from 'rockvisor/actors'; import { arbitraries, model, commands } from 'rockvisor/testing'; import p from 'rockvisor/package.json' with { type: 'json' }; console.log([typeof r.openIndex, a.readerMachine.id, typeof arbitraries.batch.generate, typeof model.IndexModel, typeof commands.indexModelProperty, p.name].join(' '))"],
      consumer,
    )
    const require = await run(
      process.execPath,
      ['-e', "const r = require('rockvisor'); const a = require('rockvisor/actors'); const { arbitraries, model, commands } = require('rockvisor/testing'); const p = require('rockvisor/package.json'); console.log([typeof r.openIndex, a.readerMachine.id, typeof arbitraries.batch.generate, typeof model.IndexModel, typeof commands.indexModelProperty, p.name].join(' '))"],
      consumer,
    )
    cpSync(join(repo, 'test', 'fixtures', 'kit-example.mjs'), join(consumer, 'index.property.test.mjs'))
    const example = await run(process.execPath, ['index.property.test.mjs'], consumer)
    const placed = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        [
          "import { openIndex } from 'rockvisor'; import { mkdtempSync, rmSync } from 'node:fs'; import { join } from 'node:path'; import { tmpdir } from 'node:os'",
          "const root = mkdtempSync(join(tmpdir(), 'rockvisor-worker-'))",
          "const writer = await openIndex({ root, readers: { min: 0 } }); await writer.batchPut('t', 0, [{ msgId: 'm1', timestamp: 1, segmentId: 0, offset: 0, msgLen: 1 }]); await writer.close()",
          "for (const placement of ['worker', 'process']) {",
          "  const reader = await openIndex({ root, mode: 'reader', readers: { placement } }); const m = await reader.getByMsgId('t', 0, 'm1'); await reader.close()",
          '  console.log(m?.msgId, placement)',
          '}',
          'rmSync(root, { recursive: true })',
        ].join('\n'),
      ],
      consumer,
    )
    return { files, manifest, installOutput, help, imports, require, example, placed, dir }
  } finally {
    if (!options.keep) rmSync(dir, { recursive: true, force: true })
  }
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]
if (isEntryPoint) {
  const started = Date.now()
  const result = await checkPackage({ keep: process.argv.includes('--keep') })
  const failures: string[] = []
  const check = (ok: boolean, what: string) => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
    if (!ok) failures.push(what)
  }
  check(result.files.some((f) => f.startsWith('dist/src/')) && result.files.some((f) => f.startsWith('dist/actors/')), 'the tarball ships dist/src and dist/actors')
  check(['README.md', 'LICENSE', 'BENCHMARKS.md', 'package.json'].every((f) => result.files.includes(f)), 'the tarball ships README.md, LICENSE, BENCHMARKS.md, package.json')
  check(!result.files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'the tarball ships no TypeScript source')
  check(!('prepare' in ((result.manifest.scripts as Record<string, string> | undefined) ?? {})), 'the packed package.json has no prepare script')
  check(!/install.script/i.test(result.installOutput), `npm install of the tarball warns of no install script${/install.script/i.test(result.installOutput) ? `:\n${result.installOutput}` : ''}`)
  check(result.help.includes('Usage: rockvisor'), 'npx rockvisor --help')
  check(result.imports.trim() === entryPoints, `import: ${result.imports.trim()}`)
  check(result.require.trim() === entryPoints, `require: ${result.require.trim()}`)
  check(result.example.includes('rockvisor/testing example: ok'), "the README's rockvisor/testing example passes in the consumer project")
  check(result.placed.trim() === 'm1 worker\nm1 process', `reads through a reader worker thread and a reader child process: ${result.placed.trim()}`)
  console.log(`${failures.length === 0 ? 'package ok' : `${failures.length} failed`} in ${((Date.now() - started) / 1000).toFixed(1)} s${process.argv.includes('--keep') ? ` (kept ${result.dir})` : ''}`)
  process.exitCode = failures.length === 0 ? 0 : 1
}
