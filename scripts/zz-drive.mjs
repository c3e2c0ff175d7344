import { readFileSync } from 'node:fs'
import { MutantTypes } from './stryker-types.mjs'
const types = new MutantTypes('tsconfig.stryker.json')
const [area, only] = process.argv.slice(2)
const record = JSON.parse(readFileSync(`reports/mutation/${area}.incremental.json`, 'utf8'))
for (const [file, { mutants }] of Object.entries(record.files)) {
  if (only && !file.includes(only)) continue
  globalThis.T = undefined
  const t0 = performance.now()
  for (const m of mutants.slice(0, Number(process.env.N ?? 1e9))) {
    const location = { start: { line: m.location.start.line - 1, column: m.location.start.column - 1 }, end: { line: m.location.end.line - 1, column: m.location.end.column - 1 } }
    types.errors({ fileName: file, replacement: m.replacement, location })
  }
  const T = globalThis.T
  const r = (x) => Math.round(x)
  console.log(file, mutants.length, 'total', r(performance.now() - t0), 'own', r(T.own), 'ownErr', T.ownErr, 'decl', r(T.decl), 'same', T.same, 'depN', T.depN, 'deps', r(T.deps), 'depErr', T.depErr)
  console.log(Object.entries(T.perDep).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([f, v]) => `${f.split('/work/main/')[1]} ${r(v)}`).join('\n'))
}
