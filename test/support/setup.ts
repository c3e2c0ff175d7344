// Runs before every test file (vitest setupFiles): records machine transitions for the coverage check, from the
// example tests under test/ only (see test/support/coverage.ts).
import { afterAll, expect } from 'vitest'
import { countsTowardCoverage, flushCoverage, startRecording, recordInspection } from './coverage.js'
import { inspectors } from './harness.js'

const testPath = expect.getState().testPath ?? 'unknown'
if (countsTowardCoverage(testPath)) {
  startRecording(() => expect.getState().currentTestName ?? '(outside a test)')
  inspectors.add(recordInspection)
  afterAll(() => flushCoverage(testPath))
}
