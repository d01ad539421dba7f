/**
 * The examples as users run them: compiled by `npm run build:dev`'s
 * tsconfig (against the built package, dist/) and run with plain node. Each
 * must exit 0 and print what its header promises.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

const examples = readdirSync(join(repoRoot, 'examples')).filter((name) => name.endsWith('.ts'));

/** What each example must print, besides exiting 0. */
const expected: Record<string, RegExp> = {
  'demo.ts': /every chunk exact: yes/,
  'seed-000-parallel-loop.ts': /same results as the loop: true/,
  'seed-001-sqrt-and-memmap.ts': /the worker saw a memory-mapped array: true/,
  'seed-002-imap-ordering.ts': /imapUnordered \(completion order\): 9, 4, 1, 0/,
  'seed-003-pool-initializer.ts': /done 200\/200 .*initializer ran 1x in its worker/,
  'seed-004-process-queue.ts': /exit codes: producer=0, consumer=0/,
};

describe('examples/, compiled and run with plain node', () => {
  beforeAll(() => {
    // dist/ is built by pretest; this compiles bench/ and examples/ into build-dev/.
    execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.dev-build.json'], { cwd: repoRoot, stdio: 'inherit' });
  }, 120_000);

  it('every example has an expectation here', () => {
    expect(examples.sort()).toEqual(Object.keys(expected).sort());
  });

  for (const name of examples) {
    it(name, () => {
      const script = join(repoRoot, 'build-dev/examples', name.replace(/\.ts$/, '.js'));
      const args = name === 'demo.ts' ? ['--size', '64M'] : [];
      const result = spawnSync(process.execPath, [script, ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 90_000 });
      expect(result.stderr).not.toMatch(/Error|Warning/);
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(expected[name]!);
    });
  }
});
