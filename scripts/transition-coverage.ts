/**
 * Transition coverage of the machines in actors/, counted from XState inspection microsteps of the example tests
 * under test/ (see test/support/coverage.ts: the property tests, on random seeds, do not count).
 *
 *   tsx scripts/transition-coverage.ts --reset   forget what earlier runs recorded (npm test runs this first)
 *   tsx scripts/transition-coverage.ts --check   fail (exit 1) if any transition of any machine was never taken
 *   tsx scripts/transition-coverage.ts --list    print every transition with the tests that took it
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { allTransitions, coverageDir, type CoverageFile } from '../test/support/coverage.js'

const mode = process.argv[2]
if (mode === '--reset') {
  rmSync(coverageDir, { recursive: true, force: true })
  process.exit(0)
}
if (mode !== '--check' && mode !== '--list') {
  console.error('usage: tsx scripts/transition-coverage.ts --reset | --check | --list')
  process.exit(2)
}
/** Transition -> the tests ("file > test name") that took it. */
const takenBy = new Map<string, string[]>()
let files: string[] = []
try {
  files = readdirSync(coverageDir).filter((f) => f.endsWith('.json'))
} catch {
  // no file: nothing was recorded
}
for (const f of files) {
  const recorded = JSON.parse(readFileSync(join(coverageDir, f), 'utf8')) as CoverageFile
  for (const [test, keys] of Object.entries(recorded.tests)) {
    for (const key of keys) takenBy.set(key, [...(takenBy.get(key) ?? []), `${recorded.file} > ${test}`])
  }
}
const all = allTransitions()
if (mode === '--list') {
  for (const t of all) console.log(`${t}\n${(takenBy.get(t) ?? ['  (never taken)']).map((x) => `    ${x}`).join('\n')}`)
  process.exit(0)
}
const missing = all.filter((t) => !takenBy.has(t))
console.log(`machine transitions taken: ${all.length - missing.length} of ${all.length} (from ${files.length} test files)`)
if (missing.length > 0) {
  console.error(`never taken:\n${missing.map((t) => `  ${t}`).join('\n')}`)
  process.exit(1)
}
