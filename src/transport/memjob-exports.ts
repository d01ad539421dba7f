/**
 * memjob's own exports, for shipping them to workers by name
 * (delayed(hasShareableMemory)). src/index.ts registers its namespace here
 * when it loads, so code below it can find the exports synchronously without
 * importing index.ts (which would be an import cycle).
 */
let registered: Readonly<Record<string, unknown>> | undefined;

export function registerMemjobExports(namespace: Readonly<Record<string, unknown>>): void {
  registered = namespace;
}

/** The public exports; empty until src/index.ts has loaded (then nothing can be one of them anyway). */
export function memjobExports(): Readonly<Record<string, unknown>> {
  return registered ?? {};
}
