// The packed package.json has no install script (see README, Install).
//
// The repository's package.json has `prepare: npm run build`: npm runs `prepare`, and only `prepare`, when it
// installs a package from git (it clones, installs the dev dependencies, runs prepare, then packs), and when a
// project's own clone is installed. But npm also lists a `prepare` of a package installed from a tarball, a
// directory or git as an install script ("install scripts not yet covered by allowScripts"). So `npm pack` and
// `npm publish` strip it from the package.json they pack:
//
//   node scripts/pack-manifest.mjs --strip     (prepack, after the build) saves package.json aside, removes `prepare`
//   node scripts/pack-manifest.mjs --restore   (postpack) puts the saved package.json back
//
// If a pack fails between the two, the next --strip (or --restore) restores the saved file first.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const manifest = fileURLToPath(new URL('../package.json', import.meta.url))
const saved = fileURLToPath(new URL('../.package.json.prepack', import.meta.url))
const restore = () => {
  if (existsSync(saved)) renameSync(saved, manifest)
}

const mode = process.argv[2]
if (mode === '--restore') restore()
else if (mode === '--strip') {
  restore()
  const text = readFileSync(manifest, 'utf8')
  const json = JSON.parse(text)
  if (json.scripts?.prepare !== undefined) {
    writeFileSync(saved, text)
    delete json.scripts.prepare
    writeFileSync(manifest, `${JSON.stringify(json, null, 2)}\n`)
  }
} else {
  console.error('usage: node scripts/pack-manifest.mjs --strip | --restore')
  process.exit(2)
}
