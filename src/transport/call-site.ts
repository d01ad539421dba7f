/**
 * Where a self-contained task function came from, so that its stack frames in
 * a worker name the user's file instead of "eval at ...". A function has no
 * API for its own location; the file that handed it to memjob (the caller of
 * delayed(), Pool.map(), new Process()) is where it is almost always defined,
 * and when its source text is found in that file, the exact line too.
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SourceOrigin {
  /** The caller's file (a path, or the URL when it is not a file: URL). */
  file: string;
  /** 1-based line of the function's text in `file`, when found there. */
  line?: number;
}

/** memjob's own folder (src/ or dist/): frames inside it are not the user's. */
const ownRoot = new URL('..', import.meta.url).href;
const sites = new WeakMap<object, string>();
/** Files read to find functions in, by path (module files do not change while a program runs). */
const fileTexts = new Map<string, string | null>();
const MAX_FILE_BYTES = 4 << 20;

/** The first stack frame outside memjob and Node's internals: a file: URL or path, or undefined. */
function userFrame(): string | undefined {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, userFrame);
  for (const line of (holder.stack ?? '').split('\n').slice(1)) {
    const match = /\(?((?:file:\/\/|\/)[^()]+?):\d+:\d+\)?\s*$/.exec(line);
    const location = match?.[1];
    if (location === undefined) continue;
    const href = location.startsWith('/') ? `file://${location}` : location;
    if (!href.startsWith(ownRoot)) return location;
  }
  return undefined;
}

/** Notes who handed `fn` to memjob, once per function (cheap on later calls). */
export function rememberCallSite(fn: object): void {
  if (sites.has(fn)) return;
  const site = userFrame();
  if (site !== undefined) sites.set(fn, site);
}

function fileText(path: string): string | null {
  let text = fileTexts.get(path);
  if (text !== undefined) return text;
  text = null;
  try {
    const stat = statSync(path);
    if (stat.isFile() && stat.size <= MAX_FILE_BYTES) text = readFileSync(path, 'utf8');
  } catch {
    // unreadable: the frames name the file without a line
  }
  fileTexts.set(path, text);
  return text;
}

/** The origin of `fn` whose source is `text`: the remembered call site, or the current caller. */
export function sourceOrigin(fn: object, text: string): SourceOrigin | undefined {
  const site = sites.get(fn) ?? userFrame();
  if (site === undefined) return undefined;
  let file = site;
  try {
    if (site.startsWith('file:')) file = fileURLToPath(site);
  } catch {
    return { file: site };
  }
  const content = file.startsWith('/') ? fileText(file) : null;
  const at = content === null ? -1 : content.indexOf(text);
  if (at < 0) return { file };
  let line = 1;
  for (let i = content!.indexOf('\n'); i >= 0 && i < at; i = content!.indexOf('\n', i + 1)) line++;
  return { file, line };
}
