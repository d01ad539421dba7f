/** piscina's worker for bench/parallel.ts: the no-op task, returning its argument. */
export default function noop(i: number): number {
  return i;
}
