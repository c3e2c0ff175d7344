/**
 * Where the test harness's readers live (`readers.placement`) when a test does not say: the environment variable
 * ROCKVISOR_TEST_PLACEMENT (`worker` runs a whole suite's readers in worker threads, `process` in child processes),
 * or what a wrapper test file sets before importing a suite (test/worker-suites.test.ts). Undefined: the index's own
 * default.
 */
export const testPlacement: { readers: 'in-process' | 'worker' | 'process' | undefined } = {
  readers: (['in-process', 'worker', 'process'] as const).find((p) => p === process.env.ROCKVISOR_TEST_PLACEMENT),
}
