// Compares the verdicts of the mutant-types checker (scripts/stryker-types.mjs) with those of the committed
// incremental records (reports/mutation/<area>.incremental.json): every mutant recorded as a compile error must be
// one here, and no other. Files whose recorded source differs from the work tree are skipped (their mutants' places
// moved). `node scripts/check-mutant-types.mjs [area ...]`
//
// Run on 2026-11-27 against records made with @stryker-mutator/typescript-checker, it checked this checker against
// that one (1,297 mutants, all agreeing; TESTING.md). The shard, runtime, machines and store records were remade
// with this checker that day: for them it now checks only that its verdicts did not change.
import { existsSync, readFileSync } from 'node:fs'
import { areas } from './mutation-areas.mjs'
import { MutantTypes } from './stryker-types.mjs'

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(areas)
const types = new MutantTypes('tsconfig.stryker.json')
let disagreements = 0
for (const name of names) {
  const path = `reports/mutation/${name}.incremental.json`
  if (!existsSync(path)) continue
  const record = JSON.parse(readFileSync(path, 'utf8'))
  for (const [file, { source, mutants }] of Object.entries(record.files)) {
    if (!existsSync(file) || readFileSync(file, 'utf8') !== source) {
      console.log(`${name} ${file}: skipped (the record's source is not the work tree's)`)
      continue
    }
    const started = performance.now()
    let compileErrors = 0
    for (const m of mutants) {
      const location = {
        start: { line: m.location.start.line - 1, column: m.location.start.column - 1 },
        end: { line: m.location.end.line - 1, column: m.location.end.column - 1 },
      }
      const errors = types.errors({ fileName: file, replacement: m.replacement, location })
      const recorded = m.status === 'CompileError'
      if (errors.length > 0) compileErrors++
      if (recorded !== errors.length > 0) {
        disagreements++
        console.log(`  DISAGREE ${file}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} -> ${JSON.stringify(m.replacement).slice(0, 60)}: recorded ${m.status}, here ${errors.length > 0 ? 'compile error' : 'passes'}`)
      }
    }
    const ms = performance.now() - started
    console.log(`${name} ${file}: ${mutants.length} mutants, ${compileErrors} compile errors, ${(ms / mutants.length).toFixed(0)} ms per mutant`)
  }
}
console.log(disagreements === 0 ? 'mutant-types agrees with every record' : `${disagreements} disagreement(s)`)
process.exitCode = disagreements === 0 ? 0 : 1
