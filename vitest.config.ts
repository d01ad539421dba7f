import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests map large sparse files and start workers and child processes;
    // two at a time suits a 2-core machine. Three took the suite from 340 s
    // to 308 s here (2026-11-28), but then a timing-bound test missed its
    // bound in a fresh-clone CI run: kept at two.
    maxWorkers: 2,
    // The JSON report is what .ci/run reads its 'N passed, M failed' line from.
    reporters: ['default', 'json'],
    outputFile: { json: 'tmp/vitest-report.json' },
  },
});
