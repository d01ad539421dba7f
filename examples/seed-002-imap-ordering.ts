/**
 * Seed 002: Pool.imap keeps the input order; Pool.imapUnordered yields each
 * result as soon as it is ready.
 *
 * Run: npm run build:dev && node build-dev/examples/seed-002-imap-ordering.js
 */
import { Pool } from 'memjob';

// Task i sleeps (4 - i) * 200 ms, so later inputs finish first.
async function slowSquare(i: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, (4 - i) * 200));
  return i * i;
}

await using pool = new Pool({ processes: 4 });
const inputs = [0, 1, 2, 3];

const ordered: number[] = [];
for await (const result of pool.imap(slowSquare, inputs)) ordered.push(result);
console.log('imap          (input order):     ', ordered.join(', '));

const unordered: number[] = [];
for await (const result of pool.imapUnordered(slowSquare, inputs)) unordered.push(result);
console.log('imapUnordered (completion order):', unordered.join(', '));
