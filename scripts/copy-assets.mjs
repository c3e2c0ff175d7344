// Part of `npm run build`: copies what tsc does not emit next to the compiled code: the inspector's page (HTML, CSS,
// browser JavaScript), src/inspector/static -> dist/src/inspector/static, and the entry of reader worker threads and
// reader child processes (plain JavaScript, loaded by src/reader-workers.ts from its own directory),
// src/reader-worker.mjs -> dist/src/reader-worker.mjs. Plain Node, no dependency.
import { cpSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const from = fileURLToPath(new URL('../src/inspector/static/', import.meta.url))
const to = fileURLToPath(new URL('../dist/src/inspector/static/', import.meta.url))
rmSync(to, { recursive: true, force: true })
cpSync(from, to, { recursive: true })
cpSync(fileURLToPath(new URL('../src/reader-worker.mjs', import.meta.url)), fileURLToPath(new URL('../dist/src/reader-worker.mjs', import.meta.url)))
