/** The package's own package.json (name, version), found from this module's directory (src/ or dist/src/). */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface PackageInfo {
  readonly name: string
  readonly version: string
  readonly description: string
}

let cached: PackageInfo | undefined

export const packageInfo = (): PackageInfo => {
  if (cached !== undefined) return cached
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const json = JSON.parse(readFileSync(file, 'utf8')) as Partial<PackageInfo>
      if (json.name === 'rockvisor') return (cached = { name: json.name, version: json.version ?? '0.0.0', description: json.description ?? '' })
    }
    if (dirname(dir) === dir) return (cached = { name: 'rockvisor', version: '0.0.0', description: '' })
  }
}
