// Part of `npm run build`: copies the inspector's page (HTML, CSS, browser JavaScript) next to the compiled server,
// src/inspector/static -> dist/src/inspector/static. Plain Node, no dependency.
import { cpSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const from = fileURLToPath(new URL('../src/inspector/static/', import.meta.url))
const to = fileURLToPath(new URL('../dist/src/inspector/static/', import.meta.url))
rmSync(to, { recursive: true, force: true })
cpSync(from, to, { recursive: true })
