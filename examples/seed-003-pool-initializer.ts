/**
 * Seed 003: a Pool whose initializer does the expensive setup once per
 * worker (here: importing a module and building a lookup table), then many
 * small tasks that use it, with a progress counter as results arrive.
 *
 * Run: npm run build:dev && node build-dev/examples/seed-003-pool-initializer.js
 */
import { Pool, delayed } from 'memjob';

// Runs once in each worker: the "heavy import" of the seed.
async function init(size: number): Promise<void> {
  const { createHash } = await import('node:crypto');
  const table = Array.from({ length: size }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));
  (globalThis as { lookup?: string[] }).lookup = table;
  (globalThis as { initCount?: number }).initCount = ((globalThis as { initCount?: number }).initCount ?? 0) + 1;
}

// Uses what the initializer prepared; reports how often its worker was initialized.
function work(i: number): { i: number; digest: string; initCount: number } {
  const g = globalThis as { lookup?: string[]; initCount?: number };
  return { i, digest: g.lookup![i % g.lookup!.length]!.slice(0, 8), initCount: g.initCount! };
}

const n = 200;
await using pool = new Pool({ processes: 2, initializer: delayed(init)(1000) });
let done = 0;
for await (const result of pool.imapUnordered(work, Array.from({ length: n }, (_, i) => i))) {
  done++;
  if (done % 50 === 0 || done === n) console.log(`done ${done}/${n} (last: task ${result.i} -> ${result.digest}, initializer ran ${result.initCount}x in its worker)`);
}
