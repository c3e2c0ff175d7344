/**
 * Existing suites run again with every harness reader in a worker thread (`readers.placement: 'worker'`, see
 * test/support/placement.ts): supervision (crashes, restarts, degradation, close) and freshness behave exactly as
 * in process. Any other suite runs so with `ROCKVISOR_TEST_PLACEMENT=worker npx vitest run <file>`.
 */
import { afterAll, expect } from 'vitest'
import { ReaderWorkers } from '../src/reader-workers.js'
import { testPlacement } from './support/placement.js'

testPlacement.readers = 'worker'
const before = ReaderWorkers.opened
await import('./supervision.test.js')
await import('./freshness.test.js')

// The suites' readers did open in worker threads (the placement reached them).
afterAll(() => expect(ReaderWorkers.opened - before).toBeGreaterThan(10))
