/**
 * The published package, as a user installs it (scripts/check-package.ts): `npm pack` of a copy of the work tree,
 * then `npm install <tarball>` in an empty directory, with no install-script warning; there `npx rockvisor --help`,
 * and `import` and `require` of `rockvisor`, `rockvisor/actors`, `rockvisor/testing` and `rockvisor/package.json`;
 * and, with fast-check installed beside it, the README's `rockvisor/testing` example (test/fixtures/kit-example.mjs,
 * the same text as in the README) passes there. Needs the npm registry (or the npm cache) for the dependencies; about
 * 40 s.
 */
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { checkPackage, entryPoints } from '../scripts/check-package.js'

describe('the npm package', () => {
  it('packs dist, README, LICENSE and BENCHMARKS.md, installs without an install script, and runs (the kit example too)', { timeout: 240_000 }, async () => {
    const result = await checkPackage()
    expect(result.files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'BENCHMARKS.md', 'package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli.js', 'dist/actors/index.js', 'dist/actors/index.d.ts', 'dist/src/testing/index.js', 'dist/src/testing/index.d.ts', 'dist/src/inspector/static/index.html', 'dist/src/inspector/static/inspector.js', 'dist/src/reader-worker.mjs']))
    expect(result.files.filter((f) => !f.startsWith('dist/'))).toEqual(['BENCHMARKS.md', 'LICENSE', 'README.md', 'package.json'])
    expect(result.files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([])
    expect(result.manifest).not.toHaveProperty('private')
    expect(result.manifest.scripts).not.toHaveProperty('prepare')
    expect(result.installOutput).not.toMatch(/install.script/i)
    expect(result.help).toMatch(/^Usage: rockvisor \[options\] \[command\]/m)
    expect(result.imports.trim()).toBe(entryPoints)
    expect(result.require.trim()).toBe(entryPoints)
    expect(result.manifest.peerDependenciesMeta).toEqual({ 'fast-check': { optional: true } })
    expect(result.example).toContain('rockvisor/testing example: ok')
    // Reader mode reads through readers only: the reads came from the packaged reader worker thread, then child process.
    expect(result.placed.trim()).toBe('m1 worker\nm1 process')
  })

  it("shows the kit's example in the README exactly as the package test runs it", () => {
    const example = readFileSync(new URL('fixtures/kit-example.mjs', import.meta.url), 'utf8')
    expect(readFileSync(new URL('../README.md', import.meta.url), 'utf8')).toContain(`\`\`\`js\n${example}\`\`\``)
  })
})
