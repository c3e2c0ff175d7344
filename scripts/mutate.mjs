// `npm run mutate [-- [area ...] [stryker options]]`: mutation testing, one Stryker run per area
// (scripts/mutation-areas.mjs), one after another, then the score of every mutated file and the wall time of each run.
//
//   npm run mutate                         every area, incremental (only what changed since each area's record)
//   npm run mutate -- shard runtime        two areas
//   npm run mutate -- keys --force         retest every mutant of an area
//   npm run mutate -- shard --mutate 'src/shard.ts:549-640'   a range (Stryker's own option; its record is not reused)
//
// Arguments that name an area select it; everything else goes to `stryker run` unchanged. Exits 1 when a run fails.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { areas } from './mutation-areas.mjs'

/**
 * Takes the static mutants that survived out of an area's incremental record, so that this run tests them again.
 * Stryker reuses a mutant's recorded result while its code and its covering tests are unchanged; a static mutant
 * (code run when a module loads) has no covering tests recorded, so a survivor's result was reused however many tests
 * were written since to kill it (`store.ts:33`, the fatal UTF-8 decoder, was reported surviving on 2026-11-27 though
 * `store.kills` kills it). Static survivors are few; each reruns the area's suites.
 */
const retestStaticSurvivors = (name) => {
  const file = `reports/mutation/${name}.incremental.json`
  if (!existsSync(file)) return
  const record = JSON.parse(readFileSync(file, 'utf8'))
  let dropped = 0
  for (const result of Object.values(record.files ?? {})) {
    const kept = result.mutants.filter((m) => !(m.static && (m.status === 'Survived' || m.status === 'NoCoverage')))
    dropped += result.mutants.length - kept.length
    result.mutants = kept
  }
  if (dropped === 0) return
  writeFileSync(file, JSON.stringify(record))
  console.log(`${file}: ${dropped} static mutant(s) that survived are tested again`)
}

const args = process.argv.slice(2)
const chosen = args.filter((a) => a in areas)
const strykerArgs = args.filter((a) => !(a in areas))
const names = chosen.length > 0 ? chosen : Object.keys(areas)

/** Stryker's score: detected (killed, timed out) over valid mutants (compile errors and ignored ones left out). */
const score = (mutants) => {
  const count = (status) => mutants.filter((m) => m.status === status).length
  const detected = count('Killed') + count('Timeout')
  const valid = detected + count('Survived') + count('NoCoverage') + count('RuntimeError')
  return { detected, survived: count('Survived'), noCoverage: count('NoCoverage'), valid, compileErrors: count('CompileError') }
}

const rows = []
let failed = false
for (const name of names) {
  const started = Date.now()
  console.log(`\n=== mutation area ${name}: ${areas[name].mutate.join(', ')}\n`)
  if (!strykerArgs.includes('--force')) retestStaticSurvivors(name)
  const run = spawnSync('npx', ['stryker', 'run', ...strykerArgs], {
    stdio: 'inherit',
    env: { ...process.env, ROCKVISOR_MUTATE_AREA: name },
  })
  const minutes = (Date.now() - started) / 60_000
  if (run.status !== 0) {
    failed = true
    rows.push({ name, file: '(the run failed)', minutes })
    continue
  }
  const report = `reports/mutation/${name}.json`
  if (!existsSync(report)) {
    rows.push({ name, file: `(no report at ${report})`, minutes })
    continue
  }
  const files = JSON.parse(readFileSync(report, 'utf8')).files
  for (const [file, { mutants }] of Object.entries(files)) rows.push({ name, file, minutes, ...score(mutants) })
}

console.log('\narea      file                           score    detected/valid  survived  no coverage  compile errors  run')
for (const r of rows) {
  const pct = r.valid > 0 ? `${((100 * r.detected) / r.valid).toFixed(2)}%` : '-'
  const counts = r.valid === undefined ? '' : `${r.detected}/${r.valid}`
  console.log(
    `${r.name.padEnd(9)} ${r.file.padEnd(30)} ${pct.padStart(7)}  ${counts.padStart(14)}  ${String(r.survived ?? '').padStart(8)}` +
      `  ${String(r.noCoverage ?? '').padStart(11)}  ${String(r.compileErrors ?? '').padStart(14)}  ${r.minutes.toFixed(1)} min`,
  )
}
process.exit(failed ? 1 : 0)
