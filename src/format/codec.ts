/**
 * memjob's own msgpackr instances. No extension is registered (msgpackr's
 * extension registry is process-global, and a user's own msgpackr would see
 * it): the structure is plain msgpack, and tags in the tree say the rest.
 * msgpackr's decoder still consults that process-wide table (its built-in
 * BigInt, record, Error, RegExp... extensions, and any added with
 * addExtension) whatever the options, so unpackr is only ever given bytes
 * msgpack-scan.ts has checked to hold no extension at all.
 */
// The subpaths are msgpackr without its optional native string extractor (msgpackr-extract):
// structures are small, and loading that addon cost ~10 ms in every process and worker that loads or dumps.
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';

export const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false });
export const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, structuredClone: false, int64AsType: 'number' });
