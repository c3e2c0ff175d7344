/**
 * Transition coverage of the machines in actors/, counted from XState inspection microsteps across every test file
 * (see test/support/coverage.ts).
 *
 *   tsx scripts/transition-coverage.ts --reset   forget what earlier runs recorded (npm test runs this first)
 *   tsx scripts/transition-coverage.ts --check   fail (exit 1) if any transition of any machine was never taken
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { allTransitions, coverageDir } from '../test/support/coverage.js'

const mode = process.argv[2]
if (mode === '--reset') {
  rmSync(coverageDir, { recursive: true, force: true })
  process.exit(0)
}
if (mode !== '--check') {
  console.error('usage: tsx scripts/transition-coverage.ts --reset | --check')
  process.exit(2)
}
const taken = new Set<string>()
let files: string[] = []
try {
  files = readdirSync(coverageDir).filter((f) => f.endsWith('.json'))
} catch {
  // no file: nothing was recorded
}
for (const f of files) for (const key of JSON.parse(readFileSync(join(coverageDir, f), 'utf8')) as string[]) taken.add(key)
const all = allTransitions()
const missing = all.filter((t) => !taken.has(t))
console.log(`machine transitions taken: ${all.length - missing.length} of ${all.length} (from ${files.length} test files)`)
if (missing.length > 0) {
  console.error(`never taken:\n${missing.map((t) => `  ${t}`).join('\n')}`)
  process.exit(1)
}
