#!/usr/bin/env node
/**
 * The `rockvisor` command (see src/cli/program.ts, or `rockvisor --help`). Exit codes: 0 done, 1 a storage error
 * (`<tag>: <message>`, one line), 2 a usage error (one line and the command's usage).
 */
import { run } from './cli/program.js'
import { processIo } from './cli/io.js'

// A reader that went away (`rockvisor scan ... | head`) ends the command quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0)
    throw e
  })
}

// No top-level await: nothing in the package's module graph has one (require() of an ES module refuses them).
void run(process.argv.slice(2), processIo()).then((code) => {
  // Exit once what was written has been flushed (a pipe may still hold output); nothing else needs to run.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
})
