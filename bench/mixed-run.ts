import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { mixed } from './mixed.js'
const root = await mkdtemp(join(os.tmpdir(), 'rv-mixed-'))
let n = 0
const tempDir = async () => join(root, `r${n++}`)
const dur = Number(process.env.DUR ?? 4000)
for (const c of [
  { label: 'writer alone', readers: 0 },
  { label: 'fresh, recent memory', readers: 1000 },
  { label: 'fresh, no memory', readers: 1000, options: { freshness: { recentWritesBytes: 0 } } },
  { label: 'primary only', readers: 1000, consistency: 'primary' as const },
]) {
  const r = await mixed(tempDir, c, dur, 20_000)
  console.log(JSON.stringify({ ...r, lookupsPerSecond: Math.round(r.lookupsPerSecond), metasPerSecond: Math.round(r.metasPerSecond), peakRssMiB: Math.round(r.peakRssBytes / 2 ** 20) }))
}
await rm(root, { recursive: true, force: true })
