import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests map large sparse files and start workers and child processes,
    // and spend much of their time waiting on them: three files at a time on
    // this 2-core machine took the suite from 340 s to 308 s (2026-11-28),
    // every timing-sensitive test still passing.
    maxWorkers: 3,
    // The JSON report is what .ci/run reads its 'N passed, M failed' line from.
    reporters: ['default', 'json'],
    outputFile: { json: 'tmp/vitest-report.json' },
  },
});
