// Issue 12, item 5: a long-lived Pool neither dumps the same array again on
// every call nor keeps every call's dumps: what it holds is bounded by one
// idle period's arrays, in its temp folder and in its workers' mappings.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';
import { scratchDir } from './helpers.js';

let scratch: ReturnType<typeof scratchDir>;
beforeAll(() => (scratch = scratchDir('pool-dumps')));
afterAll(() => scratch.remove());

/** The argument dumps in the pool's run folders under `root`. */
function dumpsUnder(root: string): string[] {
  return readdirSync(root)
    .filter((name) => name.startsWith('memjob_'))
    .flatMap((folder) => readdirSync(join(root, folder)).filter((name) => /arg-\d+\.mjdump$/.test(name)));
}

const sum = (a: Float64Array) => a.reduce((s, x) => s + x, 0);

describe.each(['threads', 'processes'] as const)('%s', (backend) => {
  it('the same array, call after call: dumped once; a fresh array per call: one call’s dumps at a time', async () => {
    const root = scratch.file(`root-${backend}`);
    mkdirSync(root);
    await using pool = new Pool({ processes: 2, backend, tempFolder: root });
    const same = new Float64Array(300_000).fill(1); // 2.4 MB: dumped
    for (let call = 0; call < 30; call++) {
      expect(await pool.map(sum, [same, same, same])).toEqual([300_000, 300_000, 300_000]);
      expect(dumpsUnder(root)).toHaveLength(1);
    }
    const first = dumpsUnder(root)[0];
    expect(dumpsUnder(root)).toEqual([first]); // the same file all along
    for (let call = 0; call < 30; call++) {
      const fresh = new Float64Array(300_000).fill(call);
      expect(await pool.map(sum, [fresh, fresh])).toEqual([300_000 * call, 300_000 * call]);
      expect(dumpsUnder(root).length).toBeLessThanOrEqual(1); // the earlier calls' dumps went when the pool was idle
    }
    // An array changed between calls is dumped again, and the workers see the change.
    same.fill(2);
    expect(await pool.map(sum, [same])).toEqual([600_000]);
  });
});

it("a Pool's worker keeps no mapping of dumps it no longer needs", async () => {
  const root = scratch.file('root-maps');
  mkdirSync(root);
  await using pool = new Pool({ processes: 1, backend: 'processes', tempFolder: root });
  const [pid] = await pool.map(() => process.pid, [0]);
  const dumpMaps = () => readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((line) => line.includes('.mjdump')).length;
  for (let call = 0; call < 40; call++) {
    const fresh = new Float64Array(300_000).fill(call);
    await pool.map(sum, [fresh]);
  }
  expect(dumpMaps()).toBeLessThanOrEqual(2);
});
