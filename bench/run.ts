/**
 * Runs memjob's benchmarks in order (`npm run bench`), or only those named:
 * `npm run bench -- memmap`. To add one, write bench/<name>.ts exporting
 * `main(): Promise<void>` and list it below.
 */
interface BenchModule {
  main(): Promise<void>;
}

// Imported lazily, so a run of one benchmark loads only that one.
const benchmarks: Record<string, () => Promise<BenchModule>> = {
  memmap: () => import('./memmap.js'),
  dump: () => import('./dump.js'),
  parallel: () => import('./parallel.js'),
  multiprocessing: () => import('./multiprocessing.js'),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !Object.hasOwn(benchmarks, name));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}`);
  process.exit(2);
}

for (const [name, load] of Object.entries(benchmarks)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  // One at a time: benchmarks running side by side would measure each other.
  await (await load()).main();
  console.log('');
}
