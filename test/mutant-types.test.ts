// The type checker of mutation runs (scripts/stryker-types.mjs): which mutants are compile errors, left out of the
// score. It checks the mutated file, then the files that import it only when the mutant changed what the file
// exports; these tests take a mutant of each kind from the work tree's own sources.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
// @ts-expect-error a plain ES module of the mutation tooling, without type declarations
import { MutantTypes, describe as describeErrors } from '../scripts/stryker-types.mjs'

interface Diagnostic {
  file?: { fileName: string }
}
interface Checker {
  errors(mutant: object): readonly Diagnostic[]
}

/** A mutant as Stryker gives it (0-based lines and columns): `snippet`'s first occurrence in `file` replaced. */
const mutant = (file: string, snippet: string, replacement: string) => {
  const text = readFileSync(file, 'utf8')
  const at = text.indexOf(snippet)
  if (at < 0) throw new Error(`${snippet} is not in ${file}`)
  const position = (offset: number) => {
    const before = text.slice(0, offset).split('\n')
    return { line: before.length - 1, column: before.at(-1)!.length }
  }
  return { fileName: file, replacement, location: { start: position(at), end: position(at + snippet.length) } }
}

describe('the mutant type checker of mutation runs', { timeout: 60_000 }, () => {
  const types: Checker = new MutantTypes('tsconfig.stryker.json')
  const identityValue = "(id: string, shards: number): Buffer => Buffer.from(`${id} of ${shards}`, 'utf8')"
  const files = (errors: readonly Diagnostic[]) => [...new Set(errors.map((e) => e.file?.fileName.replace(`${process.cwd()}/`, '')))]

  it('should pass a mutant that type-checks, and the unmutated file after it', () => {
    expect(types.errors(mutant('src/keys.ts', 'epoch % epochSlots', 'epoch * epochSlots'))).toEqual([])
  })

  it('should find the error a mutant makes in its own file', () => {
    const errors = types.errors(mutant('src/keys.ts', 'Buffer.from(`${id} of ${shards}`', 'Buffer.from(shards'))
    expect(files(errors)).toEqual(['src/keys.ts'])
    expect(describeErrors(errors)).toMatch(/^src\/keys\.ts\(\d+,\d+\): error TS\d+: /)
  })

  it('should find the errors a mutant makes only in the files that import it, through what it exports', () => {
    // epochKey's declared type stays, its body goes: keys.ts is fine, and nothing else sees a change.
    expect(types.errors(mutant('src/keys.ts', 'epochKeys[epoch % epochSlots]!', 'epochKeys[0]!'))).toEqual([])
    // An exported function that now takes no argument: every caller elsewhere breaks, keys.ts does not.
    const errors = types.errors(mutant('src/keys.ts', identityValue, '() => undefined'))
    expect(errors.length).toBeGreaterThan(0)
    expect(files(errors)).not.toContain('src/keys.ts')
    expect(files(errors).every((f) => f?.startsWith('src/'))).toBe(true)
  })

  it('should leave a file outside its project alone', () => {
    expect(types.errors(mutant('bench/run.ts', 'import', 'impart'))).toEqual([])
  })

  it('should check each mutant against the unmutated sources, not the previous mutant', () => {
    // The first breaks src/runtime.ts's call of identityValue; a mutant of src/runtime.ts checked after it sees the
    // unmutated keys.ts again.
    expect(files(types.errors(mutant('src/keys.ts', identityValue, "(): Buffer => Buffer.from('', 'utf8')")))).toContain('src/runtime.ts')
    expect(types.errors(mutant('src/runtime.ts', 'identityValue(address.id, this.shardCount)', 'identityValue(address.id, 1)'))).toEqual([])
  })
})
